package safety

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/localcluster/internal/lctest"
	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/netns"
)

// fakeHost is a root namespace shaped like a typical VM: eth0 with
// 192.0.2.2/24 and fd00::2/64, default routes, the local table, and a
// resolver at 10.255.255.53. The default cluster does not overlap it.
func fakeHost() (addrs []HostAddr, routes []HostRoute, resolv string) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	addrs = []HostAddr{
		{Link: "lo", Prefix: p("127.0.0.1/8")},
		{Link: "lo", Prefix: p("::1/128")},
		{Link: "eth0", Prefix: p("192.0.2.2/24")},
		{Link: "eth0", Prefix: p("fd00::2/64")},
		{Link: "eth0", Prefix: p("fe80::fc:ff:fe00:1/64")},
	}
	routes = []HostRoute{
		{Dst: p("0.0.0.0/0"), Type: unix.RTN_UNICAST, Table: unix.RT_TABLE_MAIN, Link: "eth0", Gateway: a("192.0.2.1")},
		{Dst: p("192.0.2.0/24"), Type: unix.RTN_UNICAST, Table: unix.RT_TABLE_MAIN, Link: "eth0"},
		{Dst: p("127.0.0.0/8"), Type: unix.RTN_LOCAL, Table: unix.RT_TABLE_LOCAL, Link: "lo"},
		{Dst: p("192.0.2.2/32"), Type: unix.RTN_LOCAL, Table: unix.RT_TABLE_LOCAL, Link: "eth0"},
		{Dst: p("::/0"), Type: unix.RTN_UNICAST, Table: unix.RT_TABLE_MAIN, Link: "eth0", Gateway: a("fd00::1"), Metric: 1024},
		{Dst: p("ff00::/8"), Type: unix.RTN_MULTICAST, Table: unix.RT_TABLE_LOCAL, Link: "eth0"},
		{Dst: p("0.0.0.0/0"), Type: unix.RTN_UNREACHABLE, Table: 100},
	}
	return addrs, routes, "# generated\nsearch example.org\nnameserver 10.255.255.53\nnameserver fe80::1%eth0\noptions ndots:1\n"
}

func fakeSources(addrs []HostAddr, routes []HostRoute, resolv string) HostSources {
	return HostSources{
		Addrs:      func() ([]HostAddr, error) { return addrs, nil },
		Routes:     func() ([]HostRoute, error) { return routes, nil },
		ResolvConf: func() ([]byte, error) { return []byte(resolv), nil },
	}
}

