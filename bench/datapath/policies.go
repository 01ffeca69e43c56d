package main

// The NetworkPolicy mode (-policies N): pod→pod direct, without and with the
// policy table `inet podnet-policy` of N policies loaded in the node.
//
// The policies are compiled (policy.Compile) over synthetic objects in the
// shape of bench/policysync: 50 namespaces, -policy-pods pods spread over 50
// nodes (so about 100 on this node, node-0, with addresses in 10.64.0.0/10
// that are never contacted), N-2 policies that select an app of a namespace
// and allow it from two other apps, a namespace selector and an ipBlock on a
// numbered and a named port, a third of them with egress rules too. The
// client and server pods are in these objects with their real addresses on
// node-0 and labels that the synthetic policies select as well (app-3,
// tier t0 in ns-0). Two more policies make the tested path pass through
// both directions' lookups:
//
//   - bench-server-ingress selects the server and allows the client pod
//     (podSelector) on TCP 5201, 7000 and 7002: the server is
//     ingress-isolated, the client is an exact (hash set) element;
//   - bench-client-egress selects the client (policyTypes Egress) and
//     allows 10.250.0.0/24 on the same ports: the client is
//     egress-isolated, the server is reached through a range (interval set)
//     element, the lookup that costs most.
//
// The rendered table (policy.Render for node-0) is loaded with a full sync of
// a fresh policy.Syncer before each "with" run and removed (`delete table`,
// through knftables, not through the Syncer) before each "without" run, only
// when the state changes. Within a round the metrics go A,B / B,A / A,B so
// each pair is back to back with two table changes per round; the starting
// arm flips every round. New-connection runs use port 7001 without the table
// and 7002 with it, so the two arms never share a 4-tuple; 7001 is not
// allowed, and the run checks it is dropped while the table is loaded.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"

	"github.com/podnet/podnet/bench/internal/netperf"
	"github.com/podnet/podnet/bench/internal/policygen"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/policy"
)

const benchNode = "node-0"

// allowedPorts are the server ports the two bench policies allow; connPortDir
// (7001) is left out on purpose.
var allowedPorts = []int32{iperfPort, rrPort, connPortSvc}

