package policy

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Table is the nftables table the policy enforcer owns (family inet).
const Table = "podnet-policy"

// Set names. Per family (4, 6): the local pods isolated per direction, and
// what they may exchange: "-any" sets hold (pod . peer) for rules without
// ports (every protocol), "-ports" sets (pod . peer . protocol . port).
// Single peers and ports go to the "-exact" hash sets; real ranges go to
// interval sets, whose elements never overlap (the kernel refuses
// overlapping concatenated ranges), so the renderer turns the union of all
// rules into disjoint boxes first.
func setName(kind string, d Direction, v4 bool) string {
	f := "v6"
	if v4 {
		f = "v4"
	}
	return d.String() + "-" + kind + "-" + f
}

// Desired is the content of the table's sets for one node: set name to
// element keys (fields joined with " . "), in no particular order.
type Desired map[string][]string

// Render computes the set elements for the pods on node.
func Render(c *Compiled, node string) Desired {
	out := Desired{}
	for _, name := range allSets() {
		out[name.name] = nil
	}
	keys := make([]string, 0, len(c.Pods))
	for k := range c.Pods {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		pod := c.Pods[k]
		if pod.Node != node || pod.HostNetwork {
			continue
		}
		for _, d := range []Direction{Ingress, Egress} {
			if len(c.IsolatedBy(pod, d)) == 0 {
				continue
			}
			for _, ip := range pod.IPs {
				if c.byIP[ip] != pod {
					continue // the address now belongs to another pod
				}
				v4 := ip.Is4()
				anyExact, anyRange := setName("any-exact", d, v4), setName("any", d, v4)
				portsExact, portsRange := setName("ports-exact", d, v4), setName("ports", d, v4)
				out[setName("isolated", d, v4)] = append(out[setName("isolated", d, v4)], ip.String())
				anyRanges, boxes := c.allowed(pod, ip, d)
				// Single addresses and ports go to hash sets, which
				// load and change in constant time per element and may
				// hold what the interval sets hold too. Only real ranges
				// go to the kernel's concatenated-interval sets, which
				// cost more per element and must not overlap.
				self := ip.String()
				var ranges []Range
				exact := map[string]bool{}
				for _, r := range anyRanges {
					if r.Lo == r.Hi {
						exact[self+" . "+r.Lo.String()] = true
					} else {
						ranges = append(ranges, r)
					}
				}
				for _, r := range mergeRanges(ranges) {
					out[anyRange] = append(out[anyRange], self+" . "+r.String())
				}
				for k := range exact {
					out[anyExact] = append(out[anyExact], k)
				}
				var rangeBoxes []box
				exact = map[string]bool{}
				for _, b := range boxes {
					if b.peers.Lo == b.peers.Hi && b.ports.Lo == b.ports.Hi {
						exact[self+" . "+b.peers.Lo.String()+" . "+protoNames[b.ports.Protocol]+" . "+portText(b.ports)] = true
					} else {
						rangeBoxes = append(rangeBoxes, b)
					}
				}
				for _, b := range disjointBoxes(rangeBoxes) {
					out[portsRange] = append(out[portsRange],
						self+" . "+b.peers.String()+" . "+protoNames[b.ports.Protocol]+" . "+portText(b.ports))
				}
				for k := range exact {
					out[portsExact] = append(out[portsExact], k)
				}
			}
		}
	}
	return out
}

var protoNames = map[v1.Protocol]string{v1.ProtocolTCP: "tcp", v1.ProtocolUDP: "udp", v1.ProtocolSCTP: "sctp"}

func portText(p PortRange) string {
	if p.Lo == p.Hi {
		return strconv.Itoa(int(p.Lo))
	}
	return strconv.Itoa(int(p.Lo)) + "-" + strconv.Itoa(int(p.Hi))
}

// box is a peer range with a port range.
type box struct {
	peers Range
	ports PortRange
}

// allowed collects what the rules isolating pod in direction d allow for
// its address ip: peer ranges for every protocol, and boxes of peer range
// and ports. Named ports resolve against the destination: the pod itself
// for ingress, each peer pod for egress (so a rule's peers other than pods
// match no named port, as in the evaluator).
func (c *Compiled) allowed(pod *Pod, ip netip.Addr, d Direction) ([]Range, []box) {
	v4 := ip.Is4()
	var anyRanges []Range
	var boxes []box
	for _, r := range c.RulesFor(pod, d) {
		var peers []Range
		if r.AllPeers {
			peers = append(peers, familyRange(v4))
		}
		for _, b := range r.Blocks {
			if b.Lo.Is4() == v4 {
				peers = append(peers, b)
			}
		}
		for _, p := range r.Pods {
			for _, a := range p.IPs {
				if a.Is4() == v4 {
					peers = append(peers, Range{a, a})
				}
			}
		}
		if r.AllPorts {
			anyRanges = append(anyRanges, peers...)
			continue
		}
		for _, s := range r.Ports {
			if s.Name == "" || d == Ingress {
				dst := pod // ingress: the destination is the pod itself
				for _, pr := range s.resolve(dst) {
					for _, peer := range peers {
						boxes = append(boxes, box{peer, pr})
					}
				}
				continue
			}
			// Egress with a named port: it resolves against each
			// destination pod inside the rule's peers.
			for _, dst := range c.podsIn(peers, v4) {
				for _, pr := range s.resolve(dst) {
					for _, a := range dst.IPs {
						if a.Is4() == v4 {
							boxes = append(boxes, box{Range{a, a}, pr})
						}
					}
				}
			}
		}
	}
	return anyRanges, boxes
}