func TestSafetyHostConflicts(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	cfg := plan.DefaultConfig("podnet")
	other := plan.DefaultConfig("other")
	for _, tc := range []struct {
		name   string
		addrs  []HostAddr
		routes []HostRoute
		resolv string
		want   []string // one line each, in order; none means accepted
	}{
		{name: "a typical host is accepted"},
		{
			name:  "an address inside the node network is refused",
			addrs: []HostAddr{{Link: "docker0", Prefix: p("172.30.0.77/16")}},
			want: []string{
				`node network 172.30.0.0/24 overlaps address 172.30.0.77/16 on docker0`,
				`LoadBalancer pool 172.30.0.200/29 overlaps address 172.30.0.77/16 on docker0`,
			},
		},
		{
			name:  "the peer of a point-to-point address is checked",
			addrs: []HostAddr{{Link: "tun0", Prefix: p("192.168.9.1/32"), Peer: p("10.96.0.5/32")}},
			want:  []string{`service CIDR 10.96.0.0/16 overlaps address 192.168.9.1/32 peer 10.96.0.5/32 on tun0`},
		},
		{
			name:   "a route in another table covering the pod CIDR is refused",
			routes: []HostRoute{{Dst: p("10.0.0.0/8"), Type: unix.RTN_UNICAST, Table: 100, Link: "wg0", Gateway: a("192.0.2.9")}},
			want: []string{
				`pod CIDR 10.244.0.0/16 overlaps route 10.0.0.0/8 via 192.0.2.9 dev wg0 table 100`,
				`service CIDR 10.96.0.0/16 overlaps route 10.0.0.0/8 via 192.0.2.9 dev wg0 table 100`,
			},
		},
		{
			name:   "a host route inside the world network is refused",
			routes: []HostRoute{{Dst: p("203.0.113.7/32"), Type: unix.RTN_UNICAST, Table: unix.RT_TABLE_MAIN, Link: "eth0", Metric: 50}},
			want:   []string{`world network 203.0.113.0/24 overlaps route 203.0.113.7/32 dev eth0 table main metric 50`},
		},
		{
			name:   "a nameserver inside the service CIDR is refused",
			resolv: "nameserver 10.96.0.10\n",
			want:   []string{`service CIDR 10.96.0.0/16 overlaps nameserver 10.96.0.10 of /etc/resolv.conf`},
		},
		{
			name:   "the cluster's own bridge, veths and blackholes are ignored (a leftover after a crash)",
			addrs:  []HostAddr{{Link: cfg.BridgeName(), Prefix: p("172.30.0.1/24")}},
			routes: ownRoutes(cfg),
		},
		{
			name:   "another cluster's bridge on the same node network is refused",
			addrs:  []HostAddr{{Link: other.BridgeName(), Prefix: p("172.30.0.1/24")}},
			routes: []HostRoute{{Dst: p("172.30.0.0/24"), Type: unix.RTN_UNICAST, Table: unix.RT_TABLE_MAIN, Link: other.BridgeName()}},
			want: []string{
				"node network 172.30.0.0/24 overlaps address 172.30.0.1/24 on " + other.BridgeName(),
				"node network 172.30.0.0/24 overlaps route 172.30.0.0/24 dev " + other.BridgeName() + " table main",
				"LoadBalancer pool", "LoadBalancer pool",
			},
		},
		{
			name:   "another cluster's blackhole for the same pod CIDR is refused",
			routes: []HostRoute{{Dst: p("10.244.0.0/16"), Type: unix.RTN_BLACKHOLE, Table: unix.RT_TABLE_MAIN, Metric: other.BlackholeMetric()}},
			want:   []string{"pod CIDR 10.244.0.0/16 overlaps route blackhole 10.244.0.0/16 table main metric"},
		},
		{
			name:   "a blackhole with the cluster's metric but another range is not the cluster's",
			routes: []HostRoute{{Dst: p("10.244.0.0/17"), Type: unix.RTN_BLACKHOLE, Table: unix.RT_TABLE_MAIN, Metric: cfg.BlackholeMetric()}},
			want:   []string{"pod CIDR 10.244.0.0/16 overlaps route blackhole 10.244.0.0/17"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addrs, routes, resolv := fakeHost()
			addrs = append(addrs, tc.addrs...)
			routes = append(routes, tc.routes...)
			resolv += tc.resolv
			err := CheckHostConflictsWith(cfg, fakeSources(addrs, routes, resolv))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ce *ConflictError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *ConflictError", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("the refusal spans lines: %q", err)
			}
			if len(ce.Conflicts) != len(tc.want) {
				t.Fatalf("got %d conflicts, want %d: %v", len(ce.Conflicts), len(tc.want), err)
			}
			for i, want := range tc.want {
				if got := ce.Conflicts[i].String(); !strings.Contains(got, want) || !strings.Contains(err.Error(), got) {
					t.Errorf("conflict %d is %q, want it to contain %q and to be in the message", i+1, got, want)
				}
			}
		})
	}
}

// ownRoutes are what topology.Create leaves in the root namespace.
func ownRoutes(c *plan.Config) []HostRoute {
	out := []HostRoute{
		{Dst: c.NodeNetwork, Type: unix.RTN_UNICAST, Table: unix.RT_TABLE_MAIN, Link: c.BridgeName()},
		{Dst: netip.PrefixFrom(c.RootIP, 32), Type: unix.RTN_LOCAL, Table: unix.RT_TABLE_LOCAL, Link: c.BridgeName()},
		{Dst: netip.MustParsePrefix("fe80::/64"), Type: unix.RTN_UNICAST, Table: unix.RT_TABLE_MAIN, Link: c.NodeVethName(1)},
	}
	for _, p := range c.BlackholePrefixes() {
		out = append(out, HostRoute{Dst: p, Type: unix.RTN_BLACKHOLE, Table: unix.RT_TABLE_MAIN, Metric: c.BlackholeMetric()})
	}
	return out
}

func TestSafetyHostConflictsFailsClosed(t *testing.T) {
	boom := errors.New("boom")
	addrs, routes, resolv := fakeHost()
	for _, tc := range []struct {
		name    string
		breakIt func(*HostSources)
	}{
		{"when addresses cannot be listed", func(s *HostSources) { s.Addrs = func() ([]HostAddr, error) { return nil, boom } }},
		{"when routes cannot be listed", func(s *HostSources) { s.Routes = func() ([]HostRoute, error) { return nil, boom } }},
		{"when resolv.conf cannot be read", func(s *HostSources) { s.ResolvConf = func() ([]byte, error) { return nil, boom } }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := fakeSources(addrs, routes, resolv)
			tc.breakIt(&src)
			if err := CheckHostConflictsWith(plan.DefaultConfig("podnet"), src); !errors.Is(err, boom) {
				t.Errorf("got %v, want the source's error", err)
			}
		})
	}
	t.Run("when the config is invalid", func(t *testing.T) {
		if err := CheckHostConflictsWith(plan.DefaultConfig("Bad"), fakeSources(addrs, routes, resolv)); err == nil {
			t.Error("an invalid config passed the check")
		}
	})
}

