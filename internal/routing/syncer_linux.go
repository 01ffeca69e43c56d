package routing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"

	"github.com/podnet/podnet/internal/nldump"
)

// Syncer programs the kernel of the node it runs on. It is called by one
// runner at a time and keeps no state between calls: every Sync reconciles
// the kernel to the desired state from scratch.
type Syncer struct {
	// set at construction, read-only
	mode string
	masq MasqConfig
	nft  knftables.Interface
}

// NewSyncer returns a syncer; nft is the table's interface (knftables.New
// for the real kernel, knftables.NewFake in tests).
func NewSyncer(mode string, masq MasqConfig, nft knftables.Interface) (*Syncer, error) {
	if mode != ModeDirect && mode != ModeVXLAN {
		return nil, fmt.Errorf("routing: unknown mode %q (want %s or %s)", mode, ModeDirect, ModeVXLAN)
	}
	return &Syncer{mode: mode, masq: masq, nft: nft}, nil
}

// NewNFT returns the real nftables interface for the routing table.
func NewNFT() (knftables.Interface, error) {
	return knftables.New(knftables.InetFamily, Table)
}

// Sync makes the kernel match: masquerade table, VXLAN device (vxlan mode),
// and routes to every peer; the pod CIDRs of the nodes in tun go into the
// encryption device.
func (s *Syncer) Sync(ctx context.Context, me *Peer, peers []Peer, tun TunnelRoutes) error {
	var errs []error
	tx := s.nft.NewTransaction()
	RenderMasquerade(tx, s.masq)
	if err := s.nft.Run(ctx, tx); err != nil {
		errs = append(errs, fmt.Errorf("masquerade table: %w", err))
	}
	vxIndex := 0
	if s.mode == ModeVXLAN {
		if me == nil || !me.NodeIP.IsValid() || len(me.PodCIDRs) == 0 {
			return errors.Join(append(errs, errors.New("vxlan: this node has no InternalIP or pod CIDR yet"))...)
		}
		idx, err := ensureVXLAN(*me)
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("vxlan device: %w", err))...)
		}
		vxIndex = idx
		if err := syncVXLANPeers(idx, peers); err != nil {
			errs = append(errs, err)
		}
	}
	if tun.LinkIndex == 0 {
		tun.Nodes = nil // no device: nothing can be routed into it
	}
	if err := syncRoutes(DesiredRoutes(s.mode, peers, tun.Nodes), vxIndex, tun.LinkIndex); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// syncRoutes adds, replaces and deletes podnet's routes (RouteProtocol).
func syncRoutes(want []Route, vxIndex, tunIndex int) error {
	have, err := nldump.Do(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN},
			netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	wanted := map[string]bool{}
	var errs []error
	for _, r := range want {
		wanted[r.Dst.String()] = true
		nr := &netlink.Route{Dst: prefixNet(r.Dst), Gw: r.Gw.AsSlice(), Protocol: RouteProtocol}
		switch {
		case r.VXLAN:
			nr.LinkIndex = vxIndex
			nr.Flags = int(netlink.FLAG_ONLINK)
		case r.Tunnel:
			nr.LinkIndex = tunIndex
			nr.Scope = netlink.SCOPE_LINK
		}
		if routePresent(have, nr) {
			continue
		}
		if err := netlink.RouteReplace(nr); err != nil {
			errs = append(errs, fmt.Errorf("route %s: %w", r, err))
		}
	}
	for _, h := range have {
		if h.Dst != nil && !wanted[netip.PrefixFrom(addrOf(h.Dst.IP), ones(h.Dst)).String()] {
			h := h
			if err := netlink.RouteDel(&h); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("delete stale route %s: %w", h.Dst, err))
			}
		}
	}
	return errors.Join(errs...)
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

func ones(n *net.IPNet) int {
	o, _ := n.Mask.Size()
	return o
}

func routePresent(have []netlink.Route, want *netlink.Route) bool {
	for _, h := range have {
		if h.Dst != nil && h.Dst.String() == want.Dst.String() && len(h.Gw) == len(want.Gw) && h.Gw.Equal(want.Gw) &&
			(want.LinkIndex == 0 || h.LinkIndex == want.LinkIndex) {
			return true
		}
	}
	return false
}

