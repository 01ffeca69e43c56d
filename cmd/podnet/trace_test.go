package main

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/podnet/podnet/internal/trace"
)

func TestParseTarget(t *testing.T) {
	addr := netip.MustParseAddr
	for _, tc := range []struct {
		name, in string
		want     target
		err      string // a part of the error; "" when none
	}{
		{name: "a pod name is in the default namespace on tcp/80", in: "web-1",
			want: target{pod: podName{"shop", "web-1"}, proto: v1.ProtocolTCP, port: 80}},
		{name: "ns/name names another namespace", in: "kube-system/coredns-0",
			want: target{pod: podName{"kube-system", "coredns-0"}, proto: v1.ProtocolTCP, port: 80}},
		{name: "a pod with a port", in: "web-1:8080",
			want: target{pod: podName{"shop", "web-1"}, proto: v1.ProtocolTCP, port: 8080}},
		{name: "ns/name with port and protocol", in: "kube-system/coredns-0:53/udp",
			want: target{pod: podName{"kube-system", "coredns-0"}, proto: v1.ProtocolUDP, port: 53}},
		{name: "an IPv4 address", in: "10.244.2.7",
			want: target{addr: addr("10.244.2.7"), proto: v1.ProtocolTCP, port: 80}},
		{name: "an IPv4 address with port and protocol", in: "203.0.113.5:443/tcp",
			want: target{addr: addr("203.0.113.5"), proto: v1.ProtocolTCP, port: 443}},
		{name: "sctp in capitals", in: "10.244.2.7:9/SCTP",
			want: target{addr: addr("10.244.2.7"), proto: v1.ProtocolSCTP, port: 9}},
		{name: "a protocol alone keeps the default port", in: "10.244.2.7:udp",
			want: target{addr: addr("10.244.2.7"), proto: v1.ProtocolUDP, port: 80}},
		{name: "icmp has no port", in: "web-1:icmp",
			want: target{pod: podName{"shop", "web-1"}, proto: trace.ProtocolICMP}},
		{name: "a bare IPv6 address", in: "fd00:10:244::7",
			want: target{addr: addr("fd00:10:244::7"), proto: v1.ProtocolTCP, port: 80}},
		{name: "an IPv6 address in brackets", in: "[fd00:10:244::7]",
			want: target{addr: addr("fd00:10:244::7"), proto: v1.ProtocolTCP, port: 80}},
		{name: "an IPv6 address with port and protocol", in: "[fd00:10:244::7]:53/udp",
			want: target{addr: addr("fd00:10:244::7"), proto: v1.ProtocolUDP, port: 53}},
		{name: "an IPv6 address with icmp", in: "[2001:db8::1]:icmp",
			want: target{addr: addr("2001:db8::1"), proto: trace.ProtocolICMP}},

		{name: "icmp with a port is refused", in: "web-1:7/icmp", err: "icmp has no port"},
		{name: "port 0 is refused", in: "web-1:0", err: "bad port"},
		{name: "a port above 65535 is refused", in: "10.0.0.1:65536", err: "bad port"},
		{name: "an empty port is refused", in: "web-1:", err: "empty port"},
		{name: "an unknown protocol is refused", in: "web-1:80/http", err: "bad protocol"},
		{name: "IPv6 with a port needs brackets", in: "fd00::1:80/udp", err: "[ADDR]:PORT"},
		{name: "brackets hold IPv6 only", in: "[10.0.0.1]:80", err: "brackets hold an IPv6 address"},
		{name: "an unclosed bracket is refused", in: "[fd00::1:80", err: "missing ]"},
		{name: "a bad IPv4 address is not taken for a pod", in: "10.0.0.300:80", err: "bad IPv4 address"},
		{name: "a bad pod name is refused", in: "Web_1", err: "bad pod name"},
		{name: "a bad namespace is refused", in: "Kube_System/x", err: "bad namespace"},
		{name: "a second slash is refused", in: "a/b/c", err: "bad pod name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTarget(tc.in, "shop")
			switch {
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("parseTarget(%q) = %+v, %v; want an error with %q", tc.in, got, err, tc.err)
			case tc.err == "" && err != nil:
				t.Fatalf("parseTarget(%q): %v", tc.in, err)
			case tc.err == "" && got != tc.want:
				t.Fatalf("parseTarget(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

// traceObjects is a small cluster: client on node-1, web-1 on node-2 behind
// a default deny and one allow rule on tcp/80, a Service in front of web-1.
func traceObjects() []runtime.Object {
	mkPod := func(name, node, ip, app string) *v1.Pod {
		return &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"app": app}},
			Spec:       v1.PodSpec{NodeName: node},
			Status:     v1.PodStatus{Phase: v1.PodRunning, PodIP: ip, PodIPs: []v1.PodIP{{IP: ip}}},
		}
	}
	port := intstr.FromInt32(80)
	return []runtime.Object{
		&v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		mkPod("client", "node-1", "10.244.1.5", "client"),
		mkPod("web-1", "node-2", "10.244.2.7", "web"),
		&v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "pending"}},
		&v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
			Spec: v1.ServiceSpec{ClusterIP: "10.96.0.80", ClusterIPs: []string{"10.96.0.80"}}},
		&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "default-deny-all"},
			Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}},
		&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "api-allow"},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}},
					Ports: []networkingv1.NetworkPolicyPort{{Port: &port}},
				}},
			}},
	}
}

