package wireguard

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	v1 "k8s.io/api/core/v1"

	"github.com/podnet/podnet/internal/routing"
)

// Annotations on a Node.
const (
	// AnnotationPublicKey is the node's WireGuard public key (base64).
	AnnotationPublicKey = "podnet.io/wireguard-public-key"
	// AnnotationEndpoint is where the node's WireGuard device listens
	// (IP:port).
	AnnotationEndpoint = "podnet.io/wireguard-endpoint"
	// AnnotationKeyCreated is when the node made its key (RFC 3339).
	AnnotationKeyCreated = "podnet.io/wireguard-key-created"
	// AnnotationRotate asks the node for a new key: a key made before this
	// time (RFC 3339) is replaced.
	AnnotationRotate = "podnet.io/wireguard-rotate"
)

// Defaults.
const (
	// Device is the WireGuard interface on every node.
	Device = "pnwg0"
	// DefaultPort is the UDP port the devices listen on.
	DefaultPort = 51871
	// DefaultKeyFile is where a node keeps its private key (the agent's
	// --wireguard-key-file; deploy/ mounts its directory from the node).
	DefaultKeyFile = "/var/lib/podnet/wireguard/private.key"
	// Overhead is what WireGuard costs per packet over an IPv6 underlay
	// (outer IPv6 40 + UDP 8 + WireGuard 32); an IPv4 underlay costs 60,
	// and the larger figure is taken so one MTU fits both.
	Overhead = 80
	// PersistentKeepalive makes each side send a keepalive after this
	// much silence. It also makes a device that was just (re)configured
	// handshake with every peer at once, so a restarted agent does not
	// wait for its peers to notice it has lost its sessions.
	PersistentKeepalive = 25 * time.Second
)

// Peer is another node as WireGuard sees it.
type Peer struct {
	Node      string
	PublicKey wgtypes.Key
	Endpoint  netip.AddrPort
	NodeIP    netip.Addr
	PodCIDRs  []netip.Prefix
}

// AllowedIPs are what the peer may send from and what is routed to it:
// its pod CIDRs and its node IP (traffic the node itself sends to pods,
// and traffic it masquerades, such as NodePort forwarding, has that source).
func (p Peer) AllowedIPs() []netip.Prefix {
	out := slices.Clone(p.PodCIDRs)
	if p.NodeIP.IsValid() {
		out = append(out, netip.PrefixFrom(p.NodeIP, p.NodeIP.BitLen()))
	}
	return out
}

// ErrNoKey is PeerFromNode's answer for a node that has not published a
// key (yet): it is not an error in the Node, it is not encrypted to.
var ErrNoKey = errors.New("no WireGuard public key published")

// PeerFromNode reads a Node: its key and endpoint annotations, InternalIP
// and pod CIDRs. It returns ErrNoKey when the node has no key annotation,
// and another error when an annotation is malformed.
func PeerFromNode(n *v1.Node) (Peer, error) {
	p := Peer{Node: n.Name, PodCIDRs: routing.PodCIDRs(n)}
	p.NodeIP, _ = routing.NodeInternalIP(n, 4)
	raw, ok := n.Annotations[AnnotationPublicKey]
	if !ok {
		return p, ErrNoKey
	}
	key, err := wgtypes.ParseKey(strings.TrimSpace(raw))
	if err != nil {
		return p, fmt.Errorf("annotation %s: %w", AnnotationPublicKey, err)
	}
	if key == (wgtypes.Key{}) {
		return p, fmt.Errorf("annotation %s: the all-zero key", AnnotationPublicKey)
	}
	p.PublicKey = key
	ep, err := netip.ParseAddrPort(n.Annotations[AnnotationEndpoint])
	if err != nil {
		return p, fmt.Errorf("annotation %s: %w", AnnotationEndpoint, err)
	}
	if ep.Port() == 0 || ep.Addr().IsUnspecified() {
		return p, fmt.Errorf("annotation %s: %s is not an address to send to", AnnotationEndpoint, ep)
	}
	p.Endpoint = netip.AddrPortFrom(ep.Addr().Unmap(), ep.Port())
	if len(p.PodCIDRs) == 0 {
		return p, ErrNoKey // nothing to route to it yet
	}
	return p, nil
}

