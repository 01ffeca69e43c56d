package flow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/ti-mo/conntrack"

	"github.com/podnet/podnet/internal/flow/logrule"
	"github.com/podnet/podnet/internal/policy"
)

// LoggedPacket is one packet an nftables log statement sent to the NFLOG
// group: the rule's prefix and the packet from its network header on.
type LoggedPacket struct {
	Time    time.Time
	Prefix  string
	Payload []byte
	// Conntrack is the packet's conntrack entry when the kernel attached
	// it: its original tuple is what the client addressed (a Service).
	Conntrack *conntrack.Flow
}

// header is what a record needs of a packet's headers.
type header struct {
	src, dst     netip.Addr
	proto        string
	sport, dport uint16
}

var errShort = errors.New("packet too short")

// parseHeader reads the IPv4 or IPv6 header and the ports of TCP, UDP and
// SCTP (IPv6 extension headers are not walked: the protocol is then the
// first extension header's number).
func parseHeader(b []byte) (header, error) {
	var h header
	var l4 []byte
	var num byte
	switch {
	case len(b) >= 20 && b[0]>>4 == 4:
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			return h, errShort
		}
		num, h.src, h.dst = b[9], netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
		l4 = b[ihl:]
	case len(b) >= 40 && b[0]>>4 == 6:
		num, h.src, h.dst = b[6], netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
		l4 = b[40:]
	default:
		return h, fmt.Errorf("not an IP packet (%d bytes)", len(b))
	}
	h.proto = protoName(num)
	switch num {
	case 6, 17, 132:
		if len(l4) < 4 {
			return h, errShort
		}
		h.sport, h.dport = binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
	}
	return h, nil
}

func protoName(n uint8) string {
	switch n {
	case 6:
		return "TCP"
	case 17:
		return "UDP"
	case 132:
		return "SCTP"
	case 1:
		return "ICMP"
	case 58:
		return "ICMPv6"
	}
	return strconv.Itoa(int(n))
}

// FromPacket builds the record of a logged packet on node.
func FromPacket(node string, v *View, p LoggedPacket) (Record, error) {
	pfx, err := logrule.Parse(p.Prefix)
	if err != nil {
		return Record{}, err
	}
	h, err := parseHeader(p.Payload)
	if err != nil {
		return Record{}, fmt.Errorf("%s: %w", pfx, err)
	}
	r := Record{Time: p.Time, Node: node, Event: EventDrop, Verdict: Dropped, Reason: string(pfx.Reason),
		Direction: pfx.Direction, Protocol: h.proto,
		Source: v.Endpoint(h.src, h.sport), Destination: v.Endpoint(h.dst, h.dport)}
	switch pfx.Reason {
	case logrule.NoEndpoints:
		r.Service = v.Service(h.dst, h.proto, h.dport)
		r.Direction = localDirection(node, r.Source, r.Destination)
	case logrule.PolicyDenied:
		d := v.Decide(h.src, h.dst, h.proto, h.dport)
		end := d.Ingress
		if pfx.Direction == "egress" {
			end = d.Egress
		}
		r.Policies = []Policy{{Direction: pfx.Direction, IsolatedBy: end.IsolatedBy, DefaultDeny: true}}
		r.Service = translatedFrom(v, p.Conntrack, h)
	}
	return r, nil
}

// translatedFrom is the Service a packet was addressed to before a DNAT
// changed its destination, from its conntrack entry (nil without one, or
// when the destination was not translated).
func translatedFrom(v *View, ct *conntrack.Flow, h header) *Service {
	if ct == nil {
		return nil
	}
	orig := ct.TupleOrig
	if orig.IP.DestinationAddress.Unmap() == h.dst && orig.Proto.DestinationPort == h.dport {
		return nil
	}
	return v.Service(orig.IP.DestinationAddress, h.proto, orig.Proto.DestinationPort)
}

// FromEvent builds the record of a conntrack event on node; ok is false
// for events that are not records: neither end is a pod of this node, or
// the event is neither NEW nor DESTROY.
func FromEvent(node string, v *View, now time.Time, ev conntrack.Event) (r Record, ok bool) {
	if ev.Flow == nil || (ev.Type != conntrack.EventNew && ev.Type != conntrack.EventDestroy) {
		return Record{}, false
	}
	orig, reply := ev.Flow.TupleOrig, ev.Flow.TupleReply
	proto := protoName(orig.Proto.Protocol)
	// The destination is where the replies come from: the endpoint
	// after a Service's DNAT.
	src := v.Endpoint(orig.IP.SourceAddress, orig.Proto.SourcePort)
	dst := v.Endpoint(reply.IP.SourceAddress, reply.Proto.SourcePort)
	dir := localDirection(node, src, dst)
	if dir == "" {
		return Record{}, false
	}
	r = Record{Time: now, Node: node, Event: EventNew, Verdict: Forwarded, Direction: dir, Protocol: proto,
		Source: src, Destination: dst}
	if orig.IP.DestinationAddress.Unmap() != dst.IP || orig.Proto.DestinationPort != dst.Port {
		r.Service = v.Service(orig.IP.DestinationAddress, proto, orig.Proto.DestinationPort)
	}
	r.Policies = allowedBy(v.Decide(src.IP, dst.IP, proto, dst.Port))
	if ev.Type == conntrack.EventDestroy {
		r.Event = EventEnd
		co, cr := ev.Flow.CountersOrig, ev.Flow.CountersReply
		if co.Packets+cr.Packets > 0 {
			r.Counters = &Counters{PacketsOut: co.Packets, BytesOut: co.Bytes, PacketsIn: cr.Packets, BytesIn: cr.Bytes}
		}
	}
	return r, true
}

// localDirection is "egress" when the source is a pod of node, "ingress"
// when the destination is, else "".
func localDirection(node string, src, dst Endpoint) string {
	switch {
	case src.Pod != "" && src.Node == node:
		return "egress"
	case dst.Pod != "" && dst.Node == node:
		return "ingress"
	}
	return ""
}

// allowedBy lists the isolated ends of an allowed connection with the
// rules that allow it.
func allowedBy(d policy.Decision) []Policy {
	var out []Policy
	for _, e := range []struct {
		dir string
		end policy.End
	}{{"egress", d.Egress}, {"ingress", d.Ingress}} {
		if e.end.Isolated() {
			out = append(out, Policy{Direction: e.dir, IsolatedBy: e.end.IsolatedBy, AllowedBy: e.end.AllowedBy,
				DefaultDeny: !e.end.Allowed})
		}
	}
	return out
}
