package e2e

// Helpers of the NetworkPolicy truth-table suite (netpol_test.go), in the
// style of the upstream Kubernetes suite (test/e2e/network/netpol): three
// namespaces x, y, z with pods a, b, c each, every pod serving ports 80 and
// 81 on TCP and UDP; a case applies policies, then probes the whole 9x9
// matrix with real connections from inside the pods' network namespaces and
// compares it with a matrix written by hand. Expectations are never
// computed with internal/policy: the suite checks the implementation, it
// does not restate it.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/testserver"
)

const (
	// npProbeTimeout bounds one connection attempt; a dropped one costs
	// this much.
	npProbeTimeout = time.Second
	// npConcurrency bounds the connections in flight during one matrix.
	npConcurrency = 48
	// npSettle is how long a matrix may take to reach the expectation:
	// enforcement follows the API asynchronously.
	npSettle = 10 * time.Second
)

// npPod is one pod of the suite.
type npPod struct {
	NS, Name string // short names: "x", "a"
	RealNS   string // the namespace's unique name
	IP       string
	Node     string
	NetNS    string // path of the pod's network namespace
	UID      types.UID
}

// Key is the short name used in the grids: "x/a".
func (p *npPod) Key() string { return p.NS + "/" + p.Name }

// npEnv is the suite's fixture: the namespaces and the pods, made once.
type npEnv struct {
	c  *cluster
	cs kubernetes.Interface
	// ns maps a short namespace name to its unique name.
	ns   map[string]string
	pods []*npPod // x/a, x/b, x/c, y/a, ... z/c
	// extra pods (named-port case) by key.
	extra map[string]*npPod
	// policies created by the running case: real namespace -> names.
	policies map[string][]string
}

var npNamespaces = []string{"x", "y", "z"}
var npPodNames = []string{"a", "b", "c"}

// npServingPorts are the container ports of the matrix pods, named as in
// the upstream suite.
func npServingPorts() []v1.ContainerPort {
	var out []v1.ContainerPort
	for _, proto := range []v1.Protocol{v1.ProtocolTCP, v1.ProtocolUDP} {
		for _, port := range []int32{80, 81} {
			out = append(out, v1.ContainerPort{
				Name:          fmt.Sprintf("serve-%d-%s", port, strings.ToLower(string(proto))),
				ContainerPort: port, Protocol: proto,
			})
		}
	}
	return out
}

// npPodSpec is a built-in test server pod pinned to a node, Ready only while
// the node reaches its port 80 (failureThreshold 1, so a blocked probe shows
// within about a second).
func npPodSpec(name, node string, labels map[string]string, ports []v1.ContainerPort) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: v1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: new(int64),
			Containers: []v1.Container{{
				Name: "srv", Image: "podnet/test", Ports: ports,
				ReadinessProbe: &v1.Probe{
					ProbeHandler:  v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(ports[0].ContainerPort)}},
					PeriodSeconds: 1, FailureThreshold: 1,
				},
			}},
		},
	}
}

