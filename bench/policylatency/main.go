// Command policylatency measures how long a NetworkPolicy takes from its
// write to the API server to enforcement in the datapath of a running local
// cluster, and how long connections take to pass again after its deletion,
// by probing with real connections from inside a pod.
//
// It creates a namespace (policylatency-<random>) with two built-in
// test-server pods: "server" (answers on containerPort 8080) on the last
// node and "client" on the first (-same-node: both on the first), waits
// until they are Ready, and then K times (-k, default 20):
//
//  1. creates a policy that selects the server for ingress and allows
//     nothing, and from the moment the Create call returns probes
//     client→server:8080 from inside the client pod's network namespace: a
//     new TCP connection every -every (2 ms; at most -max-inflight at once),
//     each with a -probe-timeout (20 ms) dial. The policy drops, so a blocked
//     dial times out; what counts is when a probe starts. Enforcement is the
//     start of the first failing probe after the last successful one, once
//     the failures after it span -confirm (100 ms): a single probe that
//     misses its 20 ms on a busy machine is not taken for enforcement.
//  2. deletes the policy and, from the moment the Delete call returns,
//     probes the same way until one connection succeeds; its start is when
//     traffic passed again (a success cannot be spurious).
//
// The resolution is -every plus the time a probe takes to be sent; the time
// of an API write is reported separately. The namespace is deleted at the end,
// also on error or SIGINT/SIGTERM. Run as root (it enters the pod's network
// namespace), against a cluster started with `podnet up`:
//
//	make bench-policy        # starts cluster pnbench, runs this, takes it down
//	go run ./bench/policylatency --cluster podnet -k 20
//
// Traffic goes only from the client pod's namespace to the server pod's
// address, both made by the cluster.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/bench/internal/localbench"
	"github.com/podnet/podnet/internal/netns"
)

const serverPort = 8080

type options struct {
	cluster, stateDir string
	k                 int
	every             time.Duration
	maxInFlight       int
	probeTimeout      time.Duration
	confirm           time.Duration
	phaseTimeout      time.Duration
	pause             time.Duration
	sameNode          bool
}

