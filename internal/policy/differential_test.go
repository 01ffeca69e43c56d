package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

// world is a random cluster: namespaces, pods on two nodes and policies.
type world struct {
	nss      []*Namespace
	pods     []*Pod
	policies []*networkingv1.NetworkPolicy
}

func randomWorld(rng *rand.Rand) world {
	var w world
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	for _, n := range []string{"x", "y", "z"} {
		w.nss = append(w.nss, namespace(n, map[string]string{"env": pick("prod", "dev")}))
	}
	for i := 0; i < 4+rng.IntN(10); i++ {
		node := 1 + rng.IntN(2)
		ns := w.nss[rng.IntN(len(w.nss))].Name
		labels := map[string]string{"app": pick("a", "b", "c")}
		if rng.IntN(2) == 0 {
			labels["tier"] = pick("1", "2")
		}
		var ports []v1.ContainerPort
		if rng.IntN(2) == 0 {
			ports = append(ports, v1.ContainerPort{Name: "http", ContainerPort: int32([]int{80, 81, 8080}[rng.IntN(3)])})
		}
		if rng.IntN(3) == 0 {
			ports = append(ports, v1.ContainerPort{Name: "dns", Protocol: v1.ProtocolUDP, ContainerPort: 53})
		}
		p := pod(ns, fmt.Sprintf("p%d", i), fmt.Sprintf("node-%d", node), fmt.Sprintf("10.244.%d.%d", node, 2+i), labels, ports...)
		if rng.IntN(4) == 0 {
			p.IPs = append(p.IPs, netip.MustParseAddr(fmt.Sprintf("fd00:10:244:%d::%x", node, 2+i)))
		}
		w.pods = append(w.pods, p)
	}
	randSelector := func() *metav1.LabelSelector {
		switch rng.IntN(5) {
		case 0:
			return &metav1.LabelSelector{}
		case 1:
			return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{pick("a", "b"), pick("b", "c")}}}}
		case 2:
			return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "tier", Operator: []metav1.LabelSelectorOperator{metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist}[rng.IntN(2)]}}}
		case 3:
			return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "app", Operator: metav1.LabelSelectorOpNotIn, Values: []string{pick("a", "b", "c")}}}}
		}
		return sel("app", pick("a", "b", "c"))
	}
	randPeers := func() []networkingv1.NetworkPolicyPeer {
		var out []networkingv1.NetworkPolicyPeer
		for j := rng.IntN(3); j > 0; j-- {
			switch rng.IntN(4) {
			case 0:
				out = append(out, networkingv1.NetworkPolicyPeer{PodSelector: randSelector()})
			case 1:
				out = append(out, networkingv1.NetworkPolicyPeer{NamespaceSelector: sel("env", pick("prod", "dev"))})
			case 2:
				out = append(out, networkingv1.NetworkPolicyPeer{PodSelector: randSelector(), NamespaceSelector: randSelector()})
			default:
				b := &networkingv1.IPBlock{CIDR: pick("10.244.1.0/24", "10.244.0.0/16", "172.17.0.0/16", "0.0.0.0/0", "fd00:10:244::/48")}
				if rng.IntN(2) == 0 {
					b.Except = []string{pick("10.244.1.0/28", "10.244.1.4/30", "172.17.1.0/24", "10.244.2.8/29")}
					if (b.CIDR[0] == 'f') != (b.Except[0][0] == 'f') || !netip.MustParsePrefix(b.CIDR).Overlaps(netip.MustParsePrefix(b.Except[0])) {
						b.Except = nil
					}
				}
				out = append(out, networkingv1.NetworkPolicyPeer{IPBlock: b})
			}
		}
		return out
	}
	randPorts := func() []networkingv1.NetworkPolicyPort {
		var out []networkingv1.NetworkPolicyPort
		for j := rng.IntN(3); j > 0; j-- {
			switch rng.IntN(5) {
			case 0:
				out = append(out, tcp([]int{80, 81, 87, 8080}[rng.IntN(4)]))
			case 1:
				out = append(out, networkingv1.NetworkPolicyPort{Protocol: ptr.To(v1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(int32([]int{53, 81}[rng.IntN(2)])))})
			case 2:
				out = append(out, namedPort("http"))
			case 3:
				out = append(out, networkingv1.NetworkPolicyPort{Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(80)), EndPort: ptr.To(int32(85))})
			default:
				out = append(out, networkingv1.NetworkPolicyPort{Protocol: ptr.To([]v1.Protocol{v1.ProtocolUDP, v1.ProtocolSCTP}[rng.IntN(2)])})
			}
		}
		return out
	}
	for i := rng.IntN(6); i > 0; i-- {
		np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: w.nss[rng.IntN(3)].Name, Name: fmt.Sprintf("np%d", i)},
			Spec: networkingv1.NetworkPolicySpec{PodSelector: *randSelector()}}
		switch rng.IntN(3) {
		case 0:
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		case 1:
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
		}
		for j := rng.IntN(3); j > 0; j-- {
			np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: randPeers(), Ports: randPorts()})
		}
		for j := rng.IntN(3); j > 0; j-- {
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: randPeers(), Ports: randPorts()})
		}
		w.policies = append(w.policies, np)
	}
	return w
}