// podsIn returns the pods with an address of the family inside ranges.
func (c *Compiled) podsIn(ranges []Range, v4 bool) []*Pod {
	var out []*Pod
	seen := map[*Pod]bool{}
	for a, p := range c.byIP {
		if a.Is4() != v4 || seen[p] {
			continue
		}
		for _, r := range ranges {
			if r.Contains(a) {
				seen[p] = true
				out = append(out, p)
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b *Pod) int { return strings.Compare(a.Key(), b.Key()) })
	return out
}

func familyRange(v4 bool) Range {
	if v4 {
		return prefixRange(netip.MustParsePrefix("0.0.0.0/0"))
	}
	return prefixRange(netip.MustParsePrefix("::/0"))
}

// mergeRanges returns the union of rs as sorted, disjoint, non-adjacent
// ranges.
func mergeRanges(rs []Range) []Range {
	if len(rs) == 0 {
		return nil
	}
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b Range) int { return a.Lo.Compare(b.Lo) })
	out := []Range{s[0]}
	for _, r := range s[1:] {
		last := &out[len(out)-1]
		if next := last.Hi.Next(); last.Hi.Compare(r.Lo) >= 0 || (next.IsValid() && next == r.Lo) {
			if r.Hi.Compare(last.Hi) > 0 {
				last.Hi = r.Hi
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// disjointBoxes returns boxes covering exactly the union of bs (per
// protocol), none overlapping another of its protocol. It sweeps the peer
// addresses: between two consecutive box edges the set of port ranges is
// constant; neighbouring stretches with the same ports are joined.
func disjointBoxes(bs []box) []box {
	byProto := map[v1.Protocol][]box{}
	for _, b := range bs {
		byProto[b.ports.Protocol] = append(byProto[b.ports.Protocol], b)
	}
	protos := make([]v1.Protocol, 0, len(byProto))
	for p := range byProto {
		protos = append(protos, p)
	}
	slices.Sort(protos)
	var out []box
	for _, proto := range protos {
		out = append(out, sweep(proto, byProto[proto])...)
	}
	return out
}

func sweep(proto v1.Protocol, bs []box) []box {
	type event struct {
		at    netip.Addr
		start bool
		ports PortRange
	}
	var events []event
	for _, b := range bs {
		events = append(events, event{b.peers.Lo, true, b.ports})
		if next := b.peers.Hi.Next(); next.IsValid() && next.Is4() == b.peers.Hi.Is4() {
			events = append(events, event{next, false, b.ports})
		}
	}
	slices.SortFunc(events, func(a, b event) int { return a.at.Compare(b.at) })
	active := map[PortRange]int{}
	var out []box
	type stretch struct {
		lo, hi netip.Addr
		ports  []PortRange
	}
	var open *stretch
	closeAt := func(end netip.Addr) { // the stretch ends just before end
		if open == nil {
			return
		}
		open.hi = end.Prev()
		for _, pr := range open.ports {
			out = append(out, box{Range{open.lo, open.hi}, pr})
		}
		open = nil
	}
	for i := 0; i < len(events); {
		at := events[i].at
		for ; i < len(events) && events[i].at == at; i++ {
			if events[i].start {
				active[events[i].ports]++
			} else if active[events[i].ports]--; active[events[i].ports] == 0 {
				delete(active, events[i].ports)
			}
		}
		ports := unionPorts(proto, active)
		if open != nil && slices.Equal(open.ports, ports) {
			continue
		}
		closeAt(at)
		if len(ports) > 0 {
			open = &stretch{lo: at, ports: ports}
		}
	}
	if open != nil {
		// Open to the end of the family's addresses.
		last := familyRange(open.lo.Is4()).Hi
		for _, pr := range open.ports {
			out = append(out, box{Range{open.lo, last}, pr})
		}
	}
	return out
}

// unionPorts merges the active port ranges into sorted disjoint ranges.
func unionPorts(proto v1.Protocol, active map[PortRange]int) []PortRange {
	if len(active) == 0 {
		return nil
	}
	rs := make([]PortRange, 0, len(active))
	for r := range active {
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b PortRange) int { return int(a.Lo) - int(b.Lo) })
	out := []PortRange{{proto, rs[0].Lo, rs[0].Hi}}
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.Lo <= last.Hi+1 {
			last.Hi = max(last.Hi, r.Hi)
			continue
		}
		out = append(out, PortRange{proto, r.Lo, r.Hi})
	}
	return out
}
