package flow

import (
	"net/netip"
	"testing"

	"github.com/ti-mo/netfilter"
)

// ctTuple is a ctnetlink tuple attribute (CTA_TUPLE_ORIG 1, _REPLY 2) as
// the kernel writes it: CTA_TUPLE_IP {V4_SRC, V4_DST}, CTA_TUPLE_PROTO
// {PROTO_NUM, SRC_PORT, DST_PORT}.
func ctTuple(typ uint16, src, dst string, proto uint8, sport, dport uint16) netfilter.Attribute {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	return netfilter.Attribute{Type: typ, Nested: true, Children: []netfilter.Attribute{
		{Type: 1, Nested: true, Children: []netfilter.Attribute{{Type: 1, Data: s[:]}, {Type: 2, Data: d[:]}}},
		{Type: 2, Nested: true, Children: []netfilter.Attribute{{Type: 1, Data: []byte{proto}},
			{Type: 2, Data: netfilter.Uint16Bytes(sport)}, {Type: 3, Data: netfilter.Uint16Bytes(dport)}}},
	}}
}

// TestDecodeCTNamesTheServiceOfADroppedPacket: the conntrack entry NFLOG
// attaches (NFULA_CT, on kernels with CONFIG_NETFILTER_NETLINK_GLUE_CT)
// decodes, and a policy drop after a DNAT names the Service the client
// addressed; without a translation, or without the entry, no Service.
func TestDecodeCTNamesTheServiceOfADroppedPacket(t *testing.T) {
	b, err := netfilter.MarshalAttributes([]netfilter.Attribute{
		ctTuple(1, "10.244.1.20", "10.96.0.20", 6, 40000, 80),
		ctTuple(2, "10.244.1.10", "10.244.1.20", 6, 8080, 40000),
		{Type: 3, Data: netfilter.Uint32Bytes(0x20)}, // CTA_STATUS: IPS_DST_NAT
	})
	if err != nil {
		t.Fatal(err)
	}
	ct := decodeCT(netfilter.ProtoIPv4, b)
	if ct == nil {
		t.Fatal("the entry does not decode")
	}
	if got := ct.TupleOrig.IP.DestinationAddress.String(); got != "10.96.0.20" || ct.TupleOrig.Proto.DestinationPort != 80 {
		t.Errorf("original destination %s:%d", got, ct.TupleOrig.Proto.DestinationPort)
	}
	v := testView()
	payload := ipv4TCP("10.244.1.20", "10.244.1.10", 40000, 8080)
	r, err := FromPacket("node-1", v, LoggedPacket{Time: t0, Prefix: "pn/pol/ingress", Payload: payload, Conntrack: ct})
	if err != nil {
		t.Fatal(err)
	}
	if r.Service == nil || r.Service.Namespace+"/"+r.Service.Name != "shop/web" || r.Service.Port != 80 {
		t.Errorf("service %+v, want shop/web:80", r.Service)
	}
	if r, _ := FromPacket("node-1", v, LoggedPacket{Prefix: "pn/pol/ingress", Payload: payload}); r.Service != nil {
		t.Errorf("a drop without a conntrack entry names %+v", r.Service)
	}
	direct, _ := netfilter.MarshalAttributes([]netfilter.Attribute{
		ctTuple(1, "10.244.1.20", "10.244.1.10", 6, 40000, 8080), ctTuple(2, "10.244.1.10", "10.244.1.20", 6, 8080, 40000)})
	if r, _ := FromPacket("node-1", v, LoggedPacket{Prefix: "pn/pol/ingress", Payload: payload,
		Conntrack: decodeCT(netfilter.ProtoIPv4, direct)}); r.Service != nil {
		t.Errorf("a drop of a connection to the pod itself names %+v", r.Service)
	}
	if decodeCT(netfilter.ProtoIPv4, []byte{1, 2, 3}) != nil {
		t.Error("garbage decodes")
	}
}
