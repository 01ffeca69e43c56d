package dns

import (
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"

	mdns "github.com/miekg/dns"
)

// SpecVersion is the Kubernetes DNS specification version served in the
// dns-version TXT record.
const SpecVersion = "1.1.0"

// Config configures the cluster zone.
type Config struct {
	// Zone is the cluster domain, e.g. "cluster.local".
	Zone string
	// TTL of every answer, and the SOA's negative-caching TTL.
	TTL     uint32
	PodMode PodMode
}

// Zone answers questions about the cluster domain and the reverse zones
// from the current snapshot. It is safe for concurrent use.
type Zone struct {
	// set at construction, read-only
	zone    string // fqdn, lower case: "cluster.local."
	ttl     uint32
	podMode PodMode

	snap     atomic.Pointer[Snapshot]
	draining atomic.Bool
}

// NewZone returns a zone with no snapshot: until Store is called, Answer
// says the data is not ready (SERVFAIL) for names in the zone and the
// reverse zones, and leaves other names to the forwarder.
func NewZone(c Config) *Zone {
	zone := strings.ToLower(strings.Trim(c.Zone, ".")) + "."
	if c.PodMode == "" {
		c.PodMode = PodsInsecure
	}
	return &Zone{zone: zone, ttl: c.TTL, podMode: c.PodMode}
}

// Store makes s the data answers come from.
func (z *Zone) Store(s *Snapshot) { z.snap.Store(s) }

// Ready says whether a snapshot was stored (the informers had synced) and
// the server is not draining.
func (z *Zone) Ready() bool { return z.snap.Load() != nil && !z.draining.Load() }

// Drain marks the server as stopping: Ready turns false (so /ready fails
// and the endpoint goes away) while answers go on.
func (z *Zone) Drain() { z.draining.Store(true) }

// Name is the zone's name ("cluster.local.").
func (z *Zone) Name() string { return z.zone }

// Reply is the zone's answer to one question.
type Reply struct {
	Rcode             int
	Answer, Ns, Extra []mdns.RR
	Authoritative     bool
	// Forward marks a reverse name that is not the cluster's alone: no
	// record of the cluster owns it and it is not inside the cluster's
	// ranges. A server with an upstream asks the upstream instead; one
	// without sends this reply (NXDOMAIN, or NODATA for a name with
	// cluster records below it).
	Forward bool
}

// Request is a question parsed against the zone: what the name asks for.
type Request struct {
	// Kind is what the name is: "apex", "dns-version", "ent" (a name that
	// exists only as a parent of others), "service", "endpoint", "srv",
	// "pod", "ptr" (the reverse name of a whole address), "reverse" (a
	// reverse name of fewer labels: a prefix) or "" (no such name).
	Kind               string
	Service, Namespace string
	Endpoint           string // endpoint label (hostname or dashed address)
	PortName, Proto    string // for srv, without the underscores
	Addr               netip.Addr
	// Prefix is, for every name under in-addr.arpa. and ip6.arpa., the
	// addresses the name stands for: 96.10.in-addr.arpa. is 10.96.0.0/16,
	// a ptr name a single address. For a name that is no reverse name
	// (kind "", e.g. x.0.96.10.in-addr.arpa.) it is the prefix of its
	// longest well-formed suffix, the part of the address space it lies in.
	Prefix netip.Prefix
}

// Parse turns a lower-case fully qualified name into a Request; inZone is
// false for names outside the zone and the reverse zones.
func (z *Zone) Parse(name string) (r Request, inZone bool) {
	if p, whole, ok := reversePrefix(name); ok {
		switch {
		case !whole:
			return Request{Prefix: p}, true
		case p.IsSingleIP():
			return Request{Kind: "ptr", Addr: p.Addr(), Prefix: p}, true
		}
		return Request{Kind: "reverse", Prefix: p}, true
	}
	switch {
	case name == z.zone:
		return Request{Kind: "apex"}, true
	case !strings.HasSuffix(name, "."+z.zone):
		return Request{}, false
	}
	labels := strings.Split(strings.TrimSuffix(name, "."+z.zone), ".")
	n := len(labels)
	switch {
	case n == 1 && labels[0] == "dns-version":
		return Request{Kind: "dns-version"}, true
	case n == 1 && (labels[0] == "svc" || labels[0] == "pod"):
		return Request{Kind: "ent"}, true
	case labels[n-1] == "svc":
		switch n {
		case 2:
			return Request{Kind: "ent", Namespace: labels[0]}, true
		case 3:
			return Request{Kind: "service", Service: labels[0], Namespace: labels[1]}, true
		case 4:
			if strings.HasPrefix(labels[0], "_") {
				return Request{Kind: "ent", Proto: labels[0][1:], Service: labels[1], Namespace: labels[2]}, true
			}
			return Request{Kind: "endpoint", Endpoint: labels[0], Service: labels[1], Namespace: labels[2]}, true
		case 5:
			if strings.HasPrefix(labels[0], "_") && strings.HasPrefix(labels[1], "_") {
				return Request{Kind: "srv", PortName: labels[0][1:], Proto: labels[1][1:], Service: labels[2], Namespace: labels[3]}, true
			}
		}
	case labels[n-1] == "pod":
		switch n {
		case 2:
			return Request{Kind: "ent", Namespace: labels[0]}, true
		case 3:
			if a, ok := undash(labels[0]); ok {
				return Request{Kind: "pod", Addr: a, Namespace: labels[1]}, true
			}
		}
	}
	return Request{}, true
}

