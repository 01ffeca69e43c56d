package proxy

// Golden tests: the whole table a full sync writes for a few representative
// clusters, compared line by line with testdata/*.nft. Fixture conventions
// as in helpers_test.go (this node is node-1 at 172.30.0.11 and
// fd00:172:30::11; pods 10.244.x and fd00:10:244:x::; outside 203.0.113.x).
// After a deliberate change to the rules, rewrite the files with
//
//	go test ./internal/proxy -run TestGolden -update
//
// and review the difference in git like any other change of code.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with what the code renders now")

// goldenCluster is one golden file: a cluster and the node it is seen from.
type goldenCluster struct {
	file, about string
	cfg         Config
	svcs        []*v1.Service
	slices      []*v1Slice
}

func goldenClusters() []goldenCluster {
	web := svc("default", "web", "10.96.0.5", 80, 8080, 0)
	webEPs := slice("default", "web", "", 8080, ep("10.244.1.2", "node-1", true, false), ep("10.244.2.2", "node-2", true, false))

	local := svc("default", "local", "10.96.0.6", 80, 8080, 30081)
	local.Spec.Type = v1.ServiceTypeLoadBalancer
	local.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	local.Spec.HealthCheckNodePort = 32001
	local.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "172.30.0.201"}}
	localEPs := slice("default", "local", "", 8080, ep("10.244.1.7", "node-1", true, false), ep("10.244.2.7", "node-2", true, false))

	sticky := svc("default", "sticky", "10.96.0.7", 80, 8080, 0)
	sticky.Spec.SessionAffinity = v1.ServiceAffinityClientIP
	sticky.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](600)}}
	stickyEPs := slice("default", "sticky", "", 8080, ep("10.244.1.2", "node-1", true, false), ep("10.244.2.2", "node-2", true, false))

	lb := svc("default", "lb", "10.96.0.8", 443, 8443, 30443)
	lb.Spec.Type = v1.ServiceTypeLoadBalancer
	lb.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "172.30.0.200"}}
	lb.Spec.LoadBalancerSourceRanges = []string{"203.0.113.0/25", "198.51.100.7/32"}
	lbEPs := slice("default", "lb", "", 8443, ep("10.244.2.4", "node-2", true, false))

	dual := dualStack(svc("default", "dual", "10.96.0.9", 80, 8080, 30080), "fd00:10:96::9")
	dualEPs4 := slice("default", "dual", "", 8080, ep("10.244.1.3", "node-1", true, false))
	dualEPs6 := slice6("default", "dual", "", 8080, ep("fd00:10:244:1::3", "node-1", true, false), ep("fd00:10:244:2::3", "node-2", true, false))

	empty := svc("default", "empty", "10.96.0.10", 80, 8080, 30083)
	empty.Spec.ExternalIPs = []string{"192.0.2.50"}
	emptyEPs := slice("default", "empty", "", 8080, ep("10.244.1.9", "node-1", false, false))

	itp := svc("kube-system", "itp", "10.96.0.11", 53, 53, 0)
	itp.Spec.Ports[0].Protocol = v1.ProtocolUDP
	itp.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
	itpEPs := slice("kube-system", "itp", "", 53, ep("10.244.2.5", "node-2", true, false))
	itpEPs.Ports[0].Protocol = ptr.To(v1.ProtocolUDP)

	stickyLocal := svc("default", "sticky-local", "10.96.0.12", 80, 8080, 30084)
	stickyLocal.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	stickyLocal.Spec.SessionAffinity = v1.ServiceAffinityClientIP
	stickyLocal.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](600)}}
	stickyLocalEPs := slice("default", "sticky-local", "", 8080, ep("10.244.1.4", "node-1", true, false), ep("10.244.2.4", "node-2", true, false))
	bothLocal := svc("default", "both-local", "10.96.0.13", 80, 8080, 30085)
	bothLocal.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	bothLocal.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
	bothLocalEPs := slice("default", "both-local", "", 8080, ep("10.244.2.6", "node-2", true, false))

	return []goldenCluster{
		{"clusterip.nft", "one ClusterIP Service with an endpoint on this node and one on node-2",
			testCfg, []*v1.Service{web}, []*v1Slice{webEPs}},
		{"local-healthcheck.nft", "a LoadBalancer with externalTrafficPolicy Local and a healthCheckNodePort (served by the agent, not in the table)",
			testCfg, []*v1.Service{local}, []*v1Slice{localEPs}},
		{"affinity.nft", "sessionAffinity ClientIP with a 600 s timeout",
			testCfg, []*v1.Service{sticky}, []*v1Slice{stickyEPs}},
		{"source-ranges.nft", "a LoadBalancer with loadBalancerSourceRanges and a NodePort, its one endpoint on node-2",
			testCfg, []*v1.Service{lb}, []*v1Slice{lbEPs}},
		{"dual-stack.nft", "a dual-stack NodePort Service on a dual-stack node",
			testCfg6, []*v1.Service{dual}, []*v1Slice{dualEPs4, dualEPs6}},
		{"no-endpoints.nft", "a NodePort Service with an externalIP and no ready endpoint (rejected)",
			testCfg, []*v1.Service{empty}, []*v1Slice{emptyEPs}},
		{"internal-local.nft", "a UDP Service with internalTrafficPolicy Local and no endpoint on this node",
			testCfg, []*v1.Service{itp}, []*v1Slice{itpEPs}},
		{"traffic-policies.nft", "two NodePort Services with externalTrafficPolicy Local: one with sessionAffinity ClientIP and an endpoint on each node, one also internalTrafficPolicy Local with its endpoint on node-2",
			testCfg, []*v1.Service{stickyLocal, bothLocal}, []*v1Slice{stickyLocalEPs, bothLocalEPs}},
	}
}