func main() {
	var o options
	flag.StringVar(&o.cluster, "cluster", "podnet", "local cluster name")
	flag.StringVar(&o.stateDir, "state-dir", "", "cluster state directory (default /var/lib/podnet/<cluster>)")
	flag.IntVar(&o.k, "k", 20, "create/delete cycles")
	flag.DurationVar(&o.every, "every", 2*time.Millisecond, "start a probe this often")
	flag.IntVar(&o.maxInFlight, "max-inflight", 16, "probes in flight at most")
	flag.DurationVar(&o.probeTimeout, "probe-timeout", 20*time.Millisecond, "dial timeout of one probe")
	flag.DurationVar(&o.confirm, "confirm", 100*time.Millisecond, "failures after the last success must span this long to count as enforcement")
	flag.DurationVar(&o.phaseTimeout, "phase-timeout", 20*time.Second, "give up on one transition after this long")
	flag.DurationVar(&o.pause, "pause", 500*time.Millisecond, "wait between a reopen and the next policy")
	flag.BoolVar(&o.sameNode, "same-node", false, "put client and server on the same node (default: first and last node)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "policylatency:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (err error) {
	if o.k < 1 || o.every <= 0 || o.maxInFlight < 1 || o.probeTimeout <= 0 {
		return errors.New("need -k >= 1, -every > 0, -max-inflight >= 1, -probe-timeout > 0")
	}
	cfg, rc, err := localbench.Connect(o.cluster, o.stateDir, 100)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}

	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ns := "policylatency-" + hex.EncodeToString(b)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace: %w", err)
	}
	defer func() { err = errors.Join(err, deleteNamespace(cs, ns)) }()

	clientNode, serverNode := cfg.NodeName(1), cfg.NodeName(cfg.Nodes)
	if o.sameNode {
		serverNode = clientNode
	}
	for _, p := range []struct{ name, node string }{{"server", serverNode}, {"client", clientNode}} {
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, podSpec(p.name, p.node), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create pod %s: %w", p.name, err)
		}
	}
	server, err := waitReady(ctx, cs, ns, "server")
	if err != nil {
		return err
	}
	client, err := waitReady(ctx, cs, ns, "client")
	if err != nil {
		return err
	}
	serverIP, err := netip.ParseAddr(server.Status.PodIP)
	if err != nil {
		return fmt.Errorf("server pod IP %q: %w", server.Status.PodIP, err)
	}
	pr := &prober{
		netns: netns.Path(cfg.PodNSName(string(client.UID))),
		dst:   netip.AddrPortFrom(serverIP, serverPort),
		o:     o,
	}
	// The path is open before the first policy (the agent may still be
	// settling right after the pods started).
	if _, err := pr.open(ctx, time.Now()); err != nil {
		return fmt.Errorf("client→server before any policy: %w", err)
	}

	fmt.Printf("# NetworkPolicy write → enforcement, probed from inside a pod\n\n")
	fmt.Printf("cluster %s (%d nodes); client pod %s on %s, server pod %s on %s; probe: TCP connect to %s every %s, %s timeout, at most %d in flight; "+
		"enforcement confirmed by %s of failures\n",
		cfg.Name, cfg.Nodes, client.Status.PodIP, clientNode, serverIP, serverNode, pr.dst, o.every, o.probeTimeout, o.maxInFlight, o.confirm)
	fmt.Printf("load average at start: %s\n\n", localbench.LoadAvg())

	api := cs.NetworkingV1().NetworkPolicies(ns)
	var block, reopen, createCall, deleteCall []time.Duration
	var spurious int
	for i := range o.k {
		name := fmt.Sprintf("deny-%d", i)
		np := &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			},
		}
		c0 := time.Now()
		if _, err := api.Create(ctx, np, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("cycle %d: create policy: %w", i+1, err)
		}
		t0 := time.Now()
		bl, err := pr.blocked(ctx, t0)
		if err != nil {
			return fmt.Errorf("cycle %d: after creating %s: %w", i+1, name, err)
		}
		spurious += bl.spurious

		d0 := time.Now()
		if err := api.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			return fmt.Errorf("cycle %d: delete policy: %w", i+1, err)
		}
		t1 := time.Now()
		op, err := pr.open(ctx, t1)
		if err != nil {
			return fmt.Errorf("cycle %d: after deleting %s: %w", i+1, name, err)
		}
		block, reopen = append(block, bl.after), append(reopen, op.after)
		createCall, deleteCall = append(createCall, t0.Sub(c0)), append(deleteCall, t1.Sub(d0))
		fmt.Fprintf(os.Stderr, "cycle %d/%d: blocked %s after Create returned (%d probes), open again %s after Delete returned (%d probes)\n",
			i+1, o.k, ms(bl.after), bl.probes, ms(op.after), op.probes)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(o.pause):
		}
	}

	fmt.Printf("| transition (K = %d) | p50 | p90 | max | min |\n|---|---|---|---|---|\n", o.k)
	row := func(name string, d []time.Duration) {
		fmt.Printf("| %s | %s | %s | %s | %s |\n", name, ms(localbench.Percentile(d, 50)), ms(localbench.Percentile(d, 90)), ms(slices.Max(d)), ms(slices.Min(d)))
	}
	row("deny policy Create returned → first dropped connection", block)
	row("policy Delete returned → first connection through", reopen)
	row("API call: Create (not included above)", createCall)
	row("API call: Delete (not included above)", deleteCall)
	fmt.Printf("\nper cycle, blocked / open again (ms): %s\n", pairs(block, reopen))
	fmt.Printf("failed probes before the last successful one (spurious, not counted as enforcement): %d\n", spurious)
	fmt.Printf("load average at end: %s\n", localbench.LoadAvg())
	return nil
}

func podSpec(name, node string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: v1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: new(int64),
			Containers: []v1.Container{{
				Name: "srv", Image: "podnet/test",
				Ports: []v1.ContainerPort{{Name: "http", ContainerPort: serverPort, Protocol: v1.ProtocolTCP}},
				ReadinessProbe: &v1.Probe{
					ProbeHandler:  v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(serverPort)}},
					PeriodSeconds: 1,
				},
			}},
		},
	}
}