// Answer answers q. inZone is false when the name belongs to neither the
// cluster zone nor a reverse zone: the server forwards those upstream.
// Every reverse name is answered, and marked Forward when it is not the
// cluster's alone (see reverseIsOurs).
func (z *Zone) Answer(q mdns.Question) (Reply, bool) {
	name := strings.ToLower(q.Name)
	req, inZone := z.Parse(name)
	if !inZone {
		return Reply{}, false
	}
	s := z.snap.Load()
	if s == nil {
		// Not synced yet: never a false NXDOMAIN. (Reverse names of
		// addresses that are not the cluster's cannot be told apart yet
		// either.)
		return Reply{Rcode: mdns.RcodeServerFailure}, true
	}
	b := &builder{z: z, q: q, r: Reply{Authoritative: true}}
	exists := b.answer(s, req)
	switch {
	case !exists:
		b.r.Rcode = mdns.RcodeNameError
		b.r.Ns = []mdns.RR{z.soa(req)}
	case len(b.r.Answer) == 0:
		b.r.Ns = []mdns.RR{z.soa(req)}
	}
	b.r.Forward = req.Prefix.IsValid() && !reverseIsOurs(s, req)
	return b.r, true
}

// reverseIsOurs says whether the cluster alone answers a reverse name: a
// cluster record owns it, or all the addresses it stands for lie inside
// one of the cluster's ranges (a name above a range, such as
// 10.in-addr.arpa. over 10.96.0.0/16, also stands for addresses that are
// not the cluster's, so an upstream may know more about it).
func reverseIsOurs(s *Snapshot, req Request) bool {
	return (req.Kind == "ptr" && len(s.ptr[req.Addr]) > 0) || s.inRanges(req.Prefix)
}

type builder struct {
	z *Zone
	q mdns.Question
	r Reply
}

func (b *builder) hdr(name string, t uint16) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: t, Class: mdns.ClassINET, Ttl: b.z.ttl}
}

// addr adds an A or AAAA record for a to the answer (owner: the question's
// name as asked) when it has the asked type.
func (b *builder) addr(a netip.Addr) {
	if rr := b.addrRR(b.q.Name, a, b.q.Qtype); rr != nil {
		b.r.Answer = append(b.r.Answer, rr)
	}
}

func (b *builder) addrRR(name string, a netip.Addr, qtype uint16) mdns.RR {
	switch {
	case a.Is4() && (qtype == mdns.TypeA || qtype == mdns.TypeANY):
		return &mdns.A{Hdr: b.hdr(name, mdns.TypeA), A: a.AsSlice()}
	case a.Is6() && (qtype == mdns.TypeAAAA || qtype == mdns.TypeANY):
		return &mdns.AAAA{Hdr: b.hdr(name, mdns.TypeAAAA), AAAA: a.AsSlice()}
	}
	return nil
}

