package wireguard

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

// renderFake renders the strict table into a fresh Fake and returns it.
func renderFake(t *testing.T, cluster, local []string) *knftables.Fake {
	t.Helper()
	fake := knftables.NewFake(knftables.InetFamily, Table)
	tx := fake.NewTransaction()
	RenderStrict(tx, prefixes(cluster...), prefixes(local...))
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatalf("render: %v", err)
	}
	return fake
}

// dumpDiff says how fake's dump differs from want (both trimmed); "" when
// they are equal.
func dumpDiff(fake *knftables.Fake, want string) string {
	if got, want := strings.TrimSpace(fake.Dump()), strings.TrimSpace(want); got != want {
		return "table:\n" + got + "\n\nwant:\n" + want
	}
	return ""
}

// expectDump fails t, naming the caller's line, when fake's dump is not
// want.
func expectDump(t *testing.T, fake *knftables.Fake, want string) {
	t.Helper()
	if d := dumpDiff(fake, want); d != "" {
		_, file, line, _ := runtime.Caller(1)
		t.Errorf("%s:%d: %s", file, line, d)
	}
}

func TestDumpDiffSeesADifference(t *testing.T) {
	fake := renderFake(t, []string{"10.244.0.0/16"}, nil)
	if d := dumpDiff(fake, "add table inet podnet-wireguard"); d == "" {
		t.Error("a dump that differs is accepted")
	}
	if d := dumpDiff(fake, "\n"+fake.Dump()+"\n\n"); d != "" {
		t.Errorf("the same dump is refused: %s", d)
	}
}

// The header every rendering starts with. knftables' Fake forgets the
// table's comment when the table is flushed (nft keeps it), so the dump
// shows the table without it.
const strictHead = `
add table inet podnet-wireguard
add chain inet podnet-wireguard postrouting { type filter hook postrouting priority 50 ; }
add counter inet podnet-wireguard strict-drops { comment "packets to remote pods that would have left unencrypted" ; }
add rule inet podnet-wireguard postrouting oifname pnwg0 accept
`

func TestRenderStrict(t *testing.T) {
	for _, tc := range []struct {
		name           string
		cluster, local []string
		rules          string
	}{
		{name: "IPv4: remote pod CIDRs are dropped unless they leave through pnwg0",
			cluster: []string{"10.244.0.0/16"}, local: []string{"10.244.1.0/24"},
			rules: `add rule inet podnet-wireguard postrouting ip daddr 10.244.0.0/16 ip daddr != { 10.244.1.0/24 } counter name "strict-drops" drop`},
		{name: "a node without a pod CIDR yet drops all pod traffic that does not leave through pnwg0",
			cluster: []string{"10.244.0.0/16"},
			rules:   `add rule inet podnet-wireguard postrouting ip daddr 10.244.0.0/16 counter name "strict-drops" drop`},
		{name: "dual stack: each family excludes its own local pod CIDRs",
			cluster: []string{"10.244.0.0/16", "fd00:10:244::/48"}, local: []string{"10.244.1.0/24", "fd00:10:244:1::/64"},
			rules: `
add rule inet podnet-wireguard postrouting ip daddr 10.244.0.0/16 ip daddr != { 10.244.1.0/24 } counter name "strict-drops" drop
add rule inet podnet-wireguard postrouting ip6 daddr fd00:10:244::/48 ip6 daddr != { fd00:10:244:1::/64 } counter name "strict-drops" drop`},
		{name: "dual-stack cluster, node with an IPv4 pod CIDR only: all IPv6 pod traffic is checked",
			cluster: []string{"10.244.0.0/16", "fd00:10:244::/48"}, local: []string{"10.244.1.0/24"},
			rules: `
add rule inet podnet-wireguard postrouting ip daddr 10.244.0.0/16 ip daddr != { 10.244.1.0/24 } counter name "strict-drops" drop
add rule inet podnet-wireguard postrouting ip6 daddr fd00:10:244::/48 counter name "strict-drops" drop`},
		{name: "IPv6 only",
			cluster: []string{"fd00:10:244::/48"}, local: []string{"fd00:10:244:1::/64"},
			rules: `add rule inet podnet-wireguard postrouting ip6 daddr fd00:10:244::/48 ip6 daddr != { fd00:10:244:1::/64 } counter name "strict-drops" drop`},
		{name: "two cluster ranges and two local pod CIDRs",
			cluster: []string{"10.244.0.0/16", "10.245.0.0/16"}, local: []string{"10.244.1.0/24", "10.245.1.0/24"},
			rules: `
add rule inet podnet-wireguard postrouting ip daddr 10.244.0.0/16 ip daddr != { 10.244.1.0/24, 10.245.1.0/24 } counter name "strict-drops" drop
add rule inet podnet-wireguard postrouting ip daddr 10.245.0.0/16 ip daddr != { 10.244.1.0/24, 10.245.1.0/24 } counter name "strict-drops" drop`},
		{name: "no cluster ranges: only the accept",
			rules: ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := renderFake(t, tc.cluster, tc.local)
			expectDump(t, fake, strictHead+strings.TrimSpace(tc.rules))
		})
	}
}

func TestRenderStrictReplacesTheTable(t *testing.T) {
	fake := renderFake(t, []string{"10.244.0.0/16"}, nil)
	tx := fake.NewTransaction()
	RenderStrict(tx, prefixes("10.244.0.0/16"), prefixes("10.244.3.0/24"))
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	expectDump(t, fake, strictHead+
		`add rule inet podnet-wireguard postrouting ip daddr 10.244.0.0/16 ip daddr != { 10.244.3.0/24 } counter name "strict-drops" drop`)
}

func TestStrictDropsReadsTheCounter(t *testing.T) {
	// knftables' Fake panics when counters are listed without a table,
	// so "no table" is checked on nft itself (strict_kernel_test.go).
	ctx := context.Background()
	fake := renderFake(t, []string{"10.244.0.0/16"}, nil)
	c := fake.Table.Counters[StrictCounter]
	if c == nil {
		t.Fatalf("no counter %s in %s", StrictCounter, fake.Dump())
	}
	c.Packets, c.Bytes = knftables.PtrTo[uint64](3), knftables.PtrTo[uint64](252)
	if p, b, ok := StrictDrops(ctx, fake); !ok || p != 3 || b != 252 {
		t.Errorf("StrictDrops = %d, %d, %v; want 3, 252, true", p, b, ok)
	}
	if err := DeleteStrict(ctx, fake); err != nil {
		t.Fatal(err)
	}
	if fake.Table != nil {
		t.Errorf("after DeleteStrict the table is there:\n%s", fake.Dump())
	}
	if err := DeleteStrict(ctx, fake); err != nil {
		t.Errorf("DeleteStrict of a missing table: %v, want nil", err)
	}
}