// TestGoldenTables compares the whole table of each cluster with its golden
// file.
func TestGoldenTables(t *testing.T) {
	for _, c := range goldenClusters() {
		t.Run(strings.TrimSuffix(c.file, ".nft"), func(t *testing.T) {
			checkGolden(t, filepath.Join("testdata", c.file), c.render(t))
		})
	}
}

// render returns the golden file's content: a comment saying what the
// cluster is, then the canonical dump of the table a full sync writes.
func (c goldenCluster) render(t *testing.T) string {
	t.Helper()
	return c.header() + canonicalDump(renderFake(t, c.cfg, BuildServicePorts("node-1", c.svcs, c.slices)))
}

func (c goldenCluster) header() string {
	return "# " + c.about + ", seen from node-1.\n" +
		"# Written by TestGoldenTables -update; review every change.\n"
}

// canonicalDump is fake's dump with objects sorted and every chain's rules
// in their order: the table, chains, sets and maps by name, then the rules
// chain by chain, then the elements of each set and map sorted (their order
// in a transaction does not matter, and the fake keeps it).
func canonicalDump(fake *knftables.Fake) string {
	lines := strings.Split(strings.TrimSuffix(fake.Dump(), "\n"), "\n")
	rank := func(l string) (int, string) {
		f := strings.Fields(l) // add KIND FAMILY TABLE NAME ...
		kinds := []string{"table", "chain", "set", "map", "rule", "element"}
		k := slices.Index(kinds, f[1])
		if k < 0 {
			k = len(kinds)
		}
		name := ""
		if len(f) > 4 {
			name = f[4]
		}
		return k, name
	}
	slices.SortStableFunc(lines, func(a, b string) int {
		ka, na := rank(a)
		kb, nb := rank(b)
		if ka != kb {
			return ka - kb
		}
		if c := strings.Compare(na, nb); c != 0 || ka == 4 {
			return c // rules keep their order within a chain
		}
		return strings.Compare(a, b)
	})
	return strings.Join(lines, "\n") + "\n"
}

// checkGolden compares got with the golden file at path (or rewrites the
// file under -update). A difference is reported with the caller's
// file:line and a line diff against the golden file.
func checkGolden(t testing.TB, path, got string) {
	t.Helper()
	_, file, line, _ := runtime.Caller(1)
	at := fmt.Sprintf("%s:%d", filepath.Base(file), line)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatalf("%v (checked at %s)", err, at)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (checked at %s; a new golden file is written by go test -run %s -update)", err, at, t.Name())
		return
	}
	if d := goldenDiff(string(want), got); d != "" {
		t.Errorf("the table differs from %s (checked at %s; -golden +got; after review, -update rewrites it):\n%s", path, at, d)
	}
}

// goldenDiff returns a line diff of want and got ("" when they are equal):
// lines only in want start with "-", lines only in got with "+", each
// prefixed with its line number in want (the line after which it would go,
// for a "+").
func goldenDiff(want, got string) string {
	if want == got {
		return ""
	}
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	// lcs[i][j] is the length of the longest common subsequence of w[i:]
	// and g[j:].
	lcs := make([][]int, len(w)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(g)+1)
	}
	for i := len(w) - 1; i >= 0; i-- {
		for j := len(g) - 1; j >= 0; j-- {
			if w[i] == g[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var b strings.Builder
	i, j := 0, 0
	for i < len(w) || j < len(g) {
		switch {
		case i < len(w) && j < len(g) && w[i] == g[j]:
			i, j = i+1, j+1
		case i < len(w) && (j == len(g) || lcs[i+1][j] >= lcs[i][j+1]):
			fmt.Fprintf(&b, "%4d -%s\n", i+1, w[i])
			i++
		default:
			fmt.Fprintf(&b, "%4d +%s\n", i, g[j])
			j++
		}
	}
	if b.Len() == 0 {
		return "(the texts differ in a way no line shows)\n"
	}
	return b.String()
}

// recordingTB records what checkGolden reports instead of failing.
type recordingTB struct {
	testing.TB
	errors, fatals []string
}

func (r *recordingTB) Helper()      {}
func (r *recordingTB) Name() string { return "TestRecording" }
func (r *recordingTB) Errorf(format string, a ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, a...))
}
func (r *recordingTB) Fatalf(format string, a ...any) {
	r.fatals = append(r.fatals, fmt.Sprintf(format, a...))
}