func randomAddr(rng *rand.Rand, w world) netip.Addr {
	if rng.IntN(5) > 0 {
		p := w.pods[rng.IntN(len(w.pods))]
		return p.IPs[rng.IntN(len(p.IPs))]
	}
	return netip.MustParseAddr([]string{"172.17.0.5", "172.17.1.5", "10.244.1.250", "192.0.2.77", "fd00:10:244:1::99"}[rng.IntN(5)])
}

// TestTracerAndEvaluatorAgree: for random clusters and random packets, the
// rules rendered for each node, walked by the tracer, reach the verdict the
// evaluator gives.
func TestTracerAndEvaluatorAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	checked := map[bool]int{}
	for round := 0; round < 300; round++ {
		w := randomWorld(rng)
		c, errs := Compile(w.policies, w.pods, w.nss)
		if len(errs) != 0 {
			t.Fatalf("round %d: compile errors: %v", round, errs)
		}
		tables := map[string]*knftables.Fake{"node-1": renderNode(t, c, "node-1"), "node-2": renderNode(t, c, "node-2")}
		for i := 0; i < 60; i++ {
			src, dst := randomAddr(rng, w), randomAddr(rng, w)
			if src.Is4() != dst.Is4() {
				continue
			}
			proto := []string{"tcp", "udp", "sctp", "icmp"}[rng.IntN(4)]
			port := []int{53, 80, 81, 84, 86, 8080}[rng.IntN(6)]
			if proto == "icmp" {
				port = 0
			}
			want := c.Verdict(src, dst, v1.Protocol(map[string]string{"tcp": "TCP", "udp": "UDP", "sctp": "SCTP", "icmp": "ICMP"}[proto]), int32(port))
			got := traceCluster(t, c, tables, packet{src, dst, proto, port})
			if (got == "accept") != want.Allowed {
				t.Fatalf("round %d: %s -> %s %s/%d: traced %s, the evaluator says allowed=%v\n%+v\npolicies: %s", round, src, dst, proto, port, got, want.Allowed, want, describe(w.policies))
			}
			checked[want.Allowed]++
		}
	}
	if checked[true] < 1000 || checked[false] < 1000 {
		t.Errorf("too one-sided: %d allowed, %d denied packets checked", checked[true], checked[false])
	}
}

func describe(ps []*networkingv1.NetworkPolicy) string {
	out := ""
	for _, p := range ps {
		out += fmt.Sprintf("\n  %s/%s %+v", p.Namespace, p.Name, p.Spec)
	}
	return out
}
