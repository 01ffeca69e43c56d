package dns

// Fixture conventions: Services in 10.96.0.0/16 and fd00:96::/64 (the
// ServiceCIDR "kubernetes"), pods in 10.244.0.0/16; nodes n1 and n2 have the
// pod CIDRs 10.244.1.0/24 + fd00:244:1::/64 and 10.244.2.0/24, so the
// cluster's ranges are those four and 10.244.3.0/24 is nobody's. Addresses
// outside the cluster are 1.1.1.1, 192.0.2.0/24 and 2001:db8::/32. The zone
// is cluster.local with TTL 30.

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func svc(name, clusterIP string, ports ...v1.ServicePort) *v1.Service {
	s := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: v1.ServiceSpec{ClusterIP: clusterIP, Ports: ports}}
	if clusterIP != v1.ClusterIPNone {
		s.Spec.ClusterIPs = []string{clusterIP}
	}
	return s
}

func sport(name string, proto v1.Protocol, port int32) v1.ServicePort {
	return v1.ServicePort{Name: name, Protocol: proto, Port: port}
}

func eps(svcName string, portName string, port int32, endpoints ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: svcName + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   endpoints,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(portName), Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To(port)}},
	}
}

func ep(ip, hostname string, ready bool) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}}
	if hostname != "" {
		e.Hostname = ptr.To(hostname)
	}
	return e
}

// fixtureRanges are the cluster's ranges of the fixture, read from the
// objects the API server and the node controller make.
func fixtureRanges() []netip.Prefix {
	cidr := &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"},
		Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.96.0.0/16", "fd00:96::/64"}}}
	n1 := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Spec: v1.NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24", "fd00:244:1::/64"}}}
	n2 := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}, Spec: v1.NodeSpec{PodCIDR: "10.244.2.0/24"}}
	return ClusterRanges([]*networkingv1.ServiceCIDR{cidr}, []*v1.Node{n1, n2})
}

func fixture() ([]*v1.Service, []*discoveryv1.EndpointSlice, []*v1.Pod, []netip.Prefix) {
	web := svc("web", "10.96.0.10", sport("http", v1.ProtocolTCP, 80), sport("dns", v1.ProtocolUDP, 53))
	dual := svc("dual", "10.96.0.11", sport("", v1.ProtocolTCP, 80))
	dual.Spec.ClusterIPs = []string{"10.96.0.11", "fd00:96::11"}
	headless := svc("headless", v1.ClusterIPNone, sport("http", v1.ProtocolTCP, 8080))
	pnr := svc("pnr", v1.ClusterIPNone, sport("http", v1.ProtocolTCP, 8080))
	pnr.Spec.PublishNotReadyAddresses = true
	// Headless Services without ready endpoints: none at all, and only a
	// not-ready one (not published).
	empty := svc("empty", v1.ClusterIPNone, sport("http", v1.ProtocolTCP, 8080))
	unready := svc("unready", v1.ClusterIPNone, sport("http", v1.ProtocolTCP, 8080))
	ext := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ext"},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeExternalName, ExternalName: "example.com"}}
	slices_ := []*discoveryv1.EndpointSlice{
		eps("web", "http", 8080, ep("10.244.1.9", "", true)),
		eps("headless", "http", 8080, ep("10.244.1.2", "web-0", true), ep("10.244.1.3", "", true), ep("10.244.1.4", "", false)),
		eps("pnr", "http", 8080, ep("10.244.2.2", "", false)),
		eps("unready", "http", 8080, ep("10.244.2.3", "", false)),
	}
	pods := []*v1.Pod{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p1"},
		Status: v1.PodStatus{PodIPs: []v1.PodIP{{IP: "10.244.1.2"}}}}}
	return []*v1.Service{web, dual, headless, pnr, empty, unready, ext}, slices_, pods, fixtureRanges()
}

// zoneCase is one question and the whole expected reply, records written as
// in a zone file.
type zoneCase struct {
	qname   string
	qtype   uint16
	rcode   int
	answer  []string
	ns      []string
	extra   []string
	outside bool // forwarded: not the zone's to answer
	// fwd: a reverse name that is not the cluster's alone. A server with
	// an upstream forwards it; rcode, answer, ns and extra are the reply
	// of one without.
	fwd bool
}

