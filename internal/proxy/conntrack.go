package proxy

import (
	"fmt"
	"net/netip"

	v1 "k8s.io/api/core/v1"
)

// ConntrackDeletion selects UDP conntrack entries to delete: those whose
// original destination is Dst:Port (any node address when Dst is zero: a
// NodePort) and, when Endpoint is valid, whose reply comes from Endpoint.
type ConntrackDeletion struct {
	Dst      netip.Addr
	Port     uint16
	Endpoint netip.Addr
}

func (d ConntrackDeletion) String() string {
	dst := "*"
	if d.Dst.IsValid() {
		dst = d.Dst.String()
	}
	ep := "any"
	if d.Endpoint.IsValid() {
		ep = d.Endpoint.String()
	}
	return fmt.Sprintf("udp to %s:%d answered by %s", dst, d.Port, ep)
}

// Conntrack deletes conntrack entries (netlink on the kernel, a fake in
// tests).
type Conntrack interface {
	DeleteUDP(dels []ConntrackDeletion) (int, error)
}

type udpTarget struct {
	dst  netip.Addr // zero: a NodePort on any node address
	port uint16
}

func udpTargets(sp *ServicePort) []udpTarget {
	var out []udpTarget
	for _, a := range append(append([]netip.Addr{}, sp.ClusterIPs...), sp.ExternalAddrs...) {
		out = append(out, udpTarget{a, uint16(sp.Port)})
	}
	if sp.NodePort != 0 {
		out = append(out, udpTarget{port: uint16(sp.NodePort)})
	}
	return out
}

// StaleUDP returns the conntrack entries a change from prev to cur leaves
// stale. UDP has no connection end, so a client that keeps its source port
// (a DNS resolver) would keep talking to a removed endpoint, or, for a
// Service that had no endpoint, to nothing:
//   - for every endpoint a UDP Service port lost, the entries to the
//     Service's addresses answered by that endpoint;
//   - for a UDP Service port that gained its first endpoint, every entry to
//     its addresses (they were never translated).
//
// TCP needs nothing: its connections to a removed endpoint fail and are
// retried as new connections.
func StaleUDP(prev, cur []*ServicePort) []ConntrackDeletion {
	index := func(sps []*ServicePort) map[string]*ServicePort {
		m := map[string]*ServicePort{}
		for _, sp := range sps {
			m[sp.Key()] = sp
		}
		return m
	}
	before, after := index(prev), index(cur)
	var out []ConntrackDeletion
	for key, p := range before {
		out = append(out, staleUDPOf(p, after[key], prev == nil)...)
	}
	for key, c := range after {
		if before[key] == nil {
			out = append(out, staleUDPOf(nil, c, prev == nil)...)
		}
	}
	return out
}

// staleUDPOf returns the conntrack entries left stale by a change of one
// Service port from p to c (nil: none; not UDP counts as none). first
// says that p is not known because nothing was programmed since the start.
func staleUDPOf(p, c *ServicePort, first bool) []ConntrackDeletion {
	if p != nil && p.Protocol != v1.ProtocolUDP {
		p = nil
	}
	if c != nil && c.Protocol != v1.ProtocolUDP {
		c = nil
	}
	if p == c {
		return nil // the same pointer: unchanged (see PortCache)
	}
	var out []ConntrackDeletion
	if p != nil {
		kept := map[netip.Addr]bool{}
		if c != nil {
			for _, e := range c.Endpoints {
				kept[e.IP] = true
			}
		}
		for _, e := range p.Endpoints {
			if kept[e.IP] {
				continue
			}
			for _, t := range udpTargets(p) {
				out = append(out, ConntrackDeletion{Dst: t.dst, Port: t.port, Endpoint: e.IP})
			}
		}
	}
	if c == nil || len(c.Endpoints) == 0 || (p != nil && len(p.Endpoints) > 0) || (p == nil && first) {
		return out
	}
	for _, t := range udpTargets(c) {
		out = append(out, ConntrackDeletion{Dst: t.dst, Port: t.port})
	}
	return out
}