func waitReady(ctx context.Context, cs kubernetes.Interface, ns, name string) (*v1.Pod, error) {
	deadline := time.Now().Add(90 * time.Second)
	for {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && p.Status.PodIP != "" && ready(p) {
			return p, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("phase %s", p.Status.Phase)
			}
			return nil, fmt.Errorf("pod %s/%s not Ready after 90 s: %w", ns, name, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func ready(p *v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// deleteNamespace deletes the namespace (its pods at once) and waits,
// bounded, until its pods are gone, so no pod namespace outlives the run.
func deleteNamespace(cs kubernetes.Interface, ns string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	zero := int64(0)
	_ = cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
	if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete namespace %s: %w", ns, err)
	}
	for {
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err == nil && len(l.Items) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pods of namespace %s still exist after its deletion", ns)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// prober starts connections from inside the client pod.
type prober struct {
	netns string
	dst   netip.AddrPort
	o     options
}

type probe struct {
	start time.Time
	ok    bool
	err   error
}

type transition struct {
	after    time.Duration // from the API call's return to the deciding probe's start
	probes   int
	spurious int // failures before the last success (blocked only)
}

// dial makes one connection from the client pod and closes it.
func (p *prober) dial() probe {
	var r probe
	r.err = netns.Do(p.netns, func() error {
		r.start = time.Now()
		c, err := net.DialTimeout("tcp", p.dst.String(), p.o.probeTimeout)
		if err == nil {
			c.Close()
		}
		return err
	})
	r.ok = r.err == nil
	return r
}

// blocked probes from since until the failures after the last success span
// o.confirm, and returns when the first of those failures started.
func (p *prober) blocked(ctx context.Context, since time.Time) (transition, error) {
	decide := func(rs []probe) (time.Time, int, bool) {
		var lastOK time.Time
		for _, r := range rs {
			if r.ok && r.start.After(lastOK) {
				lastOK = r.start
			}
		}
		var first, last time.Time
		spurious := 0
		for _, r := range rs {
			switch {
			case r.ok:
			case r.start.After(lastOK):
				if first.IsZero() || r.start.Before(first) {
					first = r.start
				}
				if r.start.After(last) {
					last = r.start
				}
			default:
				spurious++
			}
		}
		return first, spurious, !first.IsZero() && last.Sub(first) >= p.o.confirm
	}
	return p.until(ctx, since, decide)
}

// open probes from since until a connection succeeds, and returns when the
// earliest successful probe started.
func (p *prober) open(ctx context.Context, since time.Time) (transition, error) {
	decide := func(rs []probe) (time.Time, int, bool) {
		var first time.Time
		for _, r := range rs {
			if r.ok && (first.IsZero() || r.start.Before(first)) {
				first = r.start
			}
		}
		return first, 0, !first.IsZero()
	}
	return p.until(ctx, since, decide)
}

// until starts a probe every o.every (at most o.maxInFlight at once) until
// decide says the transition happened; then it lets the probes in flight
// finish (an earlier-started one may change the answer) and decides again
// over all of them, resuming if the answer no longer holds.
func (p *prober) until(ctx context.Context, since time.Time, decide func([]probe) (time.Time, int, bool)) (transition, error) {
	res := make(chan probe, p.o.maxInFlight)
	tick := time.NewTicker(p.o.every)
	defer tick.Stop()
	deadline := time.NewTimer(p.o.phaseTimeout)
	defer deadline.Stop()
	var rs []probe
	// The first probe starts at once, the next ones on the ticker.
	inflight, launching := 1, true
	go func() { res <- p.dial() }()
	var failure error
	for {
		select {
		case <-tick.C:
			if launching && inflight < p.o.maxInFlight {
				inflight++
				go func() { res <- p.dial() }()
			}
		case r := <-res:
			inflight--
			rs = append(rs, r)
		case <-deadline.C:
			launching, failure = false, fmt.Errorf("no transition within %s (%d probes, last error: %v)", p.o.phaseTimeout, len(rs), lastErr(rs))
		case <-ctx.Done():
			launching, failure = false, ctx.Err()
		}
		at, spurious, done := decide(rs)
		if failure != nil {
			if inflight == 0 {
				return transition{}, failure
			}
			continue
		}
		if done {
			launching = false
		}
		if !launching && inflight == 0 {
			if done {
				return transition{after: at.Sub(since), probes: len(rs), spurious: spurious}, nil
			}
			launching = true
		}
	}
}

func lastErr(rs []probe) error {
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].err != nil {
			return rs[i].err
		}
	}
	return nil
}

// pct is the nearest-rank percentile.
func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func pairs(a, b []time.Duration) string {
	var out []string
	for i := range a {
		out = append(out, fmt.Sprintf("%.0f/%.0f", float64(a[i])/1e6, float64(b[i])/1e6))
	}
	return strings.Join(out, " ")
}