// setupNetpol creates namespaces x, y, z (unique names, labelled ns=x ...)
// and w (the named-port pair), the nine matrix pods spread over both nodes
// (so both same-node and cross-node pairs are probed), and waits until all
// are Ready. Everything is removed when the test ends.
func setupNetpol(t *testing.T) *npEnv {
	t.Helper()
	c := sharedCluster(t)
	e := &npEnv{c: c, cs: c.client(t), ns: map[string]string{}, extra: map[string]*npPod{}, policies: map[string][]string{}}
	ctx := context.Background()
	suffix := randHex(3)
	nodes := []string{c.name + "-node-1", c.name + "-node-2"}
	for _, short := range append(cloneSlice(npNamespaces), "w") {
		name := "netpol-" + short + "-" + suffix
		_, err := e.cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: name, Labels: map[string]string{"ns": short}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create namespace %s: %v", name, err)
		}
		e.ns[short] = name
		t.Cleanup(func() { e.deleteNamespace(t, name) })
	}
	i := 0
	for _, ns := range npNamespaces {
		for _, name := range npPodNames {
			labels := map[string]string{"pod": name}
			if name == "b" {
				// Only the b pods carry a tier: the key matchExpressions
				// Exists / DoesNotExist tell apart.
				labels["tier"] = "backend"
			}
			p := npPodSpec(name, nodes[i%2], labels, npServingPorts())
			i++
			if _, err := e.cs.CoreV1().Pods(e.ns[ns]).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatalf("create pod %s/%s: %v", ns, name, err)
			}
			e.pods = append(e.pods, &npPod{NS: ns, Name: name, RealNS: e.ns[ns], Node: p.Spec.NodeName})
		}
	}
	// The named-port pair: "web" is port 80 in np1 and 81 in np2; each
	// also serves the other number without a name.
	for j, web := range []int32{80, 81} {
		other := int32(161 - web)
		name := fmt.Sprintf("np%d", j+1)
		ports := []v1.ContainerPort{{Name: "web", ContainerPort: web, Protocol: v1.ProtocolTCP}, {ContainerPort: other, Protocol: v1.ProtocolTCP}}
		p := npPodSpec(name, nodes[j], map[string]string{"pod": name}, ports)
		if _, err := e.cs.CoreV1().Pods(e.ns["w"]).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod w/%s: %v", name, err)
		}
		e.extra["w/"+name] = &npPod{NS: "w", Name: name, RealNS: e.ns["w"], Node: p.Spec.NodeName}
	}
	cfg := localcluster.DefaultConfig(c.name)
	all := append(cloneSlice(e.pods), e.extraPods()...)
	start := time.Now()
	eventually(t, 90*time.Second, "netpol pods Ready", func() error {
		for _, p := range all {
			got, err := e.cs.CoreV1().Pods(p.RealNS).Get(ctx, p.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got.Status.PodIP == "" || !podReady(got) {
				return fmt.Errorf("%s is not Ready yet (phase %s)", p.Key(), got.Status.Phase)
			}
			p.IP, p.UID = got.Status.PodIP, got.UID
			p.NetNS = netns.Path(cfg.PodNSName(string(got.UID)))
		}
		return nil
	})
	t.Logf("netpol fixture: namespaces %v, %d pods Ready after %s", e.ns, len(all), time.Since(start).Round(100*time.Millisecond))
	return e
}

func cloneSlice[T any](s []T) []T { return append([]T(nil), s...) }

func (e *npEnv) extraPods() []*npPod {
	return []*npPod{e.extra["w/np1"], e.extra["w/np2"]}
}

