package flow

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ti-mo/conntrack"

	"github.com/podnet/podnet/internal/flow/logrule"
)

var t0 = time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)

// TestPolicyDropNamesTheIsolatingPolicies: a packet logged by the policy
// table's ingress drop becomes a record with both ends resolved to pods
// and workloads and the policies that isolate the destination.
func TestPolicyDropNamesTheIsolatingPolicies(t *testing.T) {
	p := LoggedPacket{Time: t0, Prefix: logrule.PolicyDrop("ingress").String() + "\x00",
		Payload: ipv4TCP("10.244.2.30", "10.244.1.10", 40000, 8080)}
	r, err := FromPacket("node-1", testView(), p)
	if err != nil {
		t.Fatal(err)
	}
	want := Record{Time: t0, Node: "node-1", Event: EventDrop, Verdict: Dropped, Reason: "policy-denied",
		Direction: "ingress", Protocol: "TCP",
		Source: Endpoint{IP: netip.MustParseAddr("10.244.2.30"), Port: 40000, Namespace: "shop", Pod: "intruder", Node: "node-2"},
		Destination: Endpoint{IP: netip.MustParseAddr("10.244.1.10"), Port: 8080, Namespace: "shop", Pod: "web-5d8f7c-a",
			Workload: "Deployment/web", Node: "node-1"},
		Policies: []Policy{{Direction: "ingress", IsolatedBy: []string{"shop/default-deny", "shop/web-from-client"}, DefaultDeny: true}},
	}
	checkRecord(t, r, want)
	if got := r.PolicyText(); got != "ingress default deny (shop/default-deny,shop/web-from-client)" {
		t.Errorf("PolicyText = %q", got)
	}
}

// TestNoEndpointsRejectNamesTheService: the proxy's logged reject names the
// Service the client addressed, by cluster IP and by NodePort.
func TestNoEndpointsRejectNamesTheService(t *testing.T) {
	v := testView()
	r, err := FromPacket("node-1", v, LoggedPacket{Time: t0, Prefix: "pn/svc/no-endpts",
		Payload: ipv4TCP("10.244.1.20", "10.96.0.30", 40001, 80)})
	if err != nil {
		t.Fatal(err)
	}
	if r.Service == nil || r.Service.Name != "empty" || r.Reason != "no-endpoints" || r.Direction != "egress" || r.Verdict != Dropped {
		t.Errorf("record %+v, service %+v", r, r.Service)
	}
	r, err = FromPacket("node-1", v, LoggedPacket{Time: t0, Prefix: "pn/svc/no-endpts",
		Payload: ipv4TCP("203.0.113.9", "172.30.0.11", 40001, 30080)})
	if err != nil {
		t.Fatal(err)
	}
	if r.Service == nil || r.Service.Name != "web" || r.Service.IP != netip.MustParseAddr("172.30.0.11") {
		t.Errorf("a NodePort's reject names service %+v", r.Service)
	}
}

