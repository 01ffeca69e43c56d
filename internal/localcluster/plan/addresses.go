package plan

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// The addresses inside the node network and the world network, as host
// numbers counted from the network's address (DESIGN-NOTES.md,
// "Addresses"). SetNodeNetwork and SetWorldNetwork are the only places that
// derive them.
const (
	rootHost      = 1   // the root namespace: the bridge, the API server
	firstNodeHost = 11  // node 1; node i is firstNodeHost + i - 1
	lbPoolHost    = 200 // the first address of the LoadBalancer pool
	lbPoolBits    = 29  // the pool's size: .200 to .207
	worldHost     = 254 // the world namespace, every node's gateway
	worldDNSHost  = 53  // the world's DNS server, in the world network

	// NodeNetworkBits is the prefix length of a node network: the host
	// numbers above need a /24.
	NodeNetworkBits = 24
	// MaxWorldNetworkBits is the longest world network prefix that still
	// holds worldDNSHost as a host address.
	MaxWorldNetworkBits = 26
)

// SetNodeNetwork makes p (an IPv4 /24; host bits are cleared) the node
// network and derives the addresses in it: RootIP .1, FirstNodeIP .11,
// WorldIP .254 and LBPool .200/29. On error c is unchanged.
func (c *Config) SetNodeNetwork(p netip.Prefix) error {
	if err := c.setNodeNetwork(p); err != nil {
		return fmt.Errorf("node network %s: %w", p, err)
	}
	return nil
}

func (c *Config) setNodeNetwork(p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is4() || p.Bits() != NodeNetworkBits {
		return fmt.Errorf("want an IPv4 /%d", NodeNetworkBits)
	}
	base := p.Masked().Addr()
	c.NodeNetwork = p.Masked()
	c.RootIP = addN(base, rootHost)
	c.FirstNodeIP = addN(base, firstNodeHost)
	c.WorldIP = addN(base, worldHost)
	c.LBPool = netip.PrefixFrom(addN(base, lbPoolHost), lbPoolBits)
	return nil
}

// SetWorldNetwork makes p (IPv4, /MaxWorldNetworkBits or larger; host bits
// are cleared) the world network, with the world's DNS server WorldDNSIP at
// its 53rd address. On error c is unchanged.
func (c *Config) SetWorldNetwork(p netip.Prefix) error {
	if err := c.setWorldNetwork(p); err != nil {
		return fmt.Errorf("world network %s: %w", p, err)
	}
	return nil
}

func (c *Config) setWorldNetwork(p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is4() || p.Bits() > MaxWorldNetworkBits {
		return fmt.Errorf("want IPv4 with a prefix length of at most %d (its DNS server is host %d)",
			MaxWorldNetworkBits, worldDNSHost)
	}
	c.WorldNetwork = p.Masked()
	c.WorldDNSIP = addN(c.WorldNetwork.Addr(), worldDNSHost)
	return nil
}

// Ranges are the ranges a user chooses (podnet up's --pod-cidr,
// --service-cidr, --node-network and --world-network), as given; an empty
// one keeps the Config's.
type Ranges struct {
	PodCIDR, ServiceCIDR, NodeNetwork, WorldNetwork string
}

// SetRanges parses r and sets the ranges it gives, deriving the addresses
// inside the node and world networks. Host bits are cleared. The error
// names every flag that is wrong, on one line; Validate checks the result
// as a whole.
func (c *Config) SetRanges(r Ranges) error {
	var problems []string
	parse := func(flag, v string, set func(netip.Prefix) error) {
		if v == "" {
			return
		}
		p, err := netip.ParsePrefix(v)
		if err == nil {
			err = set(p)
		} else {
			err = errors.New("not a CIDR prefix")
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("--%s %q: %v", flag, v, err))
		}
	}
	parse("pod-cidr", r.PodCIDR, func(p netip.Prefix) error { c.PodCIDR = p.Masked(); return nil })
	parse("service-cidr", r.ServiceCIDR, func(p netip.Prefix) error { c.ServiceCIDR = p.Masked(); return nil })
	parse("node-network", r.NodeNetwork, c.setNodeNetwork)
	parse("world-network", r.WorldNetwork, c.setWorldNetwork)
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