func runPolicies(ctx context.Context, o options, t topo, direct target, iperfPid, clientCPU, serverCPU int) error {
	proxyNote := "no proxy table (the node has no conntrack user without the policy table)"
	if o.proxy {
		load, ops, err := loadTable(ctx, t, o.services, o.endpoints)
		if err != nil {
			return err
		}
		proxyNote = fmt.Sprintf("proxy table loaded in both arms: %d unrelated Services × %d endpoints + the target Service (%s, %d operations)",
			o.services, o.endpoints, load.Round(time.Millisecond), ops)
	}

	pods, nss, nps := policyObjects(o.policies, o.policyPods, t)
	t0 := time.Now()
	compiled, errs := policy.Compile(nps, pods, nss)
	if len(errs) > 0 {
		return fmt.Errorf("compile: %v", errs)
	}
	compileDur := time.Since(t0)
	want := policy.Render(compiled, benchNode)
	renderDur := time.Since(t0) - compileDur
	elems := 0
	for _, e := range want {
		elems += len(e)
	}
	// The model must say what the datapath is meant to show.
	if err := checkModel(compiled, want, t); err != nil {
		return err
	}

	loaded := false
	var loads []time.Duration
	load := func(ctx context.Context) error {
		if loaded {
			return nil
		}
		err := netns.Do(t.node, func() error {
			nft, err := policy.NewNFT()
			if err != nil {
				return err
			}
			res, err := policy.NewSyncer(nft).Sync(ctx, want)
			if err == nil && !res.Full {
				err = fmt.Errorf("sync was not a full one")
			}
			loads = append(loads, res.Duration)
			return err
		})
		if err != nil {
			return fmt.Errorf("load policy table: %w", err)
		}
		loaded = true
		return settle(ctx)
	}
	unload := func(ctx context.Context) error {
		if !loaded {
			return nil
		}
		err := netns.Do(t.node, func() error {
			nft, err := knftables.New(knftables.InetFamily, policy.Table)
			if err != nil {
				return err
			}
			tx := nft.NewTransaction()
			tx.Delete(&knftables.Table{})
			return nft.Run(ctx, tx)
		})
		if err != nil {
			return fmt.Errorf("delete policy table: %w", err)
		}
		loaded = false
		return settle(ctx)
	}

	without := arm{label: "no policy table", tg: direct, enter: unload}
	withTg := direct
	withTg.conn = netip.AddrPortFrom(t.serverIP, connPortSvc)
	with := arm{label: fmt.Sprintf("%d policies loaded", o.policies), tg: withTg, enter: load}

	// Sanity, both states: the allowed ports pass (the server sees the
	// client's address), and port 7001 is dropped only with the table.
	blocked := netip.AddrPortFrom(t.serverIP, connPortDir)
	for _, a := range []arm{with, without} {
		if err := a.enter(ctx); err != nil {
			return err
		}
		for _, p := range allowedPorts[1:] {
			if err := checkPath(t, target{name: a.label, rr: netip.AddrPortFrom(t.serverIP, uint16(p))}); err != nil {
				return err
			}
		}
		err := dialOnce(t.client, blocked, 300*time.Millisecond)
		switch {
		case loaded && err == nil:
			return fmt.Errorf("with the policy table loaded, %s is reachable: the table does not enforce", blocked)
		case !loaded && err != nil:
			return fmt.Errorf("without the policy table, %s: %w", blocked, err)
		}
		if _, err := netperf.PingPong(ctx, t.client, clientCPU, a.tg.rr, 500*time.Millisecond); err != nil {
			return fmt.Errorf("warm-up %s: %w", a.label, err)
		}
	}
	if err := netperf.WaitListening(ctx, iperfPid, iperfPort); err != nil {
		return err
	}

	fmt.Printf("# Datapath: pod→pod direct, without vs with %d NetworkPolicies, same run\n\n", o.policies)
	fmt.Printf("kernel %s, %d CPUs; client pod %s, server pod %s, both on the node\n",
		netperf.KernelRelease(), runtime.NumCPU(), t.clientIP, t.serverIP)
	fmt.Printf("policy table: %d policies over %d pods + client + server (%d on this node); compile %s, render %s, %d elements; "+
		"server ingress-isolated (client allowed by a pod selector: hash set), client egress-isolated (server allowed through 10.250.0.0/24: interval set)\n",
		o.policies, o.policyPods, countOnNode(pods), compileDur.Round(time.Millisecond), renderDur.Round(time.Millisecond), elems)
	fmt.Printf("%s\n", proxyNote)
	if clientCPU >= 0 {
		fmt.Printf("client pinned to CPU %d, server to CPU %d\n", clientCPU, serverCPU)
	}
	fmt.Printf("%d rounds; per round each metric is measured in both states back to back (A,B / B,A / A,B, A flips every round): "+
		"the table is loaded (full sync of a fresh Syncer) or deleted between runs when the state changes; medians\n", o.rounds)
	fmt.Printf("load average at start: %s (other work on this machine skews absolute numbers; the ratios come from back-to-back runs)\n\n", loadAvg())

	arms := [2]arm{without, with}
	order := func(r, metric int) []int {
		first := (r + metric) % 2
		return []int{first, 1 - first}
	}
	res, err := measure(ctx, o, t, arms, order, clientCPU, serverCPU)
	if err != nil {
		return err
	}
	res.print(o, arms)
	slices.Sort(loads)
	fmt.Printf("\npolicy table full syncs during the run (incl. the sanity check): %d, median %s (min %s, max %s)\n",
		len(loads), loads[len(loads)/2].Round(time.Millisecond), loads[0].Round(time.Millisecond), loads[len(loads)-1].Round(time.Millisecond))
	return unload(ctx)
}

// settle gives the kernel a moment after a table change (deferred frees of
// the replaced sets) before a measurement starts.
func settle(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(300 * time.Millisecond):
		return nil
	}
}