func TestGoldenDiffShowsWhatChanged(t *testing.T) {
	want := "a\nb\nc\n"
	for _, tc := range []struct {
		name, got string
		diff      []string
	}{
		{"equal texts have no diff", want, nil},
		{"an extra line is a +", "a\nb\nx\nc\n", []string{"   2 +x"}},
		{"a missing line is a -", "a\nc\n", []string{"   2 -b"}},
		{"a changed line is a - and a +", "a\nB\nc\n", []string{"   2 -b", "   2 +B"}},
		{"swapped lines show", "b\na\nc\n", []string{"   1 -a", "   2 +a"}},
		{"a missing final newline shows", "a\nb\nc", []string{"   4 -"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := goldenDiff(want, tc.got)
			var lines []string
			if d != "" {
				lines = strings.Split(strings.TrimSuffix(d, "\n"), "\n")
			}
			if !slices.Equal(lines, tc.diff) {
				t.Errorf("diff\n%s\nwant\n%s", d, strings.Join(tc.diff, "\n"))
			}
		})
	}
}

func TestCheckGoldenReportsTheCallersLine(t *testing.T) {
	if *update {
		t.Skip("-update rewrites golden files instead of comparing them")
	}
	path := filepath.Join(t.TempDir(), "x.nft")
	if err := os.WriteFile(path, []byte("a\nb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := &recordingTB{}
	checkGolden(rec, path, "a\nb\n")
	if len(rec.errors)+len(rec.fatals) != 0 {
		t.Fatalf("equal content reported: %v %v", rec.errors, rec.fatals)
	}
	_, _, line, _ := runtime.Caller(0)
	checkGolden(rec, path, "a\nc\n") // the line after runtime.Caller(0)
	at := fmt.Sprintf("(checked at golden_test.go:%d;", line+1)
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], at) || !strings.Contains(rec.errors[0], "   2 -b\n   2 +c") {
		t.Errorf("reported %q, want one error at %s with the diff", rec.errors, at)
	}
	checkGolden(rec, filepath.Join(t.TempDir(), "missing.nft"), "a\n")
	if len(rec.fatals) != 1 || !strings.Contains(rec.fatals[0], "-update") {
		t.Errorf("a missing golden file reported %q, want a fatal error naming -update", rec.fatals)
	}
}

// TestCanonicalDumpSortsObjectsAndKeepsRuleOrder: the golden comparison
// ignores the order elements were added in, and sees the order of rules.
func TestCanonicalDumpSortsObjectsAndKeepsRuleOrder(t *testing.T) {
	write := func(rules []string, elements []string) string {
		fake := knftables.NewFake(knftables.InetFamily, Table)
		tx := fake.NewTransaction()
		tx.Add(&knftables.Table{})
		tx.Add(&knftables.Chain{Name: "b"})
		tx.Add(&knftables.Chain{Name: "a"})
		tx.Add(&knftables.Set{Name: "s", Type: "ipv4_addr"})
		for _, r := range rules {
			tx.Add(&knftables.Rule{Chain: "a", Rule: r})
		}
		for _, e := range elements {
			tx.Add(&knftables.Element{Set: "s", Key: []string{e}})
		}
		if err := fake.Run(context.Background(), tx); err != nil {
			t.Fatal(err)
		}
		return canonicalDump(fake)
	}
	one := write([]string{"accept", "drop"}, []string{"10.0.0.2", "10.0.0.1"})
	if other := write([]string{"accept", "drop"}, []string{"10.0.0.1", "10.0.0.2"}); other != one {
		t.Errorf("the order of elements changed the dump:\n%s\n%s", one, other)
	}
	if swapped := write([]string{"drop", "accept"}, []string{"10.0.0.2", "10.0.0.1"}); goldenDiff(one, swapped) == "" {
		t.Error("swapping two rules of a chain left the dump the same")
	}
	if want := "add chain inet podnet-proxy a\nadd chain inet podnet-proxy b\n"; !strings.Contains(one, want) {
		t.Errorf("chains are not sorted by name:\n%s", one)
	}
}

// TestGoldenCatchesAnExtraRule: one rule more than the renderer writes, in
// a Service chain of a golden cluster, makes the comparison fail.
func TestGoldenCatchesAnExtraRule(t *testing.T) {
	c := goldenClusters()[0]
	want, err := os.ReadFile(filepath.Join("testdata", c.file))
	if err != nil {
		t.Fatal(err)
	}
	fake := renderFake(t, c.cfg, BuildServicePorts("node-1", c.svcs, c.slices))
	if d := goldenDiff(string(want), c.header()+canonicalDump(fake)); d != "" {
		t.Fatalf("the cluster does not match its golden file to begin with:\n%s", d)
	}
	chain := chainName("svc4", "default/web/tcp/80")
	tx := fake.NewTransaction()
	tx.Add(&knftables.Rule{Chain: chain, Rule: "ip saddr 203.0.113.0/24 accept"})
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	d := goldenDiff(string(want), c.header()+canonicalDump(fake))
	if wantLine := "+add rule inet podnet-proxy " + chain + " ip saddr 203.0.113.0/24 accept"; !strings.Contains(d, wantLine) {
		t.Errorf("the extra rule went unnoticed; diff:\n%s", d)
	}
}