// ensureVXLAN creates or updates the VXLAN device and returns its index.
func ensureVXLAN(me Peer) (int, error) {
	mac := VTEPMAC(me.NodeIP)
	under, err := deviceFor(me.NodeIP)
	if err != nil {
		return 0, err
	}
	link, err := netlink.LinkByName(VXLANDevice)
	if err == nil {
		vx, ok := link.(*netlink.Vxlan)
		if !ok || vx.VxlanId != VXLANVNI || !vx.SrcAddr.Equal(me.NodeIP.AsSlice()) || vx.Port != VXLANPort || vx.HardwareAddr.String() != mac.String() {
			// Wrong shape (changed node IP, or someone else's device):
			// recreate it.
			if err := netlink.LinkDel(link); err != nil {
				return 0, err
			}
			link = nil
		}
	} else {
		link = nil
	}
	if link == nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = VXLANDevice
		attrs.HardwareAddr = mac
		attrs.MTU = under.Attrs().MTU - VXLANOverhead
		vx := &netlink.Vxlan{LinkAttrs: attrs, VxlanId: VXLANVNI, SrcAddr: me.NodeIP.AsSlice(), Port: VXLANPort,
			VtepDevIndex: under.Attrs().Index, Learning: false}
		if err := netlink.LinkAdd(vx); err != nil {
			return 0, fmt.Errorf("create %s: %w", VXLANDevice, err)
		}
		if link, err = netlink.LinkByName(VXLANDevice); err != nil {
			return 0, err
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return 0, err
	}
	for _, c := range me.PodCIDRs {
		if !c.Addr().Is4() {
			continue
		}
		vtep := &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(VTEPAddr(c), 32))}
		if err := netlink.AddrReplace(link, vtep); err != nil {
			return 0, fmt.Errorf("VTEP address %s: %w", VTEPAddr(c), err)
		}
	}
	return link.Attrs().Index, nil
}

// deviceFor returns the link that holds addr.
func deviceFor(addr netip.Addr) (netlink.Link, error) {
	addrs, err := nldump.Do(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if a.IP.Equal(addr.AsSlice()) {
			return netlink.LinkByIndex(a.LinkIndex)
		}
	}
	return nil, fmt.Errorf("no interface holds the node IP %s", addr)
}

// syncVXLANPeers programs, per peer, the neighbor entry (VTEP -> MAC) and the
// forwarding-database entry (MAC -> node IP), and removes stale ones.
func syncVXLANPeers(vxIndex int, peers []Peer) error {
	var errs []error
	wantNeigh := map[string]bool{}
	wantFDB := map[string]bool{}
	for _, p := range peers {
		mac := VTEPMAC(p.NodeIP)
		wantFDB[mac.String()] = true
		if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: vxIndex, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
			State: netlink.NUD_PERMANENT, IP: p.NodeIP.AsSlice(), HardwareAddr: mac}); err != nil {
			errs = append(errs, fmt.Errorf("fdb %s -> %s: %w", mac, p.NodeIP, err))
		}
		for _, c := range p.PodCIDRs {
			if !c.Addr().Is4() {
				continue
			}
			wantNeigh[VTEPAddr(c).String()] = true
			if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: vxIndex, Family: netlink.FAMILY_V4,
				State: netlink.NUD_PERMANENT, IP: VTEPAddr(c).AsSlice(), HardwareAddr: mac}); err != nil {
				errs = append(errs, fmt.Errorf("neighbor %s: %w", VTEPAddr(c), err))
			}
		}
	}
	neighs, err := nldump.Do(func() ([]netlink.Neigh, error) { return netlink.NeighList(vxIndex, netlink.FAMILY_V4) })
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, n := range neighs {
		if n.State&netlink.NUD_PERMANENT != 0 && !wantNeigh[n.IP.String()] {
			n := n
			_ = netlink.NeighDel(&n)
		}
	}
	fdb, err := nldump.Do(func() ([]netlink.Neigh, error) { return netlink.NeighList(vxIndex, unix.AF_BRIDGE) })
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, n := range fdb {
		if n.HardwareAddr != nil && !wantFDB[n.HardwareAddr.String()] && n.State&netlink.NUD_PERMANENT != 0 {
			n := n
			_ = netlink.NeighDel(&n)
		}
	}
	return errors.Join(errs...)
}
