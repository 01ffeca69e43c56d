package policy

import (
	"fmt"
	"math/rand/v2"
	"testing"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// benchCluster: 5,000 pods over 50 namespaces and 50 nodes, 1,000 policies
// each selecting one app and allowing two apps and one tier from a team's
// namespaces on a port.
func benchCluster() ([]*Pod, []*Namespace, []*networkingv1.NetworkPolicy) {
	rng := rand.New(rand.NewPCG(1, 2))
	var nss []*Namespace
	for i := 0; i < 50; i++ {
		nss = append(nss, namespace(fmt.Sprintf("ns-%d", i), map[string]string{"team": fmt.Sprintf("team-%d", i%5)}))
	}
	var pods []*Pod
	for i := 0; i < 5000; i++ {
		node := i % 50
		pods = append(pods, pod(fmt.Sprintf("ns-%d", i%50), fmt.Sprintf("pod-%d", i), fmt.Sprintf("node-%d", node),
			fmt.Sprintf("10.64.%d.%d", node, 2+i/50), map[string]string{"app": fmt.Sprintf("app-%d", rng.IntN(10)), "tier": fmt.Sprintf("t%d", rng.IntN(3))},
			v1.ContainerPort{Name: "http", ContainerPort: int32(8000 + rng.IntN(3))}))
	}
	var nps []*networkingv1.NetworkPolicy
	for i := 0; i < 1000; i++ {
		app := func() *metav1.LabelSelector { return sel("app", fmt.Sprintf("app-%d", rng.IntN(10))) }
		nps = append(nps, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns-%d", i%50), Name: fmt.Sprintf("np-%d", i)},
			Spec: networkingv1.NetworkPolicySpec{PodSelector: *app(), Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{PodSelector: app()}, {PodSelector: app()},
					{NamespaceSelector: sel("team", fmt.Sprintf("team-%d", rng.IntN(5))), PodSelector: sel("tier", "t0")}},
				Ports: []networkingv1.NetworkPolicyPort{tcp(80 + rng.IntN(4)), namedPort("http")}}}}})
	}
	return pods, nss, nps
}

func BenchmarkCompile(b *testing.B) {
	pods, nss, nps := benchCluster()
	for b.Loop() {
		Compile(nps, pods, nss)
	}
}

func BenchmarkRender(b *testing.B) {
	pods, nss, nps := benchCluster()
	c, _ := Compile(nps, pods, nss)
	for b.Loop() {
		Render(c, "node-0")
	}
}