// answer fills the reply and says whether the name exists.
func (b *builder) answer(s *Snapshot, req Request) bool {
	z, qt := b.z, b.q.Qtype
	switch req.Kind {
	case "apex":
		b.apex(z.zone)
		return true
	case "dns-version":
		if qt == mdns.TypeTXT || qt == mdns.TypeANY {
			b.r.Answer = append(b.r.Answer, &mdns.TXT{Hdr: b.hdr(b.q.Name, mdns.TypeTXT), Txt: []string{SpecVersion}})
		}
		return true
	case "ent":
		switch {
		case req.Proto != "":
			sv := s.service(req)
			return sv != nil && hasProto(sv, req.Proto)
		case req.Namespace != "":
			if strings.HasSuffix(strings.ToLower(b.q.Name), ".pod."+z.zone) {
				return z.podMode != PodsDisabled && (z.podMode == PodsInsecure || len(s.podIPs[req.Namespace]) > 0)
			}
			return s.svcNamespaces[req.Namespace]
		}
		return true
	case "service":
		sv := s.service(req)
		if sv == nil {
			return false
		}
		b.service(sv)
		return true
	case "endpoint":
		sv := s.service(req)
		if sv == nil || !sv.headless {
			return false
		}
		found := false
		for _, e := range sv.endpoints {
			if e.name == req.Endpoint {
				found = true
				b.addr(e.ip)
			}
		}
		return found
	case "srv":
		sv := s.service(req)
		if sv == nil {
			return false
		}
		return b.srv(sv, req.PortName, req.Proto)
	case "pod":
		switch z.podMode {
		case PodsDisabled:
			return false
		case PodsVerified:
			if !s.podIPs[req.Namespace][req.Addr] {
				return false
			}
		}
		b.addr(req.Addr)
		return true
	case "ptr":
		names := s.ptr[req.Addr]
		if qt == mdns.TypePTR || qt == mdns.TypeANY {
			for _, n := range names {
				b.r.Answer = append(b.r.Answer, &mdns.PTR{Hdr: b.hdr(b.q.Name, mdns.TypePTR), Ptr: n + "." + z.zone})
			}
		}
		return len(names) > 0
	case "reverse":
		if req.Prefix.Bits() == 0 {
			b.apex(reverseApex(req.Prefix))
			return true
		}
		return s.ownsBelow(req.Prefix) // an empty non-terminal, or nothing
	}
	return false
}

// apex answers the SOA and NS questions of a zone's apex (apex is the
// zone's name in lower case; the records are owned by the name as asked).
func (b *builder) apex(apex string) {
	switch b.q.Qtype {
	case mdns.TypeSOA:
		b.r.Answer = append(b.r.Answer, soaRR(b.q.Name, apex, b.z.ttl))
	case mdns.TypeNS:
		b.r.Answer = append(b.r.Answer, &mdns.NS{Hdr: b.hdr(b.q.Name, mdns.TypeNS), Ns: "ns.dns." + apex})
	}
}

// service is the Service a request names, nil when there is none or it
// has no names: a headless Service without ready endpoints has neither A,
// AAAA nor SRV records, so its name does not exist (NXDOMAIN, DNS
// specification §2.4.1), nor any name below it.
func (s *Snapshot) service(req Request) *service {
	sv := s.services[req.Service+"."+req.Namespace]
	if sv == nil || (sv.headless && len(sv.endpoints) == 0) {
		return nil
	}
	return sv
}

func hasProto(sv *service, proto string) bool {
	for _, p := range sv.ports {
		if p.proto == proto {
			return true
		}
	}
	for _, e := range sv.endpoints {
		for _, p := range e.ports {
			if p.proto == proto {
				return true
			}
		}
	}
	return false
}

// service answers the Service's own name.
func (b *builder) service(sv *service) {
	qt := b.q.Qtype
	if sv.externalName != "" {
		b.r.Answer = append(b.r.Answer, &mdns.CNAME{Hdr: b.hdr(b.q.Name, mdns.TypeCNAME), Target: sv.externalName})
		return
	}
	if qt == mdns.TypeSRV {
		b.srv(sv, "", "")
		return
	}
	if sv.headless {
		for _, e := range sv.endpoints {
			b.addr(e.ip)
		}
		return
	}
	for _, a := range sv.clusterIPs {
		b.addr(a)
	}
}

