package trace

import (
	"context"
	"errors"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// apiObjects is a small cluster as the API server returns it: client on
// node-1, web-1 on node-2 behind a default deny and one allow rule on
// tcp/80, a Service in front of web-1, a pod without an address, and a
// policy with a part podnet cannot use (an invalid selector).
func apiObjects() []runtime.Object {
	allowFromClient := []networkingv1.NetworkPolicyIngressRule{{
		From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}},
		Ports: []networkingv1.NetworkPolicyPort{tcpPort(intstr.FromInt32(80))},
	}}
	broken := netpol("default", "broken", map[string]string{"app": "web"}, ingressOnly, []networkingv1.NetworkPolicyIngressRule{{
		From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Sometimes"}}}}},
	}}, nil)
	return []runtime.Object{
		&v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		pod("default", "client", "node-1", "10.244.1.5", map[string]string{"app": "client"}),
		pod("default", "web-1", "node-2", "10.244.2.7", map[string]string{"app": "web"}),
		&v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "pending"}, Status: v1.PodStatus{Phase: v1.PodPending}},
		node("node-1", "172.30.0.11", "10.244.1.0/24"),
		node("node-2", "172.30.0.12", "10.244.2.0/24"),
		service("default", "web", "10.96.0.80", 80),
		slice("default", "web", 80, sliceEndpoint("10.244.2.7", "node-2", true)),
		service("default", "empty", "10.96.0.81", 80),
		netpol("default", "default-deny-all", nil, ingressOnly, nil, nil),
		netpol("default", "api-allow", map[string]string{"app": "web"}, nil, allowFromClient, nil),
		broken,
	}
}

func TestFromAPI(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src, tgt string
		want     string // a part of the explanation, or of the error when wantErr
		verdict  string
		wantErr  bool
	}{
		{name: "an allowed connection to a pod by name", src: "client", tgt: "web-1", verdict: VerdictAllowed,
			want: `default/client (10.244.1.5, node-1) -> default/web-1 tcp/80: ALLOWED
to 10.244.2.7:80 (default/web-1): ALLOWED
  route: node-1 -> node-2: 10.244.2.0/24 via 172.30.0.12 (direct)
  egress  at default/client: no policy selects this pod for egress -> allowed
  ingress at default/web-1: isolated by default/api-allow, default/broken, default/default-deny-all
          allowed by default/api-allow ingress[0]
note: policy default/broken has parts podnet cannot use`},
		{name: "a denied connection to another port", src: "client", tgt: "default/web-1:8080", verdict: VerdictDenied,
			want: "no rule allows tcp/8080 from 10.244.1.5 -> DENIED"},
		{name: "a target by pod IP is that pod", src: "web-1", tgt: "10.244.1.5:53/udp", verdict: VerdictDenied,
			want: "to 10.244.1.5:53 (default/client): DENIED\n  route: node-2 -> node-1: 10.244.1.0/24 via 172.30.0.11 (direct)"},
		{name: "an outside target is never isolated", src: "client", tgt: "203.0.113.5:icmp", verdict: VerdictAllowed,
			want: "  route: node-1 -> out of the cluster (default route), masqueraded to node-1's address\n" +
				"  egress  at default/client: no policy selects this pod for egress -> allowed\n" +
				"  ingress at 203.0.113.5: not a pod address, never isolated -> allowed"},
		{name: "an unknown source pod is an error", src: "nobody", tgt: "web-1", wantErr: true, want: "pod default/nobody not found"},
		{name: "an unknown target pod is an error", src: "client", tgt: "other/web-1", wantErr: true, want: "pod other/web-1 not found"},
		{name: "a pod without an address is an error", src: "client", tgt: "pending", wantErr: true, want: "pod default/pending has no address (phase Pending)"},
		{name: "a Service IP is followed to its endpoints", src: "client", tgt: "10.96.0.80", verdict: VerdictAllowed,
			want: "service: default/web (cluster IP 10.96.0.80), decided on node-1\n  may choose 1 of 1 ready endpoints: 10.244.2.7:80 (node-2)\nto 10.244.2.7:80 (default/web-1): ALLOWED"},
		{name: "a bare name that is no pod's is resolved as a DNS name", src: "client", tgt: "web", verdict: VerdictAllowed,
			want: "dns: web (search default.svc.cluster.local svc.cluster.local cluster.local, ndots:5)\n  web.default.svc.cluster.local. -> 10.96.0.80\nservice: default/web"},
		{name: "a ping of a cluster IP says that nothing answers it", src: "client", tgt: "10.96.0.80:icmp", verdict: VerdictAllowed,
			want: "note: 10.96.0.80 is Service default/web's cluster IP: the proxy translates TCP, UDP and SCTP only, so nothing answers icmp there"},
		{name: "svc/NAME on a port the Service lacks is an error", src: "client", tgt: "svc/web:81", wantErr: true,
			want: "service default/web has no port 81/TCP (its ports: 80/TCP)"},
		{name: "a Service without endpoints rejects", src: "client", tgt: "svc/empty:80", verdict: VerdictRejected,
			want: "service: default/empty (cluster IP 10.96.0.81), decided on node-1\n  no ready endpoint: the proxy rejects the connection at once\n  -> REJECT"},
		{name: "pod/NAME is a pod", src: "pod/client", tgt: "default/pod/web-1:8080", want: "default/client (10.244.1.5, node-1) -> default/web-1 tcp/8080: DENIED", verdict: VerdictDenied},
		{name: "a family the source lacks is an error", src: "client", tgt: "fd00::1", wantErr: true, want: "pod default/client has no IPv6 address to reach fd00::1 from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := ParsePod(tc.src, "default")
			if err != nil {
				t.Fatal(err)
			}
			tgt, err := ParseTarget(tc.tgt, "default")
			if err != nil {
				t.Fatal(err)
			}
			e, warnings, err := FromAPI(context.Background(), fake.NewClientset(apiObjects()...), Request{Src: src, Target: tgt})
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("FromAPI: %v; want an error with %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromAPI: %v", err)
			}
			if len(warnings) != 1 || warnings[0].Policy != "default/broken" {
				t.Errorf("warnings %v, want one about default/broken", warnings)
			}
			if !strings.Contains(e.String(), tc.want) {
				t.Errorf("explanation:\n%s\nwant it to contain:\n%s", e, tc.want)
			}
			if e.Verdict != tc.verdict {
				t.Errorf("Verdict = %q, want %q", e.Verdict, tc.verdict)
			}
		})
	}
}

// An API server that cannot list is an error naming what failed.
func TestFromAPIListErrors(t *testing.T) {
	for _, resource := range []string{"pods", "namespaces", "networkpolicies", "services", "endpointslices", "nodes"} {
		t.Run(resource, func(t *testing.T) {
			c := fake.NewClientset(apiObjects()...)
			c.PrependReactor("list", resource, func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, errors.New("forbidden")
			})
			_, _, err := FromAPI(context.Background(), c, Request{Src: PodName{"default", "client"}, Target: Target{Object: podRef("default", "web-1"), Protocol: v1.ProtocolTCP, Port: 80}})
			if err == nil || !strings.Contains(err.Error(), "list "+resource+": forbidden") {
				t.Fatalf("FromAPI: %v, want list %s: forbidden", err, resource)
			}
		})
	}
}
