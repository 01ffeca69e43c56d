package guard

// Fixture conventions: the clusters are plan.DefaultConfig's (pods
// 10.244.0.0/16, services 10.96.0.0/16, nodes 172.30.0.0/24, world
// 203.0.113.0/24) and one with a test-only plan (pods 10.200.0.0/16,
// services 10.100.0.0/16, nodes 172.31.200.0/24, world 198.18.16.0/26).
// Nothing here touches the kernel: the tables go to knftables.Fake. After
// a deliberate change to the rules, rewrite the golden files with
//
//	go test ./internal/localcluster/guard -run TestGolden -update
//
// and review the difference like any other change of code.

import (
	"context"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/podnet/podnet/internal/localcluster/plan"
)

var update = flag.Bool("update", false, "rewrite testdata/*.nft with what the code renders now")

func testPlanConfig(t *testing.T) *plan.Config {
	t.Helper()
	c := plan.DefaultConfig("guard-test")
	if err := c.SetRanges(plan.Ranges{PodCIDR: "10.200.0.0/16", ServiceCIDR: "10.100.0.0/16",
		NodeNetwork: "172.31.200.0/24", WorldNetwork: "198.18.16.0/26"}); err != nil {
		t.Fatal(err)
	}
	return c
}

// installed returns the Fake after Install of m.
func installed(t *testing.T, m Model) *knftables.Fake {
	t.Helper()
	fake := knftables.NewFake(knftables.InetFamily, m.Table)
	if err := Install(context.Background(), fake, m); err != nil {
		t.Fatal(err)
	}
	return fake
}

func TestGoldenTables(t *testing.T) {
	for _, tc := range []struct {
		file string
		cfg  *plan.Config
	}{
		{"default.nft", plan.DefaultConfig("podnet")},
		{"test-plan.nft", testPlanConfig(t)},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got := installed(t, ForCluster(tc.cfg)).Dump()
			path := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if diff := lineDiff(string(want), got); diff != "" {
				t.Errorf("%s differs from the rendered table (- file, + rendered):\n%s", path, diff)
			}
		})
	}
}