func TestSafetyParseNameservers(t *testing.T) {
	got := parseNameservers([]byte("nameserver 127.0.0.53\n  nameserver   10.0.0.2  # x\n#nameserver 10.9.9.9\nnameserver fe80::1%eth0\nnameserver bogus\nnameserver\nsearch a\n"))
	want := []netip.Addr{netip.MustParseAddr("127.0.0.53"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fe80::1")}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("nameserver %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func TestSafetyRouteString(t *testing.T) {
	r := HostRoute{Dst: netip.MustParsePrefix("10.0.0.0/8"), Type: unix.RTN_UNICAST, Table: 100, Link: "wg0", Gateway: netip.MustParseAddr("192.0.2.9"), Metric: 5}
	if got, want := r.String(), "10.0.0.0/8 via 192.0.2.9 dev wg0 table 100 metric 5"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestSafetyKernelSourcesInFreshNamespace runs the real kernel sources in a
// fresh namespace (not the root one) dressed as a host: a foreign address
// and a route in a non-main table are refused, the cluster's own bridge and
// blackholes are ignored, another cluster's blackhole is refused.
func TestSafetyKernelSourcesInFreshNamespace(t *testing.T) {
	lctest.NeedRoot(t)
	cfg := lctest.RandomConfig(2)
	other := lctest.RandomConfig(2)
	other.PodCIDR = cfg.PodCIDR
	name := netns.UniqueName("pnt-lc-host-")
	path, err := netns.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	podAddr := cfg.PodCIDR.Addr().Next()
	err = netns.Do(path, func() error {
		// A veth pair stands for a foreign interface (no dummy module here).
		attrs := netlink.NewLinkAttrs()
		attrs.Name = "host0"
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "host1"}); err != nil {
			return err
		}
		host0, err := netlink.LinkByName("host0")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(host0, &netlink.Addr{IPNet: lctest.IPNet(netip.PrefixFrom(podAddr, 32))}); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(host0); err != nil {
			return err
		}
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: host0.Attrs().Index, Dst: lctest.IPNet(cfg.ServiceCIDR), Table: 100}); err != nil {
			return err
		}
		// The cluster's own leftovers and another cluster's blackhole.
		br := netlink.NewLinkAttrs()
		br.Name = cfg.BridgeName()
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: br}); err != nil {
			return err
		}
		bridge, err := netlink.LinkByName(cfg.BridgeName())
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(bridge, &netlink.Addr{IPNet: lctest.IPNet(netip.PrefixFrom(cfg.RootIP, 24))}); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(bridge); err != nil {
			return err
		}
		for _, p := range cfg.BlackholePrefixes() {
			if err := netlink.RouteAdd(testBlackhole(cfg, p)); err != nil {
				return err
			}
		}
		return netlink.RouteAdd(testBlackhole(other, other.PodCIDR))
	})
	if err != nil {
		t.Fatalf("dress the namespace as a host: %v", err)
	}

	var checkErr error
	lctest.InNamespace(t, name, func() error {
		checkErr = CheckHostConflictsWith(cfg, KernelHostSources())
		return nil
	})
	var ce *ConflictError
	if !errors.As(checkErr, &ce) {
		t.Fatalf("got %v, want a *ConflictError", checkErr)
	}
	got := checkErr.Error()
	for _, want := range []string{
		"pod CIDR " + cfg.PodCIDR.String() + " overlaps address " + podAddr.String() + "/32 on host0",
		"pod CIDR " + cfg.PodCIDR.String() + " overlaps route local " + podAddr.String() + "/32 dev host0 table local",
		"service CIDR " + cfg.ServiceCIDR.String() + " overlaps route " + cfg.ServiceCIDR.String() + " dev host0 table 100",
		"pod CIDR " + cfg.PodCIDR.String() + " overlaps route blackhole " + cfg.PodCIDR.String() + " table main metric " + strconv.Itoa(other.BlackholeMetric()),
	} {
		if !strings.Contains(got, want) {
			t.Errorf("refusal lacks %q:\n%s", want, got)
		}
	}
	for _, notWant := range []string{cfg.BridgeName(), "metric " + strconv.Itoa(cfg.BlackholeMetric()), "node network", "world network"} {
		if strings.Contains(got, notWant) {
			t.Errorf("refusal mentions the cluster's own %q:\n%s", notWant, got)
		}
	}
}

// testBlackhole is a blackhole route of c for p, as the topology makes
// them (this package cannot import it: the topology imports the checks).
func testBlackhole(c *plan.Config, p netip.Prefix) *netlink.Route {
	return &netlink.Route{Dst: lctest.IPNet(p), Type: unix.RTN_BLACKHOLE, Table: unix.RT_TABLE_MAIN, Priority: c.BlackholeMetric()}
}
