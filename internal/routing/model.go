package routing

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"
)

// Modes.
const (
	ModeDirect = "direct"
	ModeVXLAN  = "vxlan"
)

// RouteProtocol marks podnet's routes (rtnetlink protocol number; values
// above RTPROT_STATIC are free for routing daemons).
const RouteProtocol = 80

// VXLAN parameters.
const (
	VXLANDevice = "pnvxlan"
	VXLANVNI    = 1
	VXLANPort   = 4789
	// VXLANOverhead is what encapsulation costs: outer IPv4 20 + UDP 8 +
	// VXLAN 8 + inner Ethernet 14.
	VXLANOverhead = 50
)

// Peer is a node as routing sees it.
type Peer struct {
	Name     string
	NodeIP   netip.Addr
	PodCIDRs []netip.Prefix
}

// Route is one desired route to a peer's pod CIDR.
type Route struct {
	Dst netip.Prefix
	// Gw is the peer's node IP (direct) or VTEP address (vxlan).
	Gw netip.Addr
	// VXLAN routes leave through the VXLAN device, on-link.
	VXLAN bool
	// Tunnel routes leave through the encryption device (package
	// wireguard), with no gateway; Gw is unset.
	Tunnel bool
}

// TunnelRoutes is what the encryption device (package wireguard) reaches:
// its interface index and the nodes whose pod CIDRs are routed into it.
type TunnelRoutes struct {
	LinkIndex int
	Nodes     map[string]bool
}

func (r Route) String() string {
	if r.VXLAN {
		return fmt.Sprintf("%s via %s dev %s onlink", r.Dst, r.Gw, VXLANDevice)
	}
	if r.Tunnel {
		return fmt.Sprintf("%s dev <tunnel>", r.Dst)
	}
	return fmt.Sprintf("%s via %s", r.Dst, r.Gw)
}

// NodeInternalIP returns the node's first InternalIP of the given family (4
// or 6), if any.
func NodeInternalIP(n *v1.Node, family int) (netip.Addr, bool) {
	for _, a := range n.Status.Addresses {
		if a.Type != v1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err != nil {
			continue
		}
		if (family == 4) == ip.Is4() {
			return ip.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// PodCIDRs returns the node's pod CIDRs, ignoring any that do not parse.
func PodCIDRs(n *v1.Node) []netip.Prefix {
	raw := n.Spec.PodCIDRs
	if len(raw) == 0 && n.Spec.PodCIDR != "" {
		raw = []string{n.Spec.PodCIDR}
	}
	var out []netip.Prefix
	for _, s := range raw {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// Peers splits nodes into this node and the others that can be routed to
// (with an InternalIP and at least one pod CIDR), sorted by name.
func Peers(self string, nodes []*v1.Node) (me *Peer, others []Peer) {
	for _, n := range nodes {
		p := Peer{Name: n.Name, PodCIDRs: PodCIDRs(n)}
		p.NodeIP, _ = NodeInternalIP(n, 4)
		if n.Name == self {
			me = &p
			continue
		}
		if p.NodeIP.IsValid() && len(p.PodCIDRs) > 0 {
			others = append(others, p)
		}
	}
	slices.SortFunc(others, func(a, b Peer) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return me, others
}

// DesiredRoutes returns the routes to every peer's pod CIDRs. VXLAN mode
// routes IPv4 pod CIDRs only (the tunnel runs over the IPv4 underlay).
// The pod CIDRs of the nodes in tunneled go into the encryption device
// instead, in either mode.
func DesiredRoutes(mode string, peers []Peer, tunneled map[string]bool) []Route {
	var out []Route
	for _, p := range peers {
		for _, c := range p.PodCIDRs {
			if tunneled[p.Name] {
				out = append(out, Route{Dst: c, Tunnel: true})
				continue
			}
			switch mode {
			case ModeVXLAN:
				if c.Addr().Is4() {
					out = append(out, Route{Dst: c, Gw: VTEPAddr(c), VXLAN: true})
				}
			default:
				if c.Addr().Is4() == p.NodeIP.Is4() {
					out = append(out, Route{Dst: c, Gw: p.NodeIP})
				}
			}
		}
	}
	return out
}

// VTEPAddr is a node's VXLAN endpoint address: the first address of its pod
// CIDR, its network address, which the CNI plugin never hands to a pod.
func VTEPAddr(podCIDR netip.Prefix) netip.Addr { return podCIDR.Masked().Addr() }

// VTEPMAC derives a node's VXLAN device MAC from its node IP: locally
// administered, unicast, stable across restarts, and computable by peers.
func VTEPMAC(nodeIP netip.Addr) net.HardwareAddr {
	sum := sha256.Sum256(nodeIP.AsSlice())
	mac := net.HardwareAddr{0x0e, sum[0], sum[1], sum[2], sum[3], sum[4]}
	return mac
}
