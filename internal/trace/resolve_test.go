package trace

import (
	"context"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// Resolve reads addresses from the API server: a pod's, a Service's cluster
// IP (when it has the port), and refuses what has no address, saying what
// to name instead.
func TestResolve(t *testing.T) {
	svc := func(name string, spec v1.ServiceSpec) *v1.Service {
		return &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}, Spec: spec}
	}
	client := fake.NewClientset(
		&v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "secure", Name: "database"},
			Status: v1.PodStatus{Phase: v1.PodRunning, PodIP: "10.244.1.9", PodIPs: []v1.PodIP{{IP: "10.244.1.9"}, {IP: "fd00:10:244:1::9"}}}},
		&v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "pending"}, Status: v1.PodStatus{Phase: v1.PodPending}},
		svc("nginx-service", v1.ServiceSpec{ClusterIP: "10.96.0.80", Ports: []v1.ServicePort{{Port: 80, Protocol: v1.ProtocolTCP}, {Port: 53, Protocol: v1.ProtocolUDP}}}),
		svc("db", v1.ServiceSpec{ClusterIP: v1.ClusterIPNone, Ports: []v1.ServicePort{{Port: 5432}}}),
		svc("ext", v1.ServiceSpec{Type: v1.ServiceTypeExternalName, ExternalName: "example.com"}),
	)
	for _, tc := range []struct {
		name, target string
		udp          bool
		want, err    string
	}{
		{name: "an address is itself, without asking", target: "203.0.113.5:80", want: "203.0.113.5"},
		{name: "a pod is its primary address", target: "secure/pod/database:5432", want: "10.244.1.9"},
		{name: "a Service is its cluster IP", target: "svc/nginx-service:80", want: "10.96.0.80"},
		{name: "a Service's UDP port", target: "svc/nginx-service:53", udp: true, want: "10.96.0.80"},
		{name: "a port the Service lacks is an error", target: "svc/nginx-service:8080", err: "service default/nginx-service has no port 8080/TCP (its ports: 80/TCP, 53/UDP)"},
		{name: "a port of another protocol is an error", target: "svc/nginx-service:53", err: "no port 53/TCP"},
		{name: "a pod without an address is an error", target: "pod/pending:80", err: "pod default/pending has no address yet (phase Pending)"},
		{name: "an unknown pod is an error", target: "pod/nobody:80", err: `pod default/nobody: pods "nobody" not found`},
		{name: "an unknown Service is an error", target: "svc/nobody:80", err: `service default/nobody: services "nobody" not found`},
		{name: "a headless Service has no address", target: "svc/db:5432", err: "service default/db is headless (no cluster IP): name one of its pods as pod/NAME"},
		{name: "an ExternalName Service has no address", target: "svc/ext:80", err: "service default/ext is an ExternalName (example.com) and has no address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tgt, err := ParseHostPort(tc.target, "default")
			if err != nil {
				t.Fatal(err)
			}
			if tc.udp {
				tgt.Protocol = v1.ProtocolUDP
			}
			got, err := Resolve(context.Background(), client, tgt)
			switch {
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("Resolve(%s) = %v, %v; want an error with %q", tc.target, got, err, tc.err)
			case tc.err == "" && (err != nil || got.String() != tc.want):
				t.Fatalf("Resolve(%s) = %v, %v; want %s", tc.target, got, err, tc.want)
			}
		})
	}
}