// srv answers SRV records of the Service's ports named portName with
// protocol proto (both empty: every port), with the targets' addresses in
// the additional section. It says whether such a port exists.
func (b *builder) srv(sv *service, portName, proto string) bool {
	svcName := sv.name + "." + sv.namespace + ".svc." + b.z.zone
	match := func(p port) bool {
		if portName == "" && proto == "" {
			return true
		}
		return p.name != "" && p.name == portName && p.proto == proto
	}
	found := false
	if !sv.headless {
		for _, p := range sv.ports {
			if !match(p) {
				continue
			}
			found = true
			if b.q.Qtype == mdns.TypeSRV || b.q.Qtype == mdns.TypeANY {
				b.r.Answer = append(b.r.Answer, &mdns.SRV{Hdr: b.hdr(b.q.Name, mdns.TypeSRV), Priority: 0, Weight: 100, Port: p.port, Target: svcName})
			}
		}
		if len(b.r.Answer) > 0 {
			for _, a := range sv.clusterIPs {
				b.r.Extra = append(b.r.Extra, b.addrRR(svcName, a, anyAddrType(a)))
			}
		}
		return found
	}
	type target struct {
		e    endpoint
		port uint16
	}
	var targets []target
	for _, e := range sv.endpoints {
		for _, p := range e.ports {
			if match(p) {
				targets = append(targets, target{e, p.port})
			}
		}
	}
	found = len(targets) > 0 || hasNamedPort(sv, portName, proto)
	if b.q.Qtype != mdns.TypeSRV && b.q.Qtype != mdns.TypeANY {
		return found
	}
	weight := uint16(100)
	if len(targets) > 1 {
		weight = uint16(max(1, 100/len(targets)))
	}
	for _, t := range targets {
		name := t.e.name + "." + svcName
		b.r.Answer = append(b.r.Answer, &mdns.SRV{Hdr: b.hdr(b.q.Name, mdns.TypeSRV), Priority: 0, Weight: weight, Port: t.port, Target: name})
		b.r.Extra = append(b.r.Extra, b.addrRR(name, t.e.ip, anyAddrType(t.e.ip)))
	}
	return found
}

func hasNamedPort(sv *service, name, proto string) bool {
	for _, p := range sv.ports {
		if p.name == name && p.proto == proto {
			return true
		}
	}
	return false
}

func anyAddrType(a netip.Addr) uint16 {
	if a.Is4() {
		return mdns.TypeA
	}
	return mdns.TypeAAAA
}

// soa is the SOA record for the authority section of a negative answer to
// req: the cluster zone's, or for a reverse name that of its reverse zone
// (in-addr.arpa. or ip6.arpa., the zones podnet serves, as CoreDNS does
// with its default Corefile).
func (z *Zone) soa(req Request) mdns.RR {
	apex := z.zone
	if req.Prefix.IsValid() {
		apex = reverseApex(req.Prefix)
	}
	return soaRR(apex, apex, z.ttl)
}

// soaRR is the SOA record of zone apex, owned by name, with the TTL and
// negative-caching TTL ttl.
func soaRR(name, apex string, ttl uint32) mdns.RR {
	return &mdns.SOA{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: ttl},
		Ns: "ns.dns." + apex, Mbox: "hostmaster." + apex, Serial: 1, Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: ttl}
}

func reverseApex(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "in-addr.arpa."
	}
	return "ip6.arpa."
}

// reversePrefix reads a lower-case fully qualified name under in-addr.arpa.
// or ip6.arpa. (ok is false for any other name): the prefix its labels
// stand for, read from the right (one decimal octet, or one hex nibble, a
// label), and whether every label was read. Reading stops at the first
// label that is no octet or nibble, or once the address is complete, so a
// malformed name gets the prefix of its longest well-formed suffix.
func reversePrefix(name string) (p netip.Prefix, whole, ok bool) {
	var rest string
	v6 := false
	switch {
	case name == "in-addr.arpa.":
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0), true, true
	case name == "ip6.arpa.":
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0), true, true
	case strings.HasSuffix(name, ".in-addr.arpa."):
		rest = strings.TrimSuffix(name, ".in-addr.arpa.")
	case strings.HasSuffix(name, ".ip6.arpa."):
		rest, v6 = strings.TrimSuffix(name, ".ip6.arpa."), true
	default:
		return netip.Prefix{}, false, false
	}
	labels := strings.Split(rest, ".")
	var b [16]byte
	bits, step, size := 0, 8, 32
	if v6 {
		step, size = 4, 128
	}
	read := 0
	for i := len(labels) - 1; i >= 0 && bits < size; i-- {
		v, ok := reverseLabel(labels[i], v6)
		if !ok {
			break
		}
		b[bits/8] |= v << (8 - step - bits%8)
		bits += step
		read++
	}
	a := netip.AddrFrom16(b)
	if !v6 {
		a = netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.PrefixFrom(a, bits), read == len(labels), true
}

// reverseLabel reads one label of a reverse name: a decimal octet without
// leading zeros (in-addr.arpa.) or one hex digit (ip6.arpa.).
func reverseLabel(l string, v6 bool) (byte, bool) {
	if v6 {
		v, err := strconv.ParseUint(l, 16, 8)
		return byte(v), err == nil && len(l) == 1
	}
	v, err := strconv.ParseUint(l, 10, 8)
	return byte(v), err == nil && (len(l) == 1 || l[0] != '0')
}