// TestUnreadablePacketsAreErrors: a foreign prefix, a truncated packet.
func TestUnreadablePacketsAreErrors(t *testing.T) {
	for name, p := range map[string]LoggedPacket{
		"a prefix that is not podnet's": {Prefix: "IN=eth0", Payload: ipv4TCP("10.244.1.20", "10.244.1.10", 1, 2)},
		"a truncated TCP header":        {Prefix: "pn/pol/egress", Payload: ipv4TCP("10.244.1.20", "10.244.1.10", 1, 2)[:22]},
		"no packet":                     {Prefix: "pn/pol/egress"},
	} {
		if _, err := FromPacket("node-1", testView(), p); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestIPv6PacketsParse: addresses, protocol and ports of an IPv6 packet.
func TestIPv6PacketsParse(t *testing.T) {
	h, err := parseHeader(ipv6UDP("fd00:10:244:1::5", "fd00:10:244:1::6", 5353, 53))
	if err != nil {
		t.Fatal(err)
	}
	if h.src != netip.MustParseAddr("fd00:10:244:1::5") || h.dst != netip.MustParseAddr("fd00:10:244:1::6") ||
		h.proto != "UDP" || h.sport != 5353 || h.dport != 53 {
		t.Errorf("header %+v", h)
	}
}

// ctEvent is a conntrack event of a TCP connection from client to
// dst:dport, answered by ep:epPort (a DNAT when they differ).
func ctEvent(typ string, client string, sport uint16, dst string, dport uint16, ep string, epPort uint16) conntrack.Event {
	f := conntrack.Flow{}
	f.TupleOrig.IP.SourceAddress, f.TupleOrig.IP.DestinationAddress = netip.MustParseAddr(client), netip.MustParseAddr(dst)
	f.TupleOrig.Proto = conntrack.ProtoTuple{Protocol: 6, SourcePort: sport, DestinationPort: dport}
	f.TupleReply.IP.SourceAddress, f.TupleReply.IP.DestinationAddress = netip.MustParseAddr(ep), netip.MustParseAddr(client)
	f.TupleReply.Proto = conntrack.ProtoTuple{Protocol: 6, SourcePort: epPort, DestinationPort: sport}
	ev := conntrack.Event{Type: conntrack.EventNew, Flow: &f}
	if typ == "destroy" {
		ev.Type = conntrack.EventDestroy
	}
	return ev
}

// TestConnectionThroughAServiceNamesServiceEndpointAndRule: a NEW event
// of a Service connection gives the Service, the endpoint pod and the
// allowing rule; DESTROY gives the counters.
func TestConnectionThroughAServiceNamesServiceEndpointAndRule(t *testing.T) {
	v := testView()
	ev := ctEvent("new", "10.244.1.20", 40002, "10.96.0.20", 80, "10.244.2.10", 8080)
	r, ok := FromEvent("node-1", v, t0, ev)
	if !ok {
		t.Fatal("no record")
	}
	want := Record{Time: t0, Node: "node-1", Event: EventNew, Verdict: Forwarded, Direction: "egress", Protocol: "TCP",
		Source: Endpoint{IP: netip.MustParseAddr("10.244.1.20"), Port: 40002, Namespace: "shop", Pod: "client", Node: "node-1"},
		Destination: Endpoint{IP: netip.MustParseAddr("10.244.2.10"), Port: 8080, Namespace: "shop", Pod: "web-5d8f7c-b",
			Workload: "Deployment/web", Node: "node-2"},
		Service: &Service{Namespace: "shop", Name: "web", IP: netip.MustParseAddr("10.96.0.20"), Port: 80},
		Policies: []Policy{{Direction: "ingress", IsolatedBy: []string{"shop/default-deny", "shop/web-from-client"},
			AllowedBy: []string{"shop/web-from-client ingress[0]"}}},
	}
	checkRecord(t, r, want)

	ev = ctEvent("destroy", "10.244.1.20", 40002, "10.96.0.20", 80, "10.244.2.10", 8080)
	ev.Flow.CountersOrig = conntrack.Counter{Packets: 6, Bytes: 400}
	ev.Flow.CountersReply = conntrack.Counter{Packets: 4, Bytes: 900}
	r, ok = FromEvent("node-1", v, t0, ev)
	if !ok || r.Event != EventEnd || r.Counters == nil || *r.Counters != (Counters{6, 400, 4, 900}) {
		t.Errorf("end record %v %+v counters %+v", ok, r, r.Counters)
	}
	// Without accounting, no counters.
	ev.Flow.CountersOrig, ev.Flow.CountersReply = conntrack.Counter{}, conntrack.Counter{}
	if r, _ = FromEvent("node-1", v, t0, ev); r.Counters != nil {
		t.Errorf("counters without accounting: %+v", r.Counters)
	}
}

// TestOnlyConnectionsOfThisNodesPodsAreRecords: the other node's pods,
// the node's own traffic elsewhere.
func TestOnlyConnectionsOfThisNodesPodsAreRecords(t *testing.T) {
	v := testView()
	for name, c := range map[string]struct {
		node string
		ev   conntrack.Event
		dir  string // "" = no record
	}{
		"a pod of another node to a pod of another node": {"node-1", ctEvent("new", "10.244.2.30", 1, "10.244.2.10", 8080, "10.244.2.10", 8080), ""},
		"the node to the API server":                     {"node-1", ctEvent("new", "172.30.0.11", 1, "172.30.0.1", 6443, "172.30.0.1", 6443), ""},
		"an outside client to a pod of this node":        {"node-2", ctEvent("new", "203.0.113.9", 1, "172.30.0.12", 30080, "10.244.2.10", 8080), "ingress"},
		"a pod of this node out":                         {"node-2", ctEvent("new", "10.244.2.30", 1, "203.0.113.9", 443, "203.0.113.9", 443), "egress"},
	} {
		r, ok := FromEvent(c.node, v, t0, c.ev)
		if ok != (c.dir != "") || r.Direction != c.dir {
			t.Errorf("%s: record %v, direction %q; want %q", name, ok, r.Direction, c.dir)
		}
	}
}

func checkRecord(t *testing.T, got, want Record) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("record\n got %s\nwant %s", g, w)
	}
}

// TestRecordJSONSchema: the documented field names (docs/flows.md) are
// what a record marshals to; a rename breaks alerting pipelines.
func TestRecordJSONSchema(t *testing.T) {
	r := Record{Time: t0, Node: "n", Event: EventEnd, Verdict: Forwarded, Reason: "r", Direction: "egress", Protocol: "TCP",
		Source:   Endpoint{IP: netip.MustParseAddr("10.244.1.1"), Port: 1, Namespace: "a", Pod: "b", Workload: "c", Node: "d"},
		Service:  &Service{"a", "s", netip.MustParseAddr("10.96.0.1"), 80},
		Policies: []Policy{{Direction: "ingress", IsolatedBy: []string{"a/p"}, AllowedBy: []string{"a/p ingress[0]"}, DefaultDeny: true}},
		Counters: &Counters{1, 2, 3, 4}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				keys = append(keys, prefix+k)
				walk(prefix+k+".", c)
			}
		case []any:
			for _, c := range x {
				walk(prefix, c)
			}
		}
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	walk("", m)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	want := "counters counters.bytesIn counters.bytesOut counters.packetsIn counters.packetsOut destination destination.ip " +
		"direction event node policies policies.allowedBy policies.defaultDeny policies.direction policies.isolatedBy " +
		"protocol reason service service.ip service.name service.namespace service.port source source.ip " +
		"source.namespace source.node source.pod source.port source.workload time verdict"
	if got := strings.Join(keys, " "); got != want {
		t.Errorf("JSON fields:\n%s\nwant (docs/flows.md):\n%s", got, want)
	}
}
