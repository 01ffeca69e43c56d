// Package policygen makes the synthetic NetworkPolicies the policy
// benchmarks load: realistic in shape (pod and namespace selectors, an
// ipBlock with an exception, numbered and named ports, some egress), and
// deterministic for a given random source.
package policygen

import (
	"fmt"
	"math/rand/v2"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Policy returns synthetic policy i of namespace ns-(i mod nNS): it selects
// one app (labels app=app-0..app-9) and admits two other apps, the pods with
// tier=t0 of one team's namespaces (team=team-0..team-4) and 192.168.0.0/16
// except 192.168.1.0/24, on one TCP port 80..83 and the port named http;
// every third policy also limits egress to one app on UDP 53.
func Policy(rng *rand.Rand, i, nNS int) *networkingv1.NetworkPolicy {
	app := func() map[string]string { return map[string]string{"app": fmt.Sprintf("app-%d", rng.IntN(10))} }
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns-%d", i%nNS), Name: fmt.Sprintf("np-%d", i)},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: app()},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{
					{PodSelector: &metav1.LabelSelector{MatchLabels: app()}},
					{PodSelector: &metav1.LabelSelector{MatchLabels: app()}},
					{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": fmt.Sprintf("team-%d", rng.IntN(5))}},
						PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "t0"}}},
					{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.0.0/16", Except: []string{"192.168.1.0/24"}}},
				},
				Ports: []networkingv1.NetworkPolicyPort{
					{Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(int32(80 + rng.IntN(4))))},
					{Port: ptr.To(intstr.FromString("http"))},
				},
			}}}}
	if i%3 == 0 {
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{
			To:    []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: app()}}},
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(v1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(53))}},
		}}
	}
	return np
}
