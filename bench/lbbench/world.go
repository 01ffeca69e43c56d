package main

import (
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/podnet/podnet/internal/netns"
)

// neighbourMAC is the world's neighbour entry for ip: the MAC it sends
// ip's packets to ("" when there is none, or it is not resolved).
func neighbourMAC(worldNS string, ip netip.Addr) (string, error) {
	var mac string
	err := netns.Do(worldNS, func() error {
		ns, err := netlink.NeighList(0, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, n := range ns {
			ok := n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT) != 0
			if a, _ := netip.AddrFromSlice(n.IP); a.Unmap() == ip && ok && len(n.HardwareAddr) > 0 {
				mac = n.HardwareAddr.String()
			}
		}
		return nil
	})
	return mac, err
}

// forgetNeighbour deletes the world's neighbour entry for ip, so that the
// next packet to it asks with ARP as for an address never seen.
func forgetNeighbour(worldNS string, ip netip.Addr) error {
	return netns.Do(worldNS, func() error {
		ns, err := netlink.NeighList(0, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, n := range ns {
			if a, _ := netip.AddrFromSlice(n.IP); a.Unmap() == ip {
				if err := netlink.NeighDel(&n); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// linkMAC is the MAC of the link called name in the namespace at nsPath.
func linkMAC(nsPath, name string) (string, error) {
	var mac string
	err := netns.Do(nsPath, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		mac = l.Attrs().HardwareAddr.String()
		return nil
	})
	return mac, err
}
