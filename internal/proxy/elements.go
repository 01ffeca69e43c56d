package proxy

import (
	"context"
	"encoding/binary"
	"net/netip"
	"strconv"

	"sigs.k8s.io/knftables"
)

// Element is one element of a set or map of the proxy's table, typed by
// kind: the renderer builds them, the knftables writer formats them
// (object) and the netlink writer encodes them (encodeElement); no writer
// reads another's text. Every kind is a comparable value: two elements are
// the same element of the table when their ids (set and key) are equal,
// and unchanged when the values are equal too.
type Element interface {
	// Set names the set or map that holds the element.
	Set() string
	// object is the element as knftables writes it.
	object() *knftables.Element
	// id is the element's set and key.
	id() elemID
}

// elemID identifies an element in the table: its set or map and its key,
// in one shape for every kind so that elements of all kinds can be
// counted, indexed and sorted together.
type elemID struct {
	set   string
	addr  netip.Addr // the key's address (a prefix's address for a pod CIDR)
	proto string
	n     uint32 // the key's port, slot or prefix length
}

func (a elemID) compare(b elemID) int {
	if a.set != b.set {
		if a.set < b.set {
			return -1
		}
		return 1
	}
	if c := a.addr.Compare(b.addr); c != 0 {
		return c
	}
	if a.proto != b.proto {
		if a.proto < b.proto {
			return -1
		}
		return 1
	}
	return int(int64(a.n) - int64(b.n))
}

// ServiceIPElement is "address . protocol . port : goto Chain" in Map:
// service-ips-v4/-v6 (a Service's chain) or no-endpoint-services-v4/-v6
// (reject-no-endpoints). The two maps share the shape, so the element
// names its map.
type ServiceIPElement struct {
	Map   string
	Addr  netip.Addr
	Proto string // tcp, udp, sctp
	Port  uint16
	Chain string
}

// NodePortElement is "protocol . port : goto Chain" in Map:
// service-nodeports-v4/-v6 or no-endpoint-nodeports-v4/-v6.
type NodePortElement struct {
	Map   string
	Proto string
	Port  uint16
	Chain string
}

// SlotElement is "slot : address . port" in the endpoint-slot map of the
// address's family and Proto: the endpoint a connection whose conntrack
// mark is Slot (SlotBase + index) is translated to.
type SlotElement struct {
	Slot  uint32
	Port  uint16
	Proto L4
	Addr  netip.Addr
}

// L4 is a transport protocol of the table, as an index into protocols:
// one byte instead of a string in each of the (many) slot elements, which
// keeps a SlotElement at 32 bytes.
type L4 uint8

// The protocols the proxy renders.
const (
	TCP L4 = iota
	UDP
	SCTP
)

func (p L4) String() string { return protocols[p] }

// l4Of returns the L4 of a protocol as nft writes it (tcp, udp, sctp);
// ok is false for another.
func l4Of(proto string) (l4 L4, ok bool) {
	for i, p := range protocols {
		if p == proto {
			return L4(i), true
		}
	}
	return 0, false
}

// HairpinElement is "address . address" in hairpin-v4/-v6: an endpoint
// that may reach itself through its Service (source and destination are
// the same address).
type HairpinElement struct{ Addr netip.Addr }

// PodCIDRElement is a pod range in pod-cidrs-v4/-v6.
type PodCIDRElement struct{ Prefix netip.Prefix }

// NodeIPElement is an address NodePorts answer on, in nodeport-ips-v4/-v6.
type NodeIPElement struct{ Addr netip.Addr }

var (
	_ Element = ServiceIPElement{}
	_ Element = NodePortElement{}
	_ Element = SlotElement{}
	_ Element = HairpinElement{}
	_ Element = PodCIDRElement{}
	_ Element = NodeIPElement{}
)

func (e ServiceIPElement) Set() string { return e.Map }
func (e ServiceIPElement) id() elemID {
	return elemID{set: e.Map, addr: e.Addr, proto: e.Proto, n: uint32(e.Port)}
}
func (e ServiceIPElement) object() *knftables.Element {
	return &knftables.Element{Map: e.Map, Key: []string{e.Addr.String(), e.Proto, portText(e.Port)}, Value: []string{"goto " + e.Chain}}
}

