package dns

// Fixture conventions: Services in 10.96.0.0/16 and fd00:96::/64, pods in
// 10.244.0.0/16; the zone is cluster.local with TTL 30.

import (
	"slices"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
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

func fixture() ([]*v1.Service, []*discoveryv1.EndpointSlice, []*v1.Pod) {
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
	return []*v1.Service{web, dual, headless, pnr, empty, unready, ext}, slices_, pods
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
}

const soa = "cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30"

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
		{qname: "1.1.1.1.in-addr.arpa.", qtype: mdns.TypePTR, outside: true},
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