// lineDiff lists the lines only in want (-) and only in got (+), in order;
// "" when both are the same.
func lineDiff(want, got string) string {
	if want == got {
		return ""
	}
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	inW, inG := map[string]int{}, map[string]int{}
	for _, l := range w {
		inW[l]++
	}
	for _, l := range g {
		inG[l]++
	}
	var b strings.Builder
	for _, l := range w {
		if inG[l] == 0 {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range g {
		if inW[l] == 0 {
			b.WriteString("+ " + l + "\n")
		}
	}
	if b.Len() == 0 {
		b.WriteString("(the same lines in another order)\n")
	}
	return b.String()
}

func TestLineDiff(t *testing.T) {
	for _, tc := range []struct{ want, got, diff string }{
		{"a\nb\n", "a\nb\n", ""},
		{"a\nb\n", "a\nc\n", "- b\n+ c\n"},
		{"a\nb\n", "b\na\n", "(the same lines in another order)\n"},
	} {
		if d := lineDiff(tc.want, tc.got); d != tc.diff {
			t.Errorf("lineDiff(%q, %q) = %q, want %q", tc.want, tc.got, d, tc.diff)
		}
	}
}

func TestNamesAreDerivedFromTheClusterAlone(t *testing.T) {
	c := plan.DefaultConfig("podnet")
	c.StateDir = "/var/lib/podnet/podnet"
	if got, want := TableName(c), "podnet-guard-"+c.ID(); got != want {
		t.Errorf("TableName = %q, want %q", got, want)
	}
	if got := GroupName(c); got != "podnet-podnet" {
		t.Errorf("GroupName = %q", got)
	}
	if got := MountPoint(c); got != "/var/lib/podnet/podnet/net_cls" {
		t.Errorf("MountPoint = %q", got)
	}
	// ID of "podnet" is the first 6 hex digits of its SHA-256.
	if got, want := ClassID(c), uint32(0x70000000)|hex24(t, c.ID()); got != want {
		t.Errorf("ClassID = %#x, want %#x", got, want)
	}
	other := plan.DefaultConfig("podnet2")
	if ClassID(other) == ClassID(c) || TableName(other) == TableName(c) {
		t.Errorf("clusters podnet and podnet2 share a classid or table: %#x %s", ClassID(c), TableName(c))
	}
}

func hex24(t *testing.T, s string) uint32 {
	t.Helper()
	v, err := strconv.ParseUint(s, 16, 24)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(v)
}

// Reinstalling (podnet up over a leftover table) replaces rules and
// elements but keeps the counter's value.
func TestReinstallKeepsTheCounterAndReplacesTheRest(t *testing.T) {
	c := plan.DefaultConfig("podnet")
	m := ForCluster(c)
	fake := installed(t, m)
	fake.Table.Counters[CounterDropped].Packets = knftables.PtrTo[uint64](7)
	fake.Table.Counters[CounterDropped].Bytes = knftables.PtrTo[uint64](420)
	m.Allowed = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	if err := Install(context.Background(), fake, m); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.Table.Sets[setAllowedV4].Elements); n != 1 {
		t.Errorf("allowed-v4 holds %d elements after reinstalling with one", n)
	}
	if n := len(fake.Table.Chains[chainConfined].Rules); n != 5 {
		t.Errorf("chain %s holds %d rules after reinstalling, want 5", chainConfined, n)
	}
	p, b, ok, err := Dropped(context.Background(), fake)
	if err != nil || !ok || p != 7 || b != 420 {
		t.Errorf("Dropped = %d packets %d bytes installed %v (%v), want 7 420 true", p, b, ok, err)
	}
}

// (Dropped on a missing table is a kernel test: the Fake cannot list the
// counters of a table it does not have.)
func TestRemoveIsIdempotent(t *testing.T) {
	m := ForCluster(plan.DefaultConfig("podnet"))
	fake := installed(t, m)
	for i := range 2 {
		if err := Remove(context.Background(), fake); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if fake.Table != nil {
		t.Errorf("table left after Remove:\n%s", fake.Dump())
	}
}

func TestAllowedPrefixesAreSplitByFamilyWithoutOverlaps(t *testing.T) {
	pp := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		in     []netip.Prefix
		v4, v6 []netip.Prefix
	}{
		{"disjoint ranges are kept and sorted", pp("172.30.0.0/24", "10.244.0.0/16", "::1/128", "127.0.0.0/8"),
			pp("10.244.0.0/16", "127.0.0.0/8", "172.30.0.0/24"), pp("::1/128")},
		{"a range inside another is dropped", pp("10.0.0.0/8", "10.244.0.0/16", "10.0.0.0/8"), pp("10.0.0.0/8"), nil},
		{"host bits are masked", pp("10.244.1.7/16"), pp("10.244.0.0/16"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v4, v6 := splitAllowed(tc.in)
			if !slices.Equal(v4, tc.v4) || !slices.Equal(v6, tc.v6) {
				t.Errorf("splitAllowed(%v) = %v %v, want %v %v", tc.in, v4, v6, tc.v4, tc.v6)
			}
		})
	}
}

func TestModelValidateReportsEveryProblem(t *testing.T) {
	m := Model{Table: "", ClassID: 0, Allowed: []netip.Prefix{{}}, LogPrefix: strings.Repeat("x", 128)}
	err := m.Validate()
	for _, want := range []string{"table name", "classid 0", "allowed prefix", "log prefix"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate does not mention %q: %v", want, err)
		}
	}
	if err := ForCluster(plan.DefaultConfig("podnet")).Validate(); err != nil {
		t.Errorf("the default cluster's model: %v", err)
	}
}

func TestParseNetClsLineOfProcCgroups(t *testing.T) {
	const header = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t1\t1\n"
	for _, tc := range []struct {
		name, text, hierarchy string
		enabled               bool
	}{
		{"enabled, never mounted", header + "net_cls\t0\t1\t1\nnet_prio\t0\t1\t1\n", "0", true},
		{"enabled, mounted as hierarchy 11", header + "net_cls\t11\t2\t1\n", "11", true},
		{"disabled", header + "net_cls\t0\t1\t0\n", "0", false},
		{"a kernel without the controller", header, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, on, err := parseNetCls(strings.NewReader(tc.text))
			if err != nil || h != tc.hierarchy || on != tc.enabled {
				t.Errorf("parseNetCls = %q %v %v, want %q %v", h, on, err, tc.hierarchy, tc.enabled)
			}
		})
	}
}