func (e NodePortElement) Set() string { return e.Map }
func (e NodePortElement) id() elemID  { return elemID{set: e.Map, proto: e.Proto, n: uint32(e.Port)} }
func (e NodePortElement) object() *knftables.Element {
	return &knftables.Element{Map: e.Map, Key: []string{e.Proto, portText(e.Port)}, Value: []string{"goto " + e.Chain}}
}

func (e SlotElement) Set() string {
	if e.Addr.Is4() {
		return slotMapNames[0][e.Proto]
	}
	return slotMapNames[1][e.Proto]
}
func (e SlotElement) id() elemID { return elemID{set: e.Set(), n: e.Slot} }
func (e SlotElement) object() *knftables.Element {
	return &knftables.Element{Map: e.Set(), Key: []string{"0x" + strconv.FormatUint(uint64(e.Slot), 16)},
		Value: []string{e.Addr.String(), portText(e.Port)}}
}

func (e HairpinElement) Set() string { return famOf(e.Addr.Is4()).hairpin }
func (e HairpinElement) id() elemID  { return elemID{set: e.Set(), addr: e.Addr} }
func (e HairpinElement) object() *knftables.Element {
	a := e.Addr.String()
	return &knftables.Element{Set: e.Set(), Key: []string{a, a}}
}

func (e PodCIDRElement) Set() string { return famOf(e.Prefix.Addr().Is4()).podCIDRs }
func (e PodCIDRElement) id() elemID {
	return elemID{set: e.Set(), addr: e.Prefix.Addr(), n: uint32(e.Prefix.Bits())}
}
func (e PodCIDRElement) object() *knftables.Element {
	return &knftables.Element{Set: e.Set(), Key: []string{e.Prefix.String()}}
}

func (e NodeIPElement) Set() string { return famOf(e.Addr.Is4()).nodeIPs }
func (e NodeIPElement) id() elemID  { return elemID{set: e.Set(), addr: e.Addr} }
func (e NodeIPElement) object() *knftables.Element {
	return &knftables.Element{Set: e.Set(), Key: []string{e.Addr.String()}}
}

func portText(p uint16) string { return strconv.Itoa(int(p)) }

// shared says whether more than one fragment may hold the same element
// (an endpoint in two Services puts one hairpin element in both). Endpoint
// slots are never shared: each block of slots has one owner.
func shared(e Element) bool {
	_, slot := e.(SlotElement)
	return !slot
}

// ElementWriter writes element-only changes (and the slot-pick rules of
// Services whose endpoint count changed) to the kernel without the nft
// binary. Every run of nft loads its cache of the whole table first (about
// 90 ms at 10,000 Services), so a sync that only moves endpoints, the
// common change, goes through this writer when one is set; anything else
// (new or changed chains, elements it does not support) goes through
// knftables.
type ElementWriter interface {
	// Supports says whether the writer can encode e.
	Supports(e Element) bool
	// Write removes then adds the elements and replaces the slot-pick
	// rules, all in one atomic transaction.
	Write(ctx context.Context, removed, added []Element, picks []SlotPick) error
}

// encodeElement returns the kernel's byte form of an element's key and
// value for the kinds the netlink writer supports (ok false for others):
//
//   - SlotElement: key `ct mark` (32 bits, host byte order, as nft's mark
//     type), value address . port (the port in network order, padded to 4
//     bytes as every part of a concatenation is);
//   - HairpinElement: key address . address.
//
// The set an element goes to follows from its address family, so an
// address of the wrong family cannot be encoded.
func encodeElement(e Element) (k, v []byte, ok bool) {
	switch e := e.(type) {
	case SlotElement:
		k = binary.NativeEndian.AppendUint32(nil, e.Slot)
		v = append(e.Addr.AsSlice(), byte(e.Port>>8), byte(e.Port), 0, 0)
		return k, v, true
	case HairpinElement:
		a := e.Addr.AsSlice()
		return append(a, a...), nil, true
	}
	return nil, nil, false
}