// deleteNamespace deletes a namespace of the suite and waits (bounded) until
// its pods are gone, so no pod namespace outlives the test.
func (e *npEnv) deleteNamespace(t *testing.T, name string) {
	ctx := context.Background()
	zero := int64(0)
	_ = e.cs.CoreV1().Pods(name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
	if err := e.cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("delete namespace %s: %v", name, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		l, err := e.cs.CoreV1().Pods(name).List(ctx, metav1.ListOptions{})
		if err == nil && len(l.Items) == 0 {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Errorf("pods of namespace %s still exist 60s after its deletion", name)
}

// pod returns the matrix pod "x/a" (or an extra pod "w/np1").
func (e *npEnv) pod(key string) *npPod {
	for _, p := range e.pods {
		if p.Key() == key {
			return p
		}
	}
	if p := e.extra[key]; p != nil {
		return p
	}
	panic("netpol: no pod " + key)
}

// begin starts a case: when it ends (its own cleanups, such as label
// restores, run first), the policies it created are deleted and the suite
// waits until the matrix is fully open again, so every case starts from
// the same state and stale rules cannot make a later case pass or fail.
func (e *npEnv) begin(t *testing.T) {
	t.Cleanup(func() {
		ctx := context.Background()
		for ns, names := range e.policies {
			for _, n := range names {
				if err := e.cs.NetworkingV1().NetworkPolicies(ns).Delete(ctx, n, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
					t.Errorf("delete policy %s/%s: %v", ns, n, err)
				}
			}
		}
		e.policies = map[string][]string{}
		if !e.check(t, "after the case's policies were deleted", e.reach(true), v1.ProtocolTCP, 80) {
			t.Errorf("the matrix did not reopen after the case's policies were deleted: later cases may fail because of this one")
		}
	})
}

// create creates a policy in the namespace with the short name ns.
func (e *npEnv) create(t *testing.T, ns string, p *networkingv1.NetworkPolicy) {
	t.Helper()
	p = p.DeepCopy()
	p.Namespace = e.ns[ns]
	if _, err := e.cs.NetworkingV1().NetworkPolicies(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create policy %s/%s: %v", ns, p.Name, err)
	}
	e.policies[p.Namespace] = append(e.policies[p.Namespace], p.Name)
}

// update replaces the spec of an existing policy.
func (e *npEnv) update(t *testing.T, ns string, p *networkingv1.NetworkPolicy) {
	t.Helper()
	api := e.cs.NetworkingV1().NetworkPolicies(e.ns[ns])
	cur, err := api.Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get policy %s/%s: %v", ns, p.Name, err)
	}
	cur.Spec = *p.Spec.DeepCopy()
	if _, err := api.Update(context.Background(), cur, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update policy %s/%s: %v", ns, p.Name, err)
	}
}

// labelPatch is a merge patch that sets labels (a nil value removes one).
func labelPatch(labels map[string]*string) []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	return b
}

// setPodLabel sets (value != nil) or removes a label of a matrix pod, and
// restores the original when the case ends.
func (e *npEnv) setPodLabel(t *testing.T, key, label string, value *string) {
	t.Helper()
	p := e.pod(key)
	api := e.cs.CoreV1().Pods(p.RealNS)
	cur, err := api.Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var orig *string
	if v, ok := cur.Labels[label]; ok {
		orig = &v
	}
	if _, err := api.Patch(context.Background(), p.Name, types.MergePatchType, labelPatch(map[string]*string{label: value}), metav1.PatchOptions{}); err != nil {
		t.Fatalf("label pod %s: %v", key, err)
	}
	t.Cleanup(func() {
		_, _ = api.Patch(context.Background(), p.Name, types.MergePatchType, labelPatch(map[string]*string{label: orig}), metav1.PatchOptions{})
	})
}

// setNamespaceLabel does the same for a namespace of the suite.
func (e *npEnv) setNamespaceLabel(t *testing.T, ns, label string, value *string) {
	t.Helper()
	api := e.cs.CoreV1().Namespaces()
	cur, err := api.Get(context.Background(), e.ns[ns], metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var orig *string
	if v, ok := cur.Labels[label]; ok {
		orig = &v
	}
	if _, err := api.Patch(context.Background(), e.ns[ns], types.MergePatchType, labelPatch(map[string]*string{label: value}), metav1.PatchOptions{}); err != nil {
		t.Fatalf("label namespace %s: %v", ns, err)
	}
	t.Cleanup(func() {
		_, _ = api.Patch(context.Background(), e.ns[ns], types.MergePatchType, labelPatch(map[string]*string{label: orig}), metav1.PatchOptions{})
	})
}

// ---- expectations ----

// peer names pods for expectations: an empty field matches every
// namespace or pod, as upstream's Peer does.
type peer struct{ NS, Pod string }

func (p peer) matches(q *npPod) bool {
	return (p.NS == "" || p.NS == q.NS) && (p.Pod == "" || p.Pod == q.Name)
}

// reachability is an expected matrix over froms x tos.
type reachability struct {
	froms, tos []*npPod
	want       map[string]map[string]bool
}

// reach returns the 9x9 matrix with every cell set to def.
func (e *npEnv) reach(def bool) *reachability { return newReachability(e.pods, e.pods, def) }

func newReachability(froms, tos []*npPod, def bool) *reachability {
	r := &reachability{froms: froms, tos: tos, want: map[string]map[string]bool{}}
	for _, f := range froms {
		r.want[f.Key()] = map[string]bool{}
		for _, to := range tos {
			r.want[f.Key()][to.Key()] = def
		}
	}
	return r
}

// expect sets every cell from a pod matching from to a pod matching to.
func (r *reachability) expect(from, to peer, ok bool) *reachability {
	for _, f := range r.froms {
		for _, d := range r.tos {
			if from.matches(f) && to.matches(d) {
				r.want[f.Key()][d.Key()] = ok
			}
		}
	}
	return r
}

// ingress sets every cell into the pods matching to.
func (r *reachability) ingress(to peer, ok bool) *reachability { return r.expect(peer{}, to, ok) }

// egress sets every cell out of the pods matching from.
func (r *reachability) egress(from peer, ok bool) *reachability { return r.expect(from, peer{}, ok) }

// table returns the expected grid. A pod always reaches itself: the
// packets stay on the pod's loopback and no policy applies to them
// (upstream's AllowLoopback, applied to every expectation).
func (r *reachability) table() *truthTable {
	tt := newTruthTable(r.froms, r.tos)
	for _, f := range r.froms {
		for _, d := range r.tos {
			tt.v[f.Key()][d.Key()] = r.want[f.Key()][d.Key()] || f == d
		}
	}
	return tt
}

// truthTable is a grid of connectivity, printed as upstream prints it:
// "." connected, "X" blocked.
type truthTable struct {
	froms, tos []string
	v          map[string]map[string]bool
	// why holds, for observed tables, the error of each failed probe.
	why map[string]string
}

func newTruthTable(froms, tos []*npPod) *truthTable {
	tt := &truthTable{v: map[string]map[string]bool{}, why: map[string]string{}}
	for _, f := range froms {
		tt.froms = append(tt.froms, f.Key())
		tt.v[f.Key()] = map[string]bool{}
	}
	for _, d := range tos {
		tt.tos = append(tt.tos, d.Key())
	}
	return tt
}

func (tt *truthTable) prettyPrint(indent string, mark func(from, to string) string) string {
	var b strings.Builder
	b.WriteString(indent + "-\t" + strings.Join(tt.tos, "\t") + "\n")
	for _, f := range tt.froms {
		b.WriteString(indent + f)
		for _, d := range tt.tos {
			b.WriteString("\t" + mark(f, d))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (tt *truthTable) String() string {
	return tt.prettyPrint("\t", func(f, d string) string {
		if tt.v[f][d] {
			return "."
		}
		return "X"
	})
}

// compareTables returns the differing cells ("x/a -> y/b: what was
// observed") and the comparison grid ("." equal, "X" different).
func compareTables(want, got *truthTable) ([]string, string) {
	var diffs []string
	grid := want.prettyPrint("\t", func(f, d string) string {
		if want.v[f][d] == got.v[f][d] {
			return "."
		}
		if got.v[f][d] {
			diffs = append(diffs, f+" -> "+d+": connected, want blocked")
		} else {
			diffs = append(diffs, f+" -> "+d+": blocked ("+got.why[f+" -> "+d]+"), want connected")
		}
		return "X"
	})
	return diffs, grid
}

// firstFew joins up to n lines.
func firstFew(lines []string, n int) string {
	if len(lines) > n {
		return strings.Join(lines[:n], "; ") + fmt.Sprintf("; ... (%d more)", len(lines)-n)
	}
	return strings.Join(lines, "; ")
}

// ---- probing ----

// probeConn connects from inside the namespace at nsPath to target and
// returns the test server's reply line. TCP sends an HTTP/1.0 request; UDP
// sends a datagram, resent a few times within the timeout.
func probeConn(nsPath string, proto v1.Protocol, target string, timeout time.Duration) (string, error) {
	network := strings.ToLower(string(proto))
	var conn net.Conn
	err := netns.Do(nsPath, func() (err error) {
		conn, err = (&net.Dialer{Timeout: timeout}).Dial(network, target)
		return err
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	deadline := time.Now().Add(timeout)
	_ = conn.SetDeadline(deadline)
	if proto == v1.ProtocolUDP {
		buf := make([]byte, 2048)
		for {
			if _, err := conn.Write([]byte("probe\n")); err != nil {
				return "", err
			}
			_ = conn.SetReadDeadline(minTime(deadline, time.Now().Add(timeout/3)))
			n, err := conn.Read(buf)
			if n > 0 {
				return string(buf[:n]), nil
			}
			if time.Now().After(deadline) || err != nil && !isTimeout(err) {
				return "", err
			}
		}
	}
	host, _, _ := net.SplitHostPort(target)
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", host); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(conn, 8192))
	reply := string(b)
	if i := strings.Index(reply, "\r\n\r\n"); i >= 0 {
		return reply[i+4:], nil
	}
	if err == nil {
		err = fmt.Errorf("no HTTP reply: %q", reply)
	}
	return "", err
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// connected says whether from reaches to on proto/port: a reply came, and
// it is the target pod's (a reply from anyone else is a failure).
func connected(from, to *npPod, proto v1.Protocol, port int) (bool, string) {
	reply, err := probeConn(from.NetNS, proto, net.JoinHostPort(to.IP, strconv.Itoa(port)), npProbeTimeout)
	if err != nil {
		return false, err.Error()
	}
	pod, _, ok := testserver.ParseReply(reply)
	if !ok || pod != to.Name {
		return false, fmt.Sprintf("unexpected reply %q (want pod %s)", reply, to.Name)
	}
	return true, ""
}

// probeMatrix probes every cell in parallel (bounded).
func probeMatrix(froms, tos []*npPod, proto v1.Protocol, port int) *truthTable {
	tt := newTruthTable(froms, tos)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, npConcurrency)
	for _, f := range froms {
		for _, d := range tos {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				ok, why := connected(f, d, proto, port)
				mu.Lock()
				tt.v[f.Key()][d.Key()] = ok
				if !ok {
					tt.why[f.Key()+" -> "+d.Key()] = why
				}
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	return tt
}

// check probes the matrix until it equals the expectation or npSettle
// passes, and reports a mismatch with the expected, observed and
// comparison grids. It returns whether the matrix matched.
func (e *npEnv) check(t *testing.T, what string, r *reachability, proto v1.Protocol, port int) bool {
	t.Helper()
	want := r.table()
	start := time.Now()
	var got *truthTable
	var diffs, firstDiffs []string
	var grid string
	rounds := 0
	for {
		rounds++
		got = probeMatrix(r.froms, r.tos, proto, port)
		diffs, grid = compareTables(want, got)
		if rounds == 1 {
			firstDiffs = diffs
		}
		if len(diffs) == 0 {
			note := ""
			if rounds > 1 {
				// Usually the policy was not enforced yet; a cell that
				// was blocked while it should connect is worth a look.
				note = fmt.Sprintf("; the first round differed in %d cell(s): %s", len(firstDiffs), firstFew(firstDiffs, 3))
			}
			t.Logf("%s/%d %s: matrix as expected after %s (%d probe round(s))%s", strings.ToLower(string(proto)), port, what, time.Since(start).Round(10*time.Millisecond), rounds, note)
			return true
		}
		if time.Since(start) > npSettle {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("%s/%d %s: %d of %d connections differ after %s (%d probe rounds)\nexpected:\n%s\nobserved:\n%s\ncomparison (X = mismatch):\n%s\n%s",
		strings.ToLower(string(proto)), port, what, len(diffs), len(want.froms)*len(want.tos), time.Since(start).Round(10*time.Millisecond), rounds, want, got, grid, strings.Join(diffs, "\n"))
	return false
}

// validate checks the 9x9 matrix on each protocol/port given as "tcp/80".
func (e *npEnv) validate(t *testing.T, what string, r *reachability, ports ...string) {
	t.Helper()
	for _, pp := range ports {
		proto, port := parseProtoPort(pp)
		e.check(t, what, r, proto, port)
	}
}

func parseProtoPort(s string) (v1.Protocol, int) {
	p, n, _ := strings.Cut(s, "/")
	port, err := strconv.Atoi(n)
	if err != nil {
		panic("netpol: bad port " + s)
	}
	return v1.Protocol(strings.ToUpper(p)), port
}

// ---- policy builders ----

func matchLabels(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func matchExpr(key string, op metav1.LabelSelectorOperator, values ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

// policy makes a NetworkPolicy selecting sel; types, ingress and egress
// are set by the caller.
func policy(name string, sel *metav1.LabelSelector, types ...networkingv1.PolicyType) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: *sel, PolicyTypes: types},
	}
}

func withIngress(p *networkingv1.NetworkPolicy, rules ...networkingv1.NetworkPolicyIngressRule) *networkingv1.NetworkPolicy {
	p.Spec.Ingress = append(p.Spec.Ingress, rules...)
	return p
}

func withEgress(p *networkingv1.NetworkPolicy, rules ...networkingv1.NetworkPolicyEgressRule) *networkingv1.NetworkPolicy {
	p.Spec.Egress = append(p.Spec.Egress, rules...)
	return p
}

// from is an ingress rule; no peers means from everywhere, no ports every
// port.
func from(ports []networkingv1.NetworkPolicyPort, peers ...networkingv1.NetworkPolicyPeer) networkingv1.NetworkPolicyIngressRule {
	return networkingv1.NetworkPolicyIngressRule{From: peers, Ports: ports}
}

// to is an egress rule.
func to(ports []networkingv1.NetworkPolicyPort, peers ...networkingv1.NetworkPolicyPeer) networkingv1.NetworkPolicyEgressRule {
	return networkingv1.NetworkPolicyEgressRule{To: peers, Ports: ports}
}

func podPeer(sel *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: sel}
}

func nsPeer(sel *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: sel}
}

func podNSPeer(nsSel, podSel *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: nsSel, PodSelector: podSel}
}

func ipPeer(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

func ports(ps ...networkingv1.NetworkPolicyPort) []networkingv1.NetworkPolicyPort { return ps }

func portNum(proto v1.Protocol, n int) networkingv1.NetworkPolicyPort {
	p := intstr.FromInt32(int32(n))
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &p}
}

func portName(proto v1.Protocol, name string) networkingv1.NetworkPolicyPort {
	p := intstr.FromString(name)
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &p}
}

func portRange(proto v1.Protocol, lo, hi int) networkingv1.NetworkPolicyPort {
	p := intstr.FromInt32(int32(lo))
	end := int32(hi)
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &p, EndPort: &end}
}

// allPortsOf is a port without a number: every port of the protocol.
func allPortsOf(proto v1.Protocol) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: &proto}
}

func strp(s string) *string { return &s }

// delete deletes a policy the running case created.
func (e *npEnv) delete(t *testing.T, ns, name string) {
	t.Helper()
	real := e.ns[ns]
	if err := e.cs.NetworkingV1().NetworkPolicies(real).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete policy %s/%s: %v", ns, name, err)
	}
	var keep []string
	for _, n := range e.policies[real] {
		if n != name {
			keep = append(keep, n)
		}
	}
	e.policies[real] = keep
}

// podsOn returns the matrix pods on a node.
func (e *npEnv) podsOn(node string) []*npPod {
	var out []*npPod
	for _, p := range e.pods {
		if p.Node == node {
			out = append(out, p)
		}
	}
	return out
}