// dialOnce connects from inside the namespace at nsPath and closes.
func dialOnce(nsPath string, dst netip.AddrPort, timeout time.Duration) error {
	return netns.Do(nsPath, func() error {
		c, err := net.DialTimeout("tcp", dst.String(), timeout)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// checkModel asks the compiled model (the evaluator the renderer shares)
// whether the bench's path is what it should be: both pods isolated, the
// tested ports allowed in both directions, 7001 denied; and the rendered
// sets name both pods.
func checkModel(c *policy.Compiled, want policy.Desired, t topo) error {
	for _, p := range allowedPorts {
		d := c.Verdict(t.clientIP, t.serverIP, v1.ProtocolTCP, p)
		if !d.Allowed || !d.Egress.Isolated() || !d.Ingress.Isolated() {
			return fmt.Errorf("model: client→server TCP %d: allowed %v, client egress-isolated %v, server ingress-isolated %v; want all true",
				p, d.Allowed, d.Egress.Isolated(), d.Ingress.Isolated())
		}
	}
	if d := c.Verdict(t.clientIP, t.serverIP, v1.ProtocolTCP, connPortDir); d.Allowed {
		return fmt.Errorf("model: client→server TCP %d is allowed; want denied", connPortDir)
	}
	has := func(set, elem string) bool { return slices.Contains(want[set], elem) }
	if !has("ingress-isolated-v4", t.serverIP.String()) || !has("egress-isolated-v4", t.clientIP.String()) {
		return fmt.Errorf("rendered table: server not in ingress-isolated-v4 or client not in egress-isolated-v4")
	}
	if !has("ingress-ports-exact-v4", fmt.Sprintf("%s . %s . tcp . %d", t.serverIP, t.clientIP, rrPort)) {
		return fmt.Errorf("rendered table: no exact ingress element for server . client . tcp . %d", rrPort)
	}
	found := false
	for _, e := range want["egress-ports-v4"] {
		found = found || strings.HasPrefix(e, t.clientIP.String()+" . 10.250.0.0")
	}
	if !found {
		return fmt.Errorf("rendered table: no egress range element for the client towards 10.250.0.0/24")
	}
	return nil
}

func countOnNode(pods []*policy.Pod) int {
	n := 0
	for _, p := range pods {
		if p.Node == benchNode {
			n++
		}
	}
	return n
}

// policyObjects builds the pods, namespaces and policies (see the top of
// this file): nPods synthetic pods plus the real client and server, and
// nPolicies policies of which two are about the client and server.
func policyObjects(nPolicies, nPods int, t topo) ([]*policy.Pod, []*policy.Namespace, []*networkingv1.NetworkPolicy) {
	const nNodes, nNS = 50, 50
	rng := rand.New(rand.NewPCG(1, 2))
	var nss []*policy.Namespace
	for i := range nNS {
		nss = append(nss, policy.NamespaceFrom(&v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ns-%d", i),
			Labels: map[string]string{"team": fmt.Sprintf("team-%d", i%5)}}}))
	}
	mkPod := func(ns, name, node string, labels map[string]string, ip netip.Addr, port int32) *policy.Pod {
		return policy.PodFrom(&v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
			Spec: v1.PodSpec{NodeName: node, Containers: []v1.Container{{Name: "c",
				Ports: []v1.ContainerPort{{Name: "http", ContainerPort: port}}}}},
			Status: v1.PodStatus{Phase: v1.PodRunning, PodIPs: []v1.PodIP{{IP: ip.String()}}},
		})
	}
	var pods []*policy.Pod
	for i := range nPods {
		node := i % nNodes
		q := i / nNodes
		ip := netip.AddrFrom4([4]byte{byte(64 + node/256), byte(node % 256), byte(2 + q/250), byte(2 + q%250)})
		pods = append(pods, mkPod(fmt.Sprintf("ns-%d", i%nNS), fmt.Sprintf("pod-%d", i), fmt.Sprintf("node-%d", node),
			map[string]string{"app": fmt.Sprintf("app-%d", rng.IntN(10)), "tier": fmt.Sprintf("t%d", rng.IntN(3))},
			ip, int32(8000+rng.IntN(3))))
	}
	pods = append(pods,
		mkPod("ns-0", "bench-client", benchNode, map[string]string{"app": "app-3", "tier": "t0", "role": "bench-client"}, t.clientIP, 8000),
		mkPod("ns-0", "bench-server", benchNode, map[string]string{"app": "app-3", "tier": "t0", "role": "bench-server"}, t.serverIP, 8000))

	var ports []networkingv1.NetworkPolicyPort
	for _, p := range allowedPorts {
		ports = append(ports, networkingv1.NetworkPolicyPort{Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(p))})
	}
	role := func(r string) metav1.LabelSelector {
		return metav1.LabelSelector{MatchLabels: map[string]string{"role": r}}
	}
	nps := []*networkingv1.NetworkPolicy{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns-0", Name: "bench-server-ingress"},
			Spec: networkingv1.NetworkPolicySpec{PodSelector: role("bench-server"),
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From:  []networkingv1.NetworkPolicyPeer{{PodSelector: ptr.To(role("bench-client"))}},
					Ports: ports,
				}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns-0", Name: "bench-client-egress"},
			Spec: networkingv1.NetworkPolicySpec{PodSelector: role("bench-client"),
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
				Egress: []networkingv1.NetworkPolicyEgressRule{{
					To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: podCIDR}}},
					Ports: ports,
				}}}},
	}
	for i := 0; len(nps) < nPolicies; i++ {
		nps = append(nps, policygen.Policy(rng, i, nNS))
	}
	return pods, nss, nps
}
