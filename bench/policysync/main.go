// Command policysync measures NetworkPolicy compilation and programming
// against the kernel: P policies over N pods (API objects only; the pods
// are spread over many nodes and the measured node holds its share), the
// first (full) sync, and a sync after one policy changed. Run it as root
// inside a private network namespace, so the table disappears with it:
//
//	unshare --net -- go run ./bench/policysync -pods 5000 -policies 1000
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"time"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/podnet/podnet/bench/internal/policygen"
	"github.com/podnet/podnet/internal/policy"
)

var verbose = new(bool)

func main() {
	nPods := flag.Int("pods", 5000, "pods in the cluster")
	nPolicies := flag.Int("policies", 1000, "NetworkPolicies")
	nNodes := flag.Int("nodes", 50, "nodes the pods are spread over")
	nNS := flag.Int("namespaces", 50, "namespaces")
	flag.BoolVar(verbose, "v", false, "print the element count of every set")
	flag.Parse()
	if err := run(*nPods, *nPolicies, *nNodes, *nNS); err != nil {
		fmt.Fprintln(os.Stderr, "policysync:", err)
		os.Exit(1)
	}
}

// cluster builds the objects: every namespace has apps app-0..app-9 and
// tiers; each policy selects one app of a namespace and allows it from two
// other apps, a namespace selector and an ipBlock, on a numbered and a named
// port; a third of them also restrict egress.
func cluster(nPods, nPolicies, nNodes, nNS int) ([]*policy.Pod, []*policy.Namespace, []*networkingv1.NetworkPolicy) {
	rng := rand.New(rand.NewPCG(1, 2))
	var nss []*policy.Namespace
	for i := 0; i < nNS; i++ {
		nss = append(nss, policy.NamespaceFrom(&v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ns-%d", i),
			Labels: map[string]string{"team": fmt.Sprintf("team-%d", i%5)}}}))
	}
	var pods []*policy.Pod
	for i := 0; i < nPods; i++ {
		node := i % nNodes
		p := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns-%d", i%nNS), Name: fmt.Sprintf("pod-%d", i),
				Labels: map[string]string{"app": fmt.Sprintf("app-%d", rng.IntN(10)), "tier": fmt.Sprintf("t%d", rng.IntN(3))}},
			Spec: v1.PodSpec{NodeName: fmt.Sprintf("node-%d", node), Containers: []v1.Container{{Name: "c",
				Ports: []v1.ContainerPort{{Name: "http", ContainerPort: int32(8000 + rng.IntN(3))}}}}},
			Status: v1.PodStatus{Phase: v1.PodRunning, PodIPs: []v1.PodIP{{IP: fmt.Sprintf("10.%d.%d.%d", 64+node/256, node%256, 2+i/nNodes)}}},
		}
		pods = append(pods, policy.PodFrom(p))
	}
	var nps []*networkingv1.NetworkPolicy
	for i := 0; i < nPolicies; i++ {
		nps = append(nps, policygen.Policy(rng, i, nNS))
	}
	return pods, nss, nps
}

func run(nPods, nPolicies, nNodes, nNS int) error {
	pods, nss, nps := cluster(nPods, nPolicies, nNodes, nNS)
	nft, err := policy.NewNFT()
	if err != nil {
		return err
	}
	s := policy.NewSyncer(nft)
	ctx := context.Background()
	t0 := time.Now()
	c, errs := policy.Compile(nps, pods, nss)
	if len(errs) > 0 {
		return fmt.Errorf("compile: %v", errs)
	}
	compiled := time.Since(t0)
	want := policy.Render(c, "node-0")
	rendered := time.Since(t0) - compiled
	elems := 0
	for name, e := range want {
		elems += len(e)
		if *verbose && len(e) > 0 {
			fmt.Fprintf(os.Stderr, "%s: %d\n", name, len(e))
		}
	}
	res, err := s.Sync(ctx, want)
	if err != nil {
		return err
	}
	total := time.Since(t0)
	// One policy changes its port.
	nps[len(nps)/2].Spec.Ingress[0].Ports[0].Port = ptr.To(intstr.FromInt32(9999))
	t1 := time.Now()
	c, _ = policy.Compile(nps, pods, nss)
	want = policy.Render(c, "node-0")
	one, err := s.Sync(ctx, want)
	if err != nil {
		return err
	}
	oneTotal := time.Since(t1)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	fmt.Println("| policies | pods (this node) | compile | render | apply (full) | total | elements | one policy changed (total, apply) | Go heap |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	fmt.Printf("| %d | %d (%d) | %s | %s | %s | %s | %d | %s, %s (%d operations) | %d MiB |\n", nPolicies, nPods, nPods/nNodes,
		compiled.Round(time.Millisecond), rendered.Round(time.Millisecond), res.Duration.Round(time.Millisecond), total.Round(time.Millisecond),
		elems, oneTotal.Round(time.Millisecond), one.Duration.Round(time.Millisecond), one.Operations, ms.HeapInuse>>20)
	return nil
}
