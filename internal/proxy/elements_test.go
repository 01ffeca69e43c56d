package proxy

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"
)

// TestEncodeElement pins the byte layout the netlink writer sends (the
// kernel test compares the result with what nft writes).
func TestEncodeElement(t *testing.T) {
	a4, a6 := netip.MustParseAddr("10.244.1.2"), netip.MustParseAddr("fd00:10:244:1::2")
	for _, tc := range []struct {
		name string
		e    Element
		set  string
		k, v []byte
	}{
		{"an IPv4 slot: mark in host order, address . port padded to 4 bytes", SlotElement{Proto: TCP, Slot: SlotBase + 1, Addr: a4, Port: 8080},
			"endpoint-slots-v4-tcp", binary.NativeEndian.AppendUint32(nil, SlotBase+1), []byte{10, 244, 1, 2, 0x1f, 0x90, 0, 0}},
		{"an IPv6 slot goes to the IPv6 map", SlotElement{Proto: UDP, Slot: SlotBase, Addr: a6, Port: 53},
			"endpoint-slots-v6-udp", binary.NativeEndian.AppendUint32(nil, SlotBase), append(a6.AsSlice(), 0, 53, 0, 0)},
		{"a hairpin element is the address twice", HairpinElement{a4}, "hairpin-v4", []byte{10, 244, 1, 2, 10, 244, 1, 2}, nil},
		{"an IPv6 hairpin element", HairpinElement{a6}, "hairpin-v6", append(a6.AsSlice(), a6.AsSlice()...), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, v, ok := encodeElement(tc.e)
			if !ok || !bytes.Equal(k, tc.k) || !bytes.Equal(v, tc.v) || tc.e.Set() != tc.set {
				t.Errorf("encodeElement(%+v) = %x, %x, %v in %s; want %x, %x in %s", tc.e, k, v, ok, tc.e.Set(), tc.k, tc.v, tc.set)
			}
		})
	}
	for _, e := range []Element{
		ServiceIPElement{Map: mapServiceIPs4, Addr: a4, Proto: "tcp", Port: 80, Chain: "svc"},
		NodePortElement{Map: mapNodePorts4, Proto: "tcp", Port: 30080, Chain: "ext"},
		PodCIDRElement{netip.MustParsePrefix("10.244.0.0/16")}, NodeIPElement{a4},
	} {
		if _, _, ok := encodeElement(e); ok {
			t.Errorf("%T encodes, but the netlink writer is only for slots and hairpin elements", e)
		}
	}
}

// TestSlotElementIsSmall: there is one slot element per endpoint, and the
// agent keeps them all; a field that makes it bigger costs memory at
// scale (32 bytes: 1M endpoints take 32 MiB, boxed in the element list).
func TestSlotElementIsSmall(t *testing.T) {
	if s := unsafe.Sizeof(SlotElement{}); s > 32 {
		t.Errorf("a SlotElement takes %d bytes, want at most 32", s)
	}
}

// TestUnknownProtocolRendersNothing: the table has chains for TCP, UDP and
// SCTP only; a Service port of another protocol (the API has none) is left
// out rather than breaking the transaction of every other Service.
func TestUnknownProtocolRendersNothing(t *testing.T) {
	sp := &ServicePort{Namespace: "default", Name: "odd", Protocol: "QUIC", Port: 443,
		ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.9")},
		Endpoints:  []Endpoint{{IP: netip.MustParseAddr("10.244.1.2"), Port: 8443}}}
	if chains, elements := Build(testCfg, []*ServicePort{sp}).Counts(); chains != 0 || elements != len(testCfg.PodCIDRs)+len(testCfg.NodeIPs) {
		t.Errorf("a QUIC Service port rendered %d chains and %d elements, want none of its own", chains, elements)
	}
}
