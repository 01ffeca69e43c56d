package routing

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/podnet/podnet/internal/netns"
)

// Kernel fixture: two node namespaces joined by one veth pair (the
// underlay) 172.31.<r>.11/24 and .12/24; each node has a stand-in pod
// address 10.<r>.<i>.5/32 on lo inside its pod CIDR 10.<r>.<i>.0/24, and
// the cluster pod CIDR is 10.<r>.0.0/16. <r> is random per test.
type kfix struct {
	nodes   [2]string // namespace paths
	nodeIPs [2]netip.Addr
	podIPs  [2]netip.Addr
	cidrs   [2]netip.Prefix
	cluster netip.Prefix
}

func newKFix(t *testing.T) *kfix {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: creating network namespaces needs root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("kernel test: the nft binary is missing (Debian package nftables)")
	}
	r := 200 + rand.IntN(50)
	f := &kfix{cluster: netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", r))}
	var names [2]string
	for i := range 2 {
		names[i] = netns.UniqueName("pnt-rt-")
		path, err := netns.Create(names[i])
		if err != nil {
			t.Fatal(err)
		}
		name := names[i]
		t.Cleanup(func() { _ = netns.Delete(name) })
		f.nodes[i] = path
		f.nodeIPs[i] = netip.MustParseAddr(fmt.Sprintf("172.31.%d.%d", r, 11+i))
		f.podIPs[i] = netip.MustParseAddr(fmt.Sprintf("10.%d.%d.5", r, i+1))
		f.cidrs[i] = netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", r, i+1))
	}
	// The underlay: a veth pair made in node 0 with its peer in node 1.
	err := netns.Do(f.nodes[0], func() error {
		peerNS, err := os.Open(f.nodes[1])
		if err != nil {
			return err
		}
		defer peerNS.Close()
		la := netlink.NewLinkAttrs()
		la.Name = "eth0"
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(peerNS.Fd())})
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		err := netns.Do(f.nodes[i], func() error {
			eth, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			if err := netlink.AddrAdd(eth, &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(f.nodeIPs[i], 24))}); err != nil {
				return err
			}
			if err := netlink.LinkSetUp(eth); err != nil {
				return err
			}
			lo, _ := netlink.LinkByName("lo")
			if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(f.podIPs[i], 32))}); err != nil {
				return err
			}
			return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *kfix) sync(t *testing.T, mode string) {
	t.Helper()
	peers := []Peer{
		{Name: "n0", NodeIP: f.nodeIPs[0], PodCIDRs: []netip.Prefix{f.cidrs[0]}},
		{Name: "n1", NodeIP: f.nodeIPs[1], PodCIDRs: []netip.Prefix{f.cidrs[1]}},
	}
	for i := range 2 {
		err := netns.Do(f.nodes[i], func() error {
			nft, err := NewNFT()
			if err != nil {
				return err
			}
			s, err := NewSyncer(mode, MasqConfig{PodCIDRs: []netip.Prefix{f.cluster}, ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16")}}, nft)
			if err != nil {
				return err
			}
			// nft runs as a child process, which inherits this
			// thread's namespace.
			return s.Sync(context.Background(), &peers[i], []Peer{peers[1-i]}, TunnelRoutes{})
		})
		if err != nil {
			t.Fatalf("sync node %d: %v", i, err)
		}
	}
}

// dialSeen connects from src (bound) in node 0 to dst served in node 1 and
// returns the client address node 1 saw.
func (f *kfix) dialSeen(t *testing.T, src, dst netip.Addr) netip.Addr {
	t.Helper()
	seen, err := netns.TCPSeen(f.nodes[1], f.nodes[0], dst, src, 3*time.Second)
	if err != nil {
		t.Fatalf("connect %s -> %s: %v", src, dst, err)
	}
	return seen
}

func TestKernelRoutingConnectsPodCIDRs(t *testing.T) {
	for _, mode := range []string{ModeDirect, ModeVXLAN} {
		t.Run(mode+" mode: pods reach pods on the other node without NAT, and leave masqueraded", func(t *testing.T) {
			f := newKFix(t)
			f.sync(t, mode)
			f.sync(t, mode) // a second sync changes nothing and fails nothing
			if seen := f.dialSeen(t, f.podIPs[0], f.podIPs[1]); seen != f.podIPs[0] {
				t.Errorf("pod-to-pod: server saw %s, want the pod IP %s", seen, f.podIPs[0])
			}
			if seen := f.dialSeen(t, f.podIPs[0], f.nodeIPs[1]); seen != f.nodeIPs[0] {
				t.Errorf("pod-to-outside: server saw %s, want node 0's IP %s (masquerade)", seen, f.nodeIPs[0])
			}
			out, err := exec.Command("nsenter", "--net="+f.nodes[0], "ip", "route", "get", f.podIPs[1].String()).CombinedOutput()
			if err != nil {
				t.Fatal(err)
			}
			wantDev := "dev eth0"
			if mode == ModeVXLAN {
				wantDev = "dev " + VXLANDevice
			}
			if !strings.Contains(string(out), wantDev) {
				t.Errorf("route to the peer's pod: %s, want it through %s", out, wantDev)
			}
		})
	}
}

func TestKernelStaleRoutesAreRemovedAndOthersKept(t *testing.T) {
	f := newKFix(t)
	f.sync(t, ModeDirect)
	foreign := fmt.Sprintf("%s/32", netip.MustParsePrefix(f.cidrs[1].String()).Addr().Next().Next().Next())
	err := netns.Do(f.nodes[0], func() error {
		// A route of ours to a node that no longer exists, and one of
		// another program.
		stale := &netlink.Route{Dst: prefixNet(netip.MustParsePrefix("10.250.250.0/24")), Gw: f.nodeIPs[1].AsSlice(), Protocol: RouteProtocol}
		if err := netlink.RouteAdd(stale); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{Dst: prefixNet(netip.MustParsePrefix(foreign)), Gw: f.nodeIPs[1].AsSlice()})
	})
	if err != nil {
		t.Fatal(err)
	}
	f.sync(t, ModeDirect)
	out, _ := exec.Command("nsenter", "--net="+f.nodes[0], "ip", "route").CombinedOutput()
	if strings.Contains(string(out), "10.250.250.0/24") {
		t.Errorf("stale podnet route survived:\n%s", out)
	}
	if !strings.Contains(string(out), strings.TrimSuffix(foreign, "/32")) {
		t.Errorf("another program's route was removed:\n%s", out)
	}
	if !strings.Contains(string(out), f.cidrs[1].String()+" via "+f.nodeIPs[1].String()) {
		t.Errorf("route to the peer missing:\n%s", out)
	}
}
