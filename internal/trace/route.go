package trace

import (
	"fmt"
	"net/netip"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/podnet/podnet/internal/routing"
	"github.com/podnet/podnet/internal/wireguard"
)

// RouteStage is how the packet gets from the source's node to the
// destination: on the same node, over a route to another node's pod CIDR
// (directly, through VXLAN or through the WireGuard tunnel), to a node's
// own address, or out of the cluster.
type RouteStage struct {
	From string `json:"from"` // the source's node
	// To is the node that delivers the packet ("" when it leaves the
	// cluster).
	To string `json:"to,omitempty"`
	// Kind is "local" (same node), "direct", "vxlan", "wireguard"
	// (encrypted to To), "node" (a node's own address) or "external".
	Kind string `json:"kind"`
	// Route is the route the source's node uses, as package routing
	// writes it (empty for local and external).
	Route string `json:"route,omitempty"`
	// Masquerade is set when the node rewrites the source to its own
	// address (traffic leaving the pod and service ranges).
	Masquerade bool `json:"masquerade,omitempty"`
	// Unencrypted says why a packet to another node's pod goes in the
	// clear although the source's node encrypts (the destination's node
	// has no valid WireGuard key); a node in strict mode drops it.
	Unencrypted string `json:"unencrypted,omitempty"`
}

// The kinds of a RouteStage.
const (
	RouteLocal  = "local"
	RouteDirect = routing.ModeDirect
	RouteVXLAN  = routing.ModeVXLAN
	// RouteWireGuard: into the WireGuard device, encrypted to To.
	RouteWireGuard = "wireguard"
	RouteNode      = "node"
	RouteExternal  = "external"
)

// RouteFor returns the route from a pod on node from to dst, with the
// Nodes as package routing reads them and the agents' routing mode
// (direct or vxlan). dstNode is the node of dst's pod ("" when dst is no
// pod's). The routes are the ones routing.DesiredRoutes gives the source's
// node, so trace and the routing controller read one model; when the
// source's node encrypts (encryption), the nodes its agent routes into the
// WireGuard device are the peers wireguard.PlanPeers finds.
func RouteFor(mode, from string, dst netip.Addr, dstNode string, nodes []*v1.Node) RouteStage {
	r := RouteStage{From: from}
	if dstNode == from && from != "" {
		r.Kind, r.To = RouteLocal, from
		return r
	}
	for _, n := range nodes {
		for _, fam := range []int{4, 6} {
			if a, ok := routing.NodeInternalIP(n, fam); ok && a == dst {
				r.Kind, r.To = RouteNode, n.Name
				return r
			}
		}
	}
	_, peers := routing.Peers(from, nodes)
	owner := map[netip.Prefix]string{}
	for _, p := range peers {
		for _, c := range p.PodCIDRs {
			owner[c] = p.Name
		}
	}
	enc := encryption(from, nodes)
	for _, rt := range routing.DesiredRoutes(mode, peers, enc.peers) {
		if rt.Dst.Contains(dst) {
			r.Kind, r.To, r.Route = RouteDirect, owner[rt.Dst], rt.String()
			switch {
			case rt.Tunnel:
				r.Kind, r.Route = RouteWireGuard, fmt.Sprintf("%s dev %s", rt.Dst, wireguard.Device)
			case rt.VXLAN:
				r.Kind = RouteVXLAN
			}
			if enc.on && !rt.Tunnel {
				r.Unencrypted = enc.why(r.To)
			}
			return r
		}
	}
	if dstNode != "" {
		// A pod of a node with no route from here (no pod CIDR or
		// InternalIP yet): say so rather than guess.
		r.Kind, r.To = RouteExternal, dstNode
		r.Route = "none: " + from + " has no route to " + dstNode + "'s pod CIDR"
		return r
	}
	r.Kind, r.Masquerade = RouteExternal, true
	return r
}

// encrypting is what the source node's agent encrypts, as the Nodes show
// it.
type encrypting struct {
	// on: the node has published a valid WireGuard key, so its agent
	// runs with encryption.
	on    bool
	peers map[string]bool // the nodes routed into its WireGuard device
	plan  wireguard.Plan
}

// encryption reads from the Nodes whether node from encrypts and to which
// nodes: the agent publishes its key on its own Node, and routes into the
// device exactly the peers wireguard.PlanPeers gives it.
func encryption(from string, nodes []*v1.Node) encrypting {
	for _, n := range nodes {
		if n.Name != from {
			continue
		}
		self, err := wireguard.PeerFromNode(n)
		if err != nil {
			return encrypting{}
		}
		e := encrypting{on: true, peers: map[string]bool{}, plan: wireguard.PlanPeers(from, self.PublicKey, nodes)}
		for _, p := range e.plan.Peers {
			e.peers[p.Node] = true
		}
		return e
	}
	return encrypting{}
}

// why says why traffic to node goes in the clear.
func (e encrypting) why(node string) string {
	if err, bad := e.plan.Invalid[node]; bad {
		return fmt.Sprintf("%s's WireGuard annotations are invalid (%v)", node, err)
	}
	return node + " has published no WireGuard key"
}

// format writes the route step.
func (r RouteStage) format(b *strings.Builder) {
	switch r.Kind {
	case RouteLocal:
		fmt.Fprintf(b, "  route: same node %s (routed veth to veth)\n", r.From)
	case RouteNode:
		fmt.Fprintf(b, "  route: %s -> node %s's own address\n", r.From, r.To)
	case RouteDirect, RouteVXLAN:
		fmt.Fprintf(b, "  route: %s -> %s: %s (%s", r.From, r.To, r.Route, r.Kind)
		if r.Unencrypted != "" {
			fmt.Fprintf(b, ", NOT encrypted: %s; a node in strict mode drops it", r.Unencrypted)
		}
		b.WriteString(")\n")
	case RouteWireGuard:
		fmt.Fprintf(b, "  route: %s -> %s: %s (WireGuard, encrypted to %s)\n", r.From, r.To, r.Route, r.To)
	case RouteExternal:
		if r.Route != "" {
			fmt.Fprintf(b, "  route: %s -> %s: %s\n", r.From, r.To, r.Route)
			return
		}
		fmt.Fprintf(b, "  route: %s -> out of the cluster (default route), masqueraded to %s's address\n", r.From, r.From)
	}
}
