package routing

// Fixture conventions: pod CIDR 10.244.0.0/16 (node-1 10.244.1.0/24, node-2
// 10.244.2.0/24), service CIDR 10.96.0.0/16, node network 172.30.0.0/24
// (node-1 .11, node-2 .12).

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/knftables"
)

func node(name, ip string, cidrs ...string) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if ip != "" {
		n.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeHostName, Address: name}, {Type: v1.NodeInternalIP, Address: ip}}
	}
	n.Spec.PodCIDRs = cidrs
	if len(cidrs) > 0 {
		n.Spec.PodCIDR = cidrs[0]
	}
	return n
}

func TestPeersAndDesiredRoutes(t *testing.T) {
	nodes := []*v1.Node{
		node("node-2", "172.30.0.12", "10.244.2.0/24", "fd00:10:244:2::/64"),
		node("node-1", "172.30.0.11", "10.244.1.0/24"),
		node("node-3", "172.30.0.13"),            // no pod CIDR yet: skipped
		node("node-4", "", "10.244.4.0/24"),      // no InternalIP yet: skipped
		node("node-5", "172.30.0.15", "garbage"), // unparsable CIDR: skipped
	}
	me, peers := Peers("node-1", nodes)
	if me == nil || me.NodeIP != netip.MustParseAddr("172.30.0.11") {
		t.Fatalf("self = %+v, want node-1 at 172.30.0.11", me)
	}
	var names []string
	for _, p := range peers {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"node-2"}) {
		t.Errorf("peers = %v, want [node-2]", names)
	}
	for _, tc := range []struct {
		mode string
		want []string
	}{
		{ModeDirect, []string{"10.244.2.0/24 via 172.30.0.12"}},
		{ModeVXLAN, []string{"10.244.2.0/24 via 10.244.2.0 dev pnvxlan onlink"}},
	} {
		t.Run(tc.mode+" mode routes every peer pod CIDR of the underlay's family", func(t *testing.T) {
			var got []string
			for _, r := range DesiredRoutes(tc.mode, peers, nil) {
				got = append(got, r.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("routes = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestVTEPMACIsStableUnicastAndLocal(t *testing.T) {
	a, b := VTEPMAC(netip.MustParseAddr("172.30.0.11")), VTEPMAC(netip.MustParseAddr("172.30.0.12"))
	if a.String() == b.String() {
		t.Error("two nodes got one VTEP MAC")
	}
	if a.String() != VTEPMAC(netip.MustParseAddr("172.30.0.11")).String() {
		t.Error("VTEP MAC is not stable")
	}
	if a[0]&1 != 0 || a[0]&2 == 0 {
		t.Errorf("VTEP MAC %s is not locally administered unicast", a)
	}
}

func TestMasqueradeTableGolden(t *testing.T) {
	fake := knftables.NewFake(knftables.InetFamily, Table)
	s, err := NewSyncer(ModeDirect, MasqConfig{
		PodCIDRs:     []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10:244::/48")},
		ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16")},
	}, fake)
	if err != nil {
		t.Fatal(err)
	}
	tx := fake.NewTransaction()
	RenderMasquerade(tx, s.masq)
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	// Running it twice replaces, not appends (the whole table is rewritten).
	tx = fake.NewTransaction()
	RenderMasquerade(tx, s.masq)
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(`
add table inet podnet-routing { comment "podnet routing: masquerade of traffic leaving the cluster; owned by the podnet agent" ; }
add chain inet podnet-routing postrouting { type nat hook postrouting priority 100 ; }
add set inet podnet-routing no-masquerade-v4 { type ipv4_addr ; flags interval ; comment "cluster ranges" ; }
add set inet podnet-routing no-masquerade-v6 { type ipv6_addr ; flags interval ; comment "cluster ranges" ; }
add set inet podnet-routing pod-cidrs-v4 { type ipv4_addr ; flags interval ; comment "cluster ranges" ; }
add set inet podnet-routing pod-cidrs-v6 { type ipv6_addr ; flags interval ; comment "cluster ranges" ; }
add rule inet podnet-routing postrouting ip saddr @pod-cidrs-v4 ip daddr != @no-masquerade-v4 masquerade fully-random comment "pod traffic leaving the cluster's pod and service ranges"
add rule inet podnet-routing postrouting ip6 saddr @pod-cidrs-v6 ip6 daddr != @no-masquerade-v6 masquerade fully-random comment "pod traffic leaving the cluster's pod and service ranges"
add element inet podnet-routing no-masquerade-v4 { 10.244.0.0/16 }
add element inet podnet-routing no-masquerade-v4 { 10.96.0.0/16 }
add element inet podnet-routing no-masquerade-v6 { fd00:10:244::/48 }
add element inet podnet-routing pod-cidrs-v4 { 10.244.0.0/16 }
add element inet podnet-routing pod-cidrs-v6 { fd00:10:244::/48 }`)
	if got := strings.TrimSpace(fake.Dump()); got != want {
		t.Errorf("table:\n%s\n\nwant:\n%s", got, want)
	}
}

func TestUnknownModeIsRejected(t *testing.T) {
	if _, err := NewSyncer("bgp", MasqConfig{}, knftables.NewFake(knftables.InetFamily, Table)); err == nil || !strings.Contains(err.Error(), `unknown mode "bgp"`) {
		t.Errorf("err = %v, want unknown mode", err)
	}
}
