package announce

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Fixture conventions: VIPs come from 172.30.0.0/16 (the local cluster's
// node network, where LoadBalancer pools live) and 2001:db8::/64; nodes
// are named node-<i>.

func vips(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range n {
		out[i] = netip.AddrFrom4([4]byte{172, 30, byte(i / 256), byte(i % 256)})
	}
	return out
}

func nodeNames(n int) []string {
	out := make([]string, n)
	for i := range n {
		out[i] = fmt.Sprintf("node-%d", i+1)
	}
	return out
}

func TestOwnerSpreadsVIPsOverNodes(t *testing.T) {
	for _, tc := range []struct{ vips, nodes int }{{1000, 3}, {1000, 5}, {3000, 10}} {
		t.Run(fmt.Sprintf("%d VIPs over %d nodes", tc.vips, tc.nodes), func(t *testing.T) {
			count := map[string]int{}
			nodes := nodeNames(tc.nodes)
			for _, v := range vips(tc.vips) {
				count[Owner(v, nodes)]++
			}
			fair := tc.vips / tc.nodes
			for _, n := range nodes {
				// A binomial spread: 5 standard deviations is < 25% of fair here.
				if c := count[n]; c < fair*3/4 || c > fair*5/4 {
					t.Errorf("%s owns %d VIPs, fair share %d (all: %v)", n, c, fair, count)
				}
			}
		})
	}
}

func TestOwnerMovesOnlyTheLeavingNodesVIPs(t *testing.T) {
	nodes := nodeNames(5)
	gone := "node-3"
	rest := slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return n == gone })
	moved := map[string]int{}
	for _, v := range vips(1000) {
		before, after := Owner(v, nodes), Owner(v, rest)
		if before != gone && before != after {
			t.Fatalf("%s moved from %s to %s although %s left", v, before, after, gone)
		}
		if before == gone {
			moved[after]++
		}
	}
	// The leaving node's VIPs spread over all the others.
	for _, n := range rest {
		if moved[n] < 20 {
			t.Errorf("%s took %d of %s's VIPs (all: %v): they do not spread", n, moved[n], gone, moved)
		}
	}
	// A node that comes back takes back exactly its VIPs.
	for _, v := range vips(1000) {
		if Owner(v, nodes) != Owner(v, append(slices.Clone(rest), gone)) {
			t.Fatalf("%s: the order of nodes changes the owner", v)
		}
	}
}

func TestOwnerOfNoNodeIsNone(t *testing.T) {
	if o := Owner(netip.MustParseAddr("172.30.0.200"), nil); o != "" {
		t.Errorf("owner over no node = %q", o)
	}
}

func TestOutranksIsAStrictOrder(t *testing.T) {
	v := netip.MustParseAddr("2001:db8::1")
	for _, a := range nodeNames(6) {
		for _, b := range nodeNames(6) {
			if a != b && Outranks(v, a, b) == Outranks(v, b, a) {
				t.Errorf("%s and %s outrank each other equally", a, b)
			}
		}
	}
}

func lbService(name string, etp v1.ServiceExternalTrafficPolicy, ips ...string) *v1.Service {
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec:       v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: etp},
	}
	for _, ip := range ips {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, v1.LoadBalancerIngress{IP: ip})
	}
	return svc
}

func slice(svc string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: svc + "-x",
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		Endpoints: eps,
	}
}

func endpoint(node string, ready *bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{"10.244.1.5"}, NodeName: &node,
		Conditions: discoveryv1.EndpointConditions{Ready: ready}}
}

func TestTargets(t *testing.T) {
	yes, no := true, false
	ready := []string{"node-1", "node-2", "node-3"}
	slices := map[string][]*discoveryv1.EndpointSlice{
		"default/local": {slice("local", endpoint("node-2", &yes), endpoint("node-3", &no), endpoint("node-9", nil))},
		"default/nil":   {slice("nil", endpoint("node-1", nil))},
	}
	cluster := lbService("cluster", v1.ServiceExternalTrafficPolicyCluster, "172.30.0.200", "2001:db8::c8")
	local := lbService("local", v1.ServiceExternalTrafficPolicyLocal, "172.30.0.201")
	nilReady := lbService("nil", v1.ServiceExternalTrafficPolicyLocal, "172.30.0.202")
	pending := lbService("pending", v1.ServiceExternalTrafficPolicyCluster)
	nodePort := lbService("np", v1.ServiceExternalTrafficPolicyCluster, "172.30.0.203")
	nodePort.Spec.Type = v1.ServiceTypeNodePort
	sharedLocal := lbService("shared", v1.ServiceExternalTrafficPolicyLocal, "172.30.0.200")
	got := Targets([]*v1.Service{cluster, local, nilReady, pending, nodePort, sharedLocal}, ready,
		func(k string) []*discoveryv1.EndpointSlice { return slices[k] })
	want := []Target{
		{VIP: netip.MustParseAddr("172.30.0.200"), Service: "default/cluster", Candidates: ready},
		// eTP Local: node-3's endpoint is not ready and node-9 is not a Ready node.
		{VIP: netip.MustParseAddr("172.30.0.201"), Service: "default/local", Candidates: []string{"node-2"}},
		// An endpoint without a Ready condition is ready.
		{VIP: netip.MustParseAddr("172.30.0.202"), Service: "default/nil", Candidates: []string{"node-1"}},
		{VIP: netip.MustParseAddr("2001:db8::c8"), Service: "default/cluster", Candidates: ready},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Targets:\n got %v\nwant %v", got, want)
	}
}

func TestTargetsLocalWithoutEndpointsHasNoCandidate(t *testing.T) {
	got := Targets([]*v1.Service{lbService("local", v1.ServiceExternalTrafficPolicyLocal, "172.30.0.201")},
		[]string{"node-1"}, func(string) []*discoveryv1.EndpointSlice { return nil })
	if len(got) != 1 || len(got[0].Candidates) != 0 {
		t.Errorf("Targets = %v, want one VIP without candidates", got)
	}
	if o := Owner(got[0].VIP, got[0].Candidates); o != "" {
		t.Errorf("a VIP without a local endpoint is announced by %q", o)
	}
}