const (
	soa     = "cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30"
	revSOA4 = "in-addr.arpa. 30 IN SOA ns.dns.in-addr.arpa. hostmaster.in-addr.arpa. 1 7200 1800 86400 30"
	revSOA6 = "ip6.arpa. 30 IN SOA ns.dns.ip6.arpa. hostmaster.ip6.arpa. 1 7200 1800 86400 30"
)

func TestZoneAnswers(t *testing.T) {
	z := NewZone(Config{Zone: "cluster.local", TTL: 30})
	z.Store(Build(fixture()))
	cases := []zoneCase{
		{qname: "web.default.svc.cluster.local.", qtype: mdns.TypeA, answer: []string{"web.default.svc.cluster.local. 30 IN A 10.96.0.10"}},
		{qname: "WEB.Default.svc.Cluster.Local.", qtype: mdns.TypeA, answer: []string{"WEB.Default.svc.Cluster.Local. 30 IN A 10.96.0.10"}},
		{qname: "web.default.svc.cluster.local.", qtype: mdns.TypeAAAA, ns: []string{soa}},
		{qname: "web.default.svc.cluster.local.", qtype: mdns.TypeMX, ns: []string{soa}},
		{qname: "dual.default.svc.cluster.local.", qtype: mdns.TypeAAAA, answer: []string{"dual.default.svc.cluster.local. 30 IN AAAA fd00:96::11"}},
		{qname: "missing.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soa}},
		{qname: "headless.default.svc.cluster.local.", qtype: mdns.TypeA, answer: []string{
			"headless.default.svc.cluster.local. 30 IN A 10.244.1.2", "headless.default.svc.cluster.local. 30 IN A 10.244.1.3"}},
		{qname: "pnr.default.svc.cluster.local.", qtype: mdns.TypeA, answer: []string{"pnr.default.svc.cluster.local. 30 IN A 10.244.2.2"}},
		// §2.4.1: a headless Service with no ready endpoints has no
		// names at all (NXDOMAIN, whatever the type), not an empty answer.
		{qname: "empty.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soa}},
		{qname: "empty.default.svc.cluster.local.", qtype: mdns.TypeAAAA, rcode: mdns.RcodeNameError, ns: []string{soa}},
		{qname: "empty.default.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: mdns.RcodeNameError, ns: []string{soa}},
		{qname: "empty.default.svc.cluster.local.", qtype: mdns.TypeTXT, rcode: mdns.RcodeNameError, ns: []string{soa}},
		{qname: "_http._tcp.empty.default.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: mdns.RcodeNameError, ns: []string{soa}},
		{qname: "_tcp.empty.default.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: mdns.RcodeNameError, ns: []string{soa}},
		{qname: "unready.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soa}},
		{qname: "unready.default.svc.cluster.local.", qtype: mdns.TypeAAAA, rcode: mdns.RcodeNameError, ns: []string{soa}},
		{qname: "_http._tcp.unready.default.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: mdns.RcodeNameError, ns: []string{soa}},
		{qname: "10-244-2-3.unready.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soa}},
		{qname: "web-0.headless.default.svc.cluster.local.", qtype: mdns.TypeA, answer: []string{"web-0.headless.default.svc.cluster.local. 30 IN A 10.244.1.2"}},
		{qname: "10-244-1-3.headless.default.svc.cluster.local.", qtype: mdns.TypeA, answer: []string{"10-244-1-3.headless.default.svc.cluster.local. 30 IN A 10.244.1.3"}},
		{qname: "10-244-1-4.headless.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soa}},
		{qname: "web-0.web.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soa}},
		{qname: "_http._tcp.web.default.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{"_http._tcp.web.default.svc.cluster.local. 30 IN SRV 0 100 80 web.default.svc.cluster.local."},
			extra:  []string{"web.default.svc.cluster.local. 30 IN A 10.96.0.10"}},
		{qname: "_dns._udp.web.default.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{"_dns._udp.web.default.svc.cluster.local. 30 IN SRV 0 100 53 web.default.svc.cluster.local."},
			extra:  []string{"web.default.svc.cluster.local. 30 IN A 10.96.0.10"}},
		{qname: "_http._udp.web.default.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: mdns.RcodeNameError, ns: []string{soa}},
		{qname: "_http._tcp.web.default.svc.cluster.local.", qtype: mdns.TypeA, ns: []string{soa}},
		{qname: "_tcp.web.default.svc.cluster.local.", qtype: mdns.TypeSRV, ns: []string{soa}},
		{qname: "_http._tcp.headless.default.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{
				"_http._tcp.headless.default.svc.cluster.local. 30 IN SRV 0 50 8080 web-0.headless.default.svc.cluster.local.",
				"_http._tcp.headless.default.svc.cluster.local. 30 IN SRV 0 50 8080 10-244-1-3.headless.default.svc.cluster.local."},
			extra: []string{
				"web-0.headless.default.svc.cluster.local. 30 IN A 10.244.1.2",
				"10-244-1-3.headless.default.svc.cluster.local. 30 IN A 10.244.1.3"}},
		{qname: "10.0.96.10.in-addr.arpa.", qtype: mdns.TypePTR, answer: []string{"10.0.96.10.in-addr.arpa. 30 IN PTR web.default.svc.cluster.local."}},
		{qname: "2.1.244.10.in-addr.arpa.", qtype: mdns.TypePTR, answer: []string{"2.1.244.10.in-addr.arpa. 30 IN PTR web-0.headless.default.svc.cluster.local."}},
		{qname: "1.1.1.1.in-addr.arpa.", qtype: mdns.TypePTR, rcode: mdns.RcodeNameError, ns: []string{revSOA4}, fwd: true},
		{qname: "1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.0.d.f.ip6.arpa.", qtype: mdns.TypePTR,
			answer: []string{"1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.0.d.f.ip6.arpa. 30 IN PTR dual.default.svc.cluster.local."}},
		{qname: "ext.default.svc.cluster.local.", qtype: mdns.TypeCNAME, answer: []string{"ext.default.svc.cluster.local. 30 IN CNAME example.com."}},
		{qname: "ext.default.svc.cluster.local.", qtype: mdns.TypeA, answer: []string{"ext.default.svc.cluster.local. 30 IN CNAME example.com."}},
		{qname: "dns-version.cluster.local.", qtype: mdns.TypeTXT, answer: []string{`dns-version.cluster.local. 30 IN TXT "1.1.0"`}},
		{qname: "10-244-1-2.default.pod.cluster.local.", qtype: mdns.TypeA, answer: []string{"10-244-1-2.default.pod.cluster.local. 30 IN A 10.244.1.2"}},
		{qname: "10-1-2-3.other.pod.cluster.local.", qtype: mdns.TypeA, answer: []string{"10-1-2-3.other.pod.cluster.local. 30 IN A 10.1.2.3"}},
		{qname: "not-an-ip.default.pod.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soa}},
		{qname: "default.svc.cluster.local.", qtype: mdns.TypeA, ns: []string{soa}},
		{qname: "nosuchns.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soa}},
		{qname: "svc.cluster.local.", qtype: mdns.TypeA, ns: []string{soa}},
		{qname: "cluster.local.", qtype: mdns.TypeSOA, answer: []string{soa}},
		{qname: "cluster.local.", qtype: mdns.TypeNS, answer: []string{"cluster.local. 30 IN NS ns.dns.cluster.local."}},
		{qname: "a.b.c.d.e.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soa}},
		{qname: "example.com.", qtype: mdns.TypeA, outside: true},
		{qname: "cluster.local.example.com.", qtype: mdns.TypeA, outside: true},
	}
	for _, tc := range cases {
		t.Run(mdns.TypeToString[tc.qtype]+" "+tc.qname, func(t *testing.T) {
			checkAnswer(t, z, tc)
		})
	}
}

func TestPodRecordModes(t *testing.T) {
	for _, tc := range []struct {
		mode  PodMode
		qname string
		rcode int
	}{
		{PodsInsecure, "10-9-9-9.default.pod.cluster.local.", mdns.RcodeSuccess},
		{PodsVerified, "10-244-1-2.default.pod.cluster.local.", mdns.RcodeSuccess},
		{PodsVerified, "10-9-9-9.default.pod.cluster.local.", mdns.RcodeNameError},
		{PodsVerified, "10-244-1-2.other.pod.cluster.local.", mdns.RcodeNameError},
		{PodsDisabled, "10-244-1-2.default.pod.cluster.local.", mdns.RcodeNameError},
	} {
		t.Run(string(tc.mode)+" "+tc.qname, func(t *testing.T) {
			z := NewZone(Config{Zone: "cluster.local", TTL: 30, PodMode: tc.mode})
			z.Store(Build(fixture()))
			r, in := z.Answer(mdns.Question{Name: tc.qname, Qtype: mdns.TypeA, Qclass: mdns.ClassINET})
			if !in || r.Rcode != tc.rcode {
				t.Errorf("rcode %s (in zone %v), want %s", mdns.RcodeToString[r.Rcode], in, mdns.RcodeToString[tc.rcode])
			}
		})
	}
}

func TestServfailBeforeSync(t *testing.T) {
	z := NewZone(Config{Zone: "cluster.local", TTL: 30})
	r, in := z.Answer(mdns.Question{Name: "web.default.svc.cluster.local.", Qtype: mdns.TypeA, Qclass: mdns.ClassINET})
	if !in || r.Rcode != mdns.RcodeServerFailure || z.Ready() {
		t.Errorf("before the first snapshot: rcode %s, ready %v; want SERVFAIL, not ready", mdns.RcodeToString[r.Rcode], z.Ready())
	}
	if _, in := z.Answer(mdns.Question{Name: "example.com.", Qtype: mdns.TypeA, Qclass: mdns.ClassINET}); in {
		t.Error("before the first snapshot, an outside name is kept instead of forwarded")
	}
}

// checkAnswer compares every section of the zone's reply with tc.
func checkAnswer(t *testing.T, z *Zone, tc zoneCase) {
	t.Helper()
	r, in := z.Answer(mdns.Question{Name: tc.qname, Qtype: tc.qtype, Qclass: mdns.ClassINET})
	if in == tc.outside {
		t.Fatalf("in zone = %v, want %v", in, !tc.outside)
	}
	if tc.outside {
		return
	}
	if r.Rcode != tc.rcode {
		t.Errorf("rcode %s, want %s", mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tc.rcode])
	}
	if r.Forward != tc.fwd {
		t.Errorf("forward %v, want %v", r.Forward, tc.fwd)
	}
	if !r.Authoritative {
		t.Error("answer is not authoritative")
	}
	for _, sec := range []struct {
		name      string
		got       []mdns.RR
		want      []string
		keepOrder bool
	}{{"answer", r.Answer, tc.answer, false}, {"authority", r.Ns, tc.ns, true}, {"additional", r.Extra, tc.extra, false}} {
		if err := sameRecords(sec.got, sec.want); err != "" {
			t.Errorf("%s section: %s", sec.name, err)
		}
	}
}

// sameRecords compares records with zone-file lines, in any order; it
// returns what differs ("" when nothing does).
func sameRecords(got []mdns.RR, want []string) string {
	norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	var g, w []string
	for _, rr := range got {
		g = append(g, norm(rr.String()))
	}
	for _, s := range want {
		w = append(w, norm(s))
	}
	slices.Sort(g)
	slices.Sort(w)
	if slices.Equal(g, w) {
		return ""
	}
	return "got\n    " + strings.Join(g, "\n    ") + "\nwant\n    " + strings.Join(w, "\n    ")
}

func TestSameRecordsReportsDifferences(t *testing.T) {
	a := &mdns.A{Hdr: mdns.RR_Header{Name: "x.", Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 30}, A: []byte{10, 0, 0, 1}}
	if d := sameRecords([]mdns.RR{a}, []string{"x. 30 IN A 10.0.0.1"}); d != "" {
		t.Errorf("equal records reported different: %s", d)
	}
	if d := sameRecords([]mdns.RR{a}, []string{"x. 30 IN A 10.0.0.2"}); d == "" {
		t.Error("different records reported equal")
	}
	if d := sameRecords([]mdns.RR{a}, nil); d == "" {
		t.Error("an extra record went unnoticed")
	}
}

func TestDrainingKeepsAnsweringButIsNotReady(t *testing.T) {
	z := NewZone(Config{Zone: "cluster.local", TTL: 30})
	z.Store(Build(fixture()))
	z.Drain()
	if z.Ready() {
		t.Error("a draining zone says it is ready")
	}
	checkAnswer(t, z, zoneCase{qname: "web.default.svc.cluster.local.", qtype: mdns.TypeA,
		answer: []string{"web.default.svc.cluster.local. 30 IN A 10.96.0.10"}})
}

// rev is the reverse name of an address.
func rev(t *testing.T, addr string) string {
	t.Helper()
	name, err := mdns.ReverseAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// TestZoneAnswersReverseNames: a reverse name inside the cluster's ranges
// is the cluster's (NXDOMAIN when nothing owns it); one outside them is
// forwarded when there is an upstream (fwd) and gets the same negative
// answer when there is none. A name of fewer labels stands for a prefix:
// inside a range it exists when a record lies below it; above a range
// (10.in-addr.arpa. over 10.96.0.0/16) it also stands for addresses that
// are not the cluster's, so it is forwarded.
func TestZoneAnswersReverseNames(t *testing.T) {
	z := NewZone(Config{Zone: "cluster.local", TTL: 30})
	z.Store(Build(fixture()))
	nx4 := func(qname string, fwd bool) zoneCase {
		return zoneCase{qname: qname, qtype: mdns.TypePTR, rcode: mdns.RcodeNameError, ns: []string{revSOA4}, fwd: fwd}
	}
	nx6 := func(qname string, fwd bool) zoneCase {
		return zoneCase{qname: qname, qtype: mdns.TypePTR, rcode: mdns.RcodeNameError, ns: []string{revSOA6}, fwd: fwd}
	}
	nodata4 := func(qname string, fwd bool) zoneCase {
		return zoneCase{qname: qname, qtype: mdns.TypePTR, ns: []string{revSOA4}, fwd: fwd}
	}
	const fd0096 = "0.0.0.0.0.0.0.0.6.9.0.0.0.0.d.f.ip6.arpa." // fd00:96::/64
	cases := []zoneCase{
		// Whole addresses.
		nx4(rev(t, "10.96.0.99"), false),  // a service address nobody has
		nx4(rev(t, "10.244.1.9"), false),  // a pod (pods have no PTR records)
		nx4(rev(t, "10.244.2.3"), false),  // an unpublished not-ready endpoint
		nx4(rev(t, "10.244.3.5"), true),   // no node has 10.244.3.0/24
		nx4(rev(t, "192.0.2.1"), true),    // outside the cluster
		nx6(rev(t, "fd00:96::99"), false), // IPv6 service range
		nx6(rev(t, "fd00:244:1::5"), false),
		nx6(rev(t, "2001:db8::1"), true),
		nx4("99.0.96.10.IN-ADDR.ARPA.", false),
		{qname: rev(t, "10.244.2.2"), qtype: mdns.TypePTR,
			answer: []string{rev(t, "10.244.2.2") + " 30 IN PTR 10-244-2-2.pnr.default.svc.cluster.local."}},
		{qname: rev(t, "10.96.0.10"), qtype: mdns.TypeA, ns: []string{revSOA4}},
		{qname: rev(t, "fd00:96::11"), qtype: mdns.TypeAAAA, ns: []string{revSOA6}},
		// Prefixes inside a range: an empty non-terminal or nothing.
		nodata4("96.10.in-addr.arpa.", false),
		nodata4("0.96.10.in-addr.arpa.", false),
		nx4("5.96.10.in-addr.arpa.", false),
		nodata4("1.244.10.in-addr.arpa.", false),
		{qname: fd0096, qtype: mdns.TypePTR, ns: []string{revSOA6}},
		{qname: "1." + fd0096, qtype: mdns.TypePTR, rcode: mdns.RcodeNameError, ns: []string{revSOA6}},
		// Prefixes above a range, or beside one.
		nodata4("244.10.in-addr.arpa.", true),
		nodata4("10.in-addr.arpa.", true),
		nx4("3.244.10.in-addr.arpa.", true),
		nx4("11.in-addr.arpa.", true),
		{qname: strings.TrimPrefix(fd0096, "0."), qtype: mdns.TypePTR, ns: []string{revSOA6}, fwd: true},
		// The reverse zones' apexes.
		{qname: "in-addr.arpa.", qtype: mdns.TypeSOA, answer: []string{revSOA4}, fwd: true},
		nodata4("in-addr.arpa.", true),
		{qname: "ip6.arpa.", qtype: mdns.TypeNS, answer: []string{"ip6.arpa. 30 IN NS ns.dns.ip6.arpa."}, fwd: true},
		// Names that are no reverse name, decided by where their longest
		// well-formed suffix lies.
		nx4("x.0.96.10.in-addr.arpa.", false),
		nx4("7.10.0.96.10.in-addr.arpa.", false), // below an owned address
		nx4("010.0.96.10.in-addr.arpa.", false),
		nx4("256.0.96.10.in-addr.arpa.", false),
		nx4("0-25.2.0.192.in-addr.arpa.", true), // RFC 2317 style, outside
		nx6("g."+fd0096, false),
		nx6("10."+fd0096, false),
		nx6("x.8.b.d.0.1.0.0.2.ip6.arpa.", true),
	}
	for _, tc := range cases {
		t.Run(mdns.TypeToString[tc.qtype]+" "+tc.qname, func(t *testing.T) {
			checkAnswer(t, z, tc)
		})
	}
}

func TestClusterRangesAndTheirLookup(t *testing.T) {
	cidrs := []*networkingv1.ServiceCIDR{
		{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"}, Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.96.0.0/12", "fd00:96::/108"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "extra"}, Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.100.0.0/16", "not-a-cidr"}}},
	}
	nodes := []*v1.Node{
		{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: v1.NodeSpec{PodCIDR: "10.244.0.0/24", PodCIDRs: []string{"10.244.0.0/24", "fd00:244::/64"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "legacy"}, Spec: v1.NodeSpec{PodCIDR: "10.244.1.0/24"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "new"}}, // no CIDR allocated yet
	}
	got := ClusterRanges(cidrs, nodes)
	want := []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("fd00:96::/108"),
		netip.MustParsePrefix("10.100.0.0/16"), netip.MustParsePrefix("10.244.0.0/24"),
		netip.MustParsePrefix("fd00:244::/64"), netip.MustParsePrefix("10.244.1.0/24")}
	if !slices.Equal(got, want) {
		t.Errorf("ClusterRanges = %v, want %v", got, want)
	}
	s := Build(nil, nil, nil, got)
	if n := len(s.ranges); n != 5 {
		t.Errorf("%d disjoint ranges %v, want 5 (10.100.0.0/16 lies inside 10.96.0.0/12)", n, s.ranges)
	}
	for _, tc := range []struct {
		prefix string
		in     bool
	}{
		{"10.96.0.0/12", true},
		{"10.100.7.0/24", true},
		{"10.111.255.255/32", true},
		{"10.112.0.0/32", false}, // just past 10.96.0.0/12
		{"10.0.0.0/8", false},    // above it
		{"10.244.1.9/32", true},
		{"10.244.2.9/32", false},
		{"10.244.0.0/16", false},
		{"fd00:96::f:ffff/128", true},
		{"fd00:96::10:0/128", false},
		{"fd00:244::/64", true},
		{"::/0", false},
		{"0.0.0.0/0", false},
	} {
		if got := s.inRanges(netip.MustParsePrefix(tc.prefix)); got != tc.in {
			t.Errorf("inRanges(%s) = %v, want %v", tc.prefix, got, tc.in)
		}
	}
}
