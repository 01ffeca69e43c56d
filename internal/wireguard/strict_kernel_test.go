//go:build linux

package wireguard

// Kernel fixture (root only): one throwaway node namespace pnt-wgs-XXXXXXXX,
// removed in t.Cleanup, whose links are veth pairs with both ends in it
// (this kernel has no dummy links; nothing leaves the namespace). Cluster pod CIDRs
// 10.R.0.0/16 and fd00:10:R::/48 with R random in 50-99; this node's pod
// CIDR 10.R.1.0/24 (on pod0), a remote node's 10.R.2.0/24 and
// fd00:10:R:2::/64 routed out of eth0 (172.31.R.11/24), and a
// tunneled node's 10.R.3.0/24 routed into a veth named pnwg0.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/netns"
)

// needRoot skips a kernel test where it cannot run at all.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: creating network namespaces needs root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("kernel test: the nft binary is missing (Debian package nftables)")
	}
}

// newNS makes a throwaway namespace removed when t ends; it returns the
// path.
func newNS(t *testing.T, prefix string) string {
	t.Helper()
	name := netns.UniqueName(prefix)
	path, err := netns.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(name); err != nil {
			t.Errorf("remove namespace %s: %v", name, err)
		}
	})
	return path
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// addLink adds an up veth name (with its up peer name+"p" in the same
// namespace) with the addresses (no DAD for IPv6) and routes the prefixes
// out of it.
func addLink(name string, addrs []netip.Prefix, routes ...netip.Prefix) error {
	la := netlink.NewLinkAttrs()
	la.Name = name
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: name + "p"}); err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	peer, err := netlink.LinkByName(name + "p")
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(peer); err != nil {
		return err
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: ipNet(a), Flags: unix.IFA_F_NODAD}); err != nil {
			return fmt.Errorf("address %s on %s: %w", a, name, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return err
	}
	for _, r := range routes {
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(r)}); err != nil {
			return fmt.Errorf("route %s dev %s: %w", r, name, err)
		}
	}
	return nil
}

// sendUDP sends one datagram of 4 bytes to dst port 9 from inside ns and
// returns the send's error (EPERM when netfilter dropped it).
func sendUDP(ns string, dst netip.Addr) error {
	return netns.Do(ns, func() error {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("ping"))
		return err
	})
}

func TestKernelStrictDropsRemotePodTrafficOutsideTheTunnel(t *testing.T) {
	needRoot(t)
	r := 50 + rand.IntN(50)
	p := func(f string) netip.Prefix { return netip.MustParsePrefix(fmt.Sprintf(f, r)) }
	a := func(f string) netip.Addr { return netip.MustParseAddr(fmt.Sprintf(f, r)) }
	ns := newNS(t, "pnt-wgs-")
	ctx := context.Background()

	err := netns.Do(ns, func() error {
		if err := addLink("eth0", []netip.Prefix{p("172.31.%d.11/24"), p("fd00:31:%d::11/64")}, p("10.%d.2.0/24"), p("fd00:10:%d:2::/64")); err != nil {
			return err
		}
		if err := addLink("pod0", nil, p("10.%d.1.0/24")); err != nil {
			return err
		}
		return addLink(Device, nil, p("10.%d.3.0/24"))
	})
	if err != nil {
		t.Fatal(err)
	}
	strictDrops := func() (uint64, uint64, bool) {
		var pk, by uint64
		var ok bool
		_ = netns.Do(ns, func() error {
			nft, err := NewNFT()
			if err != nil {
				return err
			}
			pk, by, ok = StrictDrops(ctx, nft)
			return nil
		})
		return pk, by, ok
	}
	if _, _, ok := strictDrops(); ok {
		t.Fatal("StrictDrops is ok before the table exists")
	}
	err = netns.Do(ns, func() error {
		nft, err := NewNFT()
		if err != nil {
			return err
		}
		tx := nft.NewTransaction()
		RenderStrict(tx, []netip.Prefix{p("10.%d.0.0/16"), p("fd00:10:%d::/48")}, []netip.Prefix{p("10.%d.1.0/24")})
		return nft.Run(ctx, tx)
	})
	if err != nil {
		t.Fatalf("load the table into nft: %v", err)
	}
	if pk, _, ok := strictDrops(); !ok || pk != 0 {
		t.Fatalf("after loading: %d drops, ok %v; want 0, true", pk, ok)
	}

	for _, tc := range []struct {
		name    string
		dst     netip.Addr
		dropped bool
		bytes   uint64 // added to the counter when dropped
	}{
		{"a remote pod out of eth0 is dropped and counted", a("10.%d.2.5"), true, 20 + 8 + 4},
		{"a remote IPv6 pod out of eth0 is dropped and counted", a("fd00:10:%d:2::5"), true, 40 + 8 + 4},
		{"a pod of a node routed into pnwg0 passes", a("10.%d.3.5"), false, 0},
		{"a pod of this node passes", a("10.%d.1.5"), false, 0},
		{"an address outside the pod CIDRs passes", a("172.31.%d.20"), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pk0, by0, _ := strictDrops()
			err := sendUDP(ns, tc.dst)
			if tc.dropped != errors.Is(err, syscall.EPERM) {
				t.Errorf("send to %s: %v, want dropped %v (EPERM)", tc.dst, err, tc.dropped)
			}
			if !tc.dropped && err != nil {
				t.Errorf("send to %s: %v", tc.dst, err)
			}
			pk, by, ok := strictDrops()
			want := uint64(0)
			if tc.dropped {
				want = 1
			}
			if !ok || pk-pk0 != want || by-by0 != tc.bytes {
				t.Errorf("counter went %d -> %d packets, %d -> %d bytes (ok %v); want +%d packets, +%d bytes", pk0, pk, by0, by, ok, want, tc.bytes)
			}
		})
	}

	err = netns.Do(ns, func() error {
		nft, err := NewNFT()
		if err != nil {
			return err
		}
		if err := DeleteStrict(ctx, nft); err != nil {
			return err
		}
		return DeleteStrict(ctx, nft) // a missing table is fine
	})
	if err != nil {
		t.Fatalf("DeleteStrict: %v", err)
	}
	if _, _, ok := strictDrops(); ok {
		t.Error("the table is still there after DeleteStrict")
	}
	if err := sendUDP(ns, a("10.%d.2.5")); err != nil {
		t.Errorf("without the table a remote pod is sent to in the clear, but: %v", err)
	}
}