// The whole command against a fake API server: output and exit status.
func TestTraceCommand(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int    // 0 allowed, 1 denied, 2 error
		out  string // a part of stdout, or of the error for code 2
	}{
		{name: "an allowed connection exits 0", args: []string{"client", "web-1"}, code: 0, out: `default/client (10.244.1.5, node-1) -> default/web-1 (10.244.2.7, node-2) tcp/80: ALLOWED
  egress  at default/client: no policy selects this pod for egress -> allowed
  ingress at default/web-1: isolated by default/api-allow, default/default-deny-all
          allowed by default/api-allow ingress[0]
`},
		{name: "a denied connection exits 1", args: []string{"client", "default/web-1:8080"}, code: 1,
			out: "isolated by default/api-allow, default/default-deny-all; no rule allows tcp/8080 from 10.244.1.5 -> DENIED"},
		{name: "a target by pod IP", args: []string{"-n", "default", "web-1", "10.244.1.5:53/udp"}, code: 1,
			out: "default/web-1 (10.244.2.7, node-2) -> default/client (10.244.1.5, node-1) udp/53: DENIED"},
		{name: "an outside target is never isolated", args: []string{"client", "203.0.113.5:icmp"}, code: 0,
			out: "ingress at 203.0.113.5: not a pod address, never isolated -> allowed"},
		{name: "an unknown pod is an error", args: []string{"nobody", "web-1"}, code: 2, out: "pod default/nobody not found"},
		{name: "a pod without an address is an error", args: []string{"client", "pending"}, code: 2, out: "has no address"},
		{name: "a Service IP is an error for now", args: []string{"client", "10.96.0.80"}, code: 2, out: "Service default/web's cluster IP"},
		{name: "a Service name is an error for now", args: []string{"client", "web"}, code: 2, out: "default/web is a Service, not a pod"},
		{name: "a bad target is an error", args: []string{"client", "web-1:http"}, code: 2, out: "bad port"},
		{name: "a missing argument is an error", args: []string{"client"}, code: 2, out: "POD and TARGET"},
		{name: "an unknown flag is an error", args: []string{"--bogus", "client", "web-1"}, code: 2, out: "unknown flag"},
		{name: "a family the source lacks is an error", args: []string{"client", "fd00::1"}, code: 2, out: "no IPv6 address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := newTraceCommandWith(func(string) (kubernetes.Interface, error) {
				return fake.NewClientset(traceObjects()...), nil
			})
			var out, errOut bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&errOut)
			cmd.SetArgs(tc.args)
			cmd.SilenceErrors, cmd.SilenceUsage = true, true
			err := cmd.Execute()
			code := 0
			if err != nil {
				var ee exitError
				if !errors.As(err, &ee) {
					t.Fatalf("error %v is no exitError (main would exit 1)", err)
				}
				code = ee.code
			}
			if code != tc.code {
				t.Errorf("exit status %d, want %d (err %v, stdout:\n%s)", code, tc.code, err, out.String())
			}
			text := out.String()
			if tc.code == 2 {
				text = err.Error()
			}
			if !strings.Contains(text, tc.out) {
				t.Errorf("output:\n%s\nwant it to contain:\n%s", text, tc.out)
			}
		})
	}
}