// Plan is the peers a node configures, from the cluster's Nodes.
type Plan struct {
	// Peers have valid keys, sorted by node name.
	Peers []Peer
	// Pending nodes have no key (yet) or no pod CIDR.
	Pending []string
	// Invalid nodes have a malformed annotation or a key another node
	// already uses; they are skipped.
	Invalid map[string]error
}

// PlanPeers splits the other nodes into peers, pending and invalid. self
// is this node's name and selfKey its public key: a node claiming it is
// invalid.
func PlanPeers(self string, selfKey wgtypes.Key, nodes []*v1.Node) Plan {
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b *v1.Node) int { return strings.Compare(a.Name, b.Name) })
	plan := Plan{Invalid: map[string]error{}}
	owner := map[wgtypes.Key]string{selfKey: self}
	for _, n := range sorted {
		if n.Name == self {
			continue
		}
		p, err := PeerFromNode(n)
		switch {
		case errors.Is(err, ErrNoKey):
			plan.Pending = append(plan.Pending, n.Name)
			continue
		case err != nil:
			plan.Invalid[n.Name] = err
			continue
		}
		if other, dup := owner[p.PublicKey]; dup {
			plan.Invalid[n.Name] = fmt.Errorf("public key %s is already node %s's", p.PublicKey, other)
			continue
		}
		owner[p.PublicKey] = n.Name
		plan.Peers = append(plan.Peers, p)
	}
	return plan
}

// DeviceConfig is the whole configuration of the device: the private key,
// the port, and exactly the plan's peers (any other peer is removed).
func DeviceConfig(key wgtypes.Key, port int, peers []Peer) wgtypes.Config {
	keepalive := PersistentKeepalive
	cfg := wgtypes.Config{PrivateKey: &key, ListenPort: &port, ReplacePeers: true}
	for _, p := range peers {
		ep := net.UDPAddrFromAddrPort(p.Endpoint)
		pc := wgtypes.PeerConfig{PublicKey: p.PublicKey, Endpoint: ep, ReplaceAllowedIPs: true,
			PersistentKeepaliveInterval: &keepalive}
		for _, a := range p.AllowedIPs() {
			pc.AllowedIPs = append(pc.AllowedIPs, net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())})
		}
		cfg.Peers = append(cfg.Peers, pc)
	}
	return cfg
}

// SelfAnnotations are the annotations a node publishes on its own Node.
func SelfAnnotations(pub wgtypes.Key, endpoint netip.AddrPort, created time.Time) map[string]string {
	return map[string]string{
		AnnotationPublicKey:  pub.String(),
		AnnotationEndpoint:   endpoint.String(),
		AnnotationKeyCreated: created.UTC().Format(time.RFC3339),
	}
}

// RotationDue says whether a key made at created must be replaced at now:
// it is older than period (0: never by age), or the Node's AnnotationRotate
// (rotate; "" for none) names a later time than created. A malformed
// rotate annotation is returned as an error and does not rotate.
func RotationDue(created time.Time, period time.Duration, rotate string, now time.Time) (bool, error) {
	if period > 0 && now.Sub(created) >= period {
		return true, nil
	}
	if rotate == "" {
		return false, nil
	}
	t, err := time.Parse(time.RFC3339, rotate)
	if err != nil {
		return false, fmt.Errorf("annotation %s: %w", AnnotationRotate, err)
	}
	// The annotation has whole seconds; a key made within the second the
	// request names is new enough.
	return created.Truncate(time.Second).Before(t) && !t.After(now), nil
}

// checkPort refuses a listen port that is not one (it would be published
// wrapped around into another port).
func checkPort(port int) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("wireguard: port %d: want 1 to 65535", port)
	}
	return nil
}
