package dns_test

// Fixture conventions: the zone is cluster.local with TTL 30; Services in
// 10.96.0.0/16 and fd00:96::/64, pods and endpoints in 10.244.1.0/24 (one
// node's pod CIDR): those three are the cluster's ranges (serverRanges).
// Names outside the zone live under example.org and are answered by a fake
// upstream (a miekg/dns server on loopback) with addresses from
// 192.0.2.0/24 (TEST-NET-1); it answers every reverse name with a PTR to
// upstream.example.org. Every server listens on 127.0.0.1 with a random
// port.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/podnet/podnet/internal/dns"
)

// manyEndpoints is the size of the headless Service "many": its A answer
// is about 1 kB, more than 512 bytes.
const manyEndpoints = 60

func serverFixture() ([]*v1.Service, []*discoveryv1.EndpointSlice) {
	web := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: v1.ServiceSpec{ClusterIP: "10.96.0.20", ClusterIPs: []string{"10.96.0.20"},
			Ports: []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: 80}}}}
	many := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "many"},
		Spec: v1.ServiceSpec{ClusterIP: v1.ClusterIPNone}}
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "many-1", Labels: map[string]string{discoveryv1.LabelServiceName: "many"}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for i := range manyEndpoints {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.244.1.%d", i+1)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	ext := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ext"},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeExternalName, ExternalName: "www.example.org"}}
	alias := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "alias"},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeExternalName, ExternalName: "web.default.svc.cluster.local"}}
	return []*v1.Service{web, many, ext, alias}, []*discoveryv1.EndpointSlice{sl}
}

// serverRanges are the cluster's ranges of serverFixture.
var serverRanges = []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16"), netip.MustParsePrefix("fd00:96::/64"),
	netip.MustParsePrefix("10.244.1.0/24")}

// readyZone is cluster.local holding serverFixture.
func readyZone() *dns.Zone {
	z := dns.NewZone(dns.Config{Zone: "cluster.local", TTL: 30, PodMode: dns.PodsInsecure})
	svcs, sls := serverFixture()
	z.Store(dns.Build(svcs, sls, nil, serverRanges))
	return z
}

// fakeUpstream is a recursive resolver on loopback (UDP and TCP, one port):
//   - NAME.example.org A: 192.0.2.10, TTL 60, owner in lower case;
//   - nx.example.org: NXDOMAIN with a SOA (TTL 60, MINIMUM 20);
//   - big.example.org A: 100 addresses, truncated over UDP;
//   - slow.example.org: waits until release is closed;
//   - any name under in-addr.arpa. or ip6.arpa.: PTR upstream.example.org.;
//   - anything else: NOERROR, no answer, no SOA.
type fakeUpstream struct {
	addr    string
	arrived chan string   // names of "slow" questions, as they arrive
	release chan struct{} // closed: slow questions are answered

	mu     sync.Mutex
	counts map[string]int // by lower-case name and transport
}

func startUpstream(t testing.TB) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{arrived: make(chan string, 100), release: make(chan struct{}), counts: map[string]int{}}
	pc, ln := listenPair(t)
	u.addr = pc.LocalAddr().String()
	h := mdns.HandlerFunc(u.serve)
	startMiekg(t, &mdns.Server{PacketConn: pc, Handler: h}, &mdns.Server{Listener: ln, Handler: h})
	t.Cleanup(func() {
		select {
		case <-u.release:
		default:
			close(u.release)
		}
	})
	return u
}

func (u *fakeUpstream) count(name, network string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.counts[name+"/"+network]
}

func (u *fakeUpstream) serve(w mdns.ResponseWriter, r *mdns.Msg) {
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	network := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		network = "tcp"
	}
	u.mu.Lock()
	u.counts[name+"/"+network]++
	u.mu.Unlock()
	m := new(mdns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	a := func(ip string) mdns.RR {
		return &mdns.A{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60}, A: net.ParseIP(ip)}
	}
	switch {
	case name == "nx.example.org.":
		m.Rcode = mdns.RcodeNameError
		m.Ns = []mdns.RR{&mdns.SOA{Hdr: mdns.RR_Header{Name: "example.org.", Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: 60},
			Ns: "ns.example.org.", Mbox: "hostmaster.example.org.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 20}}
	case name == "big.example.org.":
		for i := range 100 {
			m.Answer = append(m.Answer, a(fmt.Sprintf("192.0.2.%d", i+1)))
		}
	case strings.HasPrefix(name, "slow"):
		select {
		case u.arrived <- name:
		default:
		}
		<-u.release
		m.Answer = []mdns.RR{a("192.0.2.99")}
	case strings.HasSuffix(name, ".example.org.") && q.Qtype == mdns.TypeA:
		m.Answer = []mdns.RR{a("192.0.2.10")}
	case strings.HasSuffix(name, "in-addr.arpa.") || strings.HasSuffix(name, "ip6.arpa."):
		m.Answer = []mdns.RR{&mdns.PTR{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypePTR, Class: mdns.ClassINET, Ttl: 60},
			Ptr: "upstream.example.org."}}
	}
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(1232, opt.Do())
	}
	if network == "udp" {
		size := mdns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

// listenPair opens UDP and TCP sockets on one random loopback port.
func listenPair(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			continue
		}
		return pc, ln
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return nil, nil
}

func startMiekg(t testing.TB, servers ...*mdns.Server) {
	t.Helper()
	for _, s := range servers {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go func() { _ = s.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = s.Shutdown() })
	}
}

// testServer is a dns.Server answering on one loopback port.
type testServer struct {
	addr    string
	metrics *dns.Metrics
}

func startServer(t *testing.T, zone *dns.Zone, fc *dns.ForwarderConfig) *testServer {
	t.Helper()
	m := dns.NewMetrics()
	var fwd *dns.Forwarder
	if fc != nil {
		fc.Metrics = m
		var err error
		if fwd, err = dns.NewForwarder(*fc); err != nil {
			t.Fatal(err)
		}
	}
	srv := dns.NewServer(dns.ServerConfig{Zone: zone, Forwarder: fwd, Metrics: m})
	pc, ln := listenPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, pc, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{addr: pc.LocalAddr().String(), metrics: m}
}

// query builds a question; edns > 0 adds an OPT with that buffer size.
func query(name string, qtype uint16, edns uint16, do bool) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	if edns > 0 {
		m.SetEdns0(edns, do)
	}
	return m
}

func exchange(t *testing.T, network, addr string, m *mdns.Msg) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s query %v: %v", network, m.Question, err)
	}
	if r.Id != m.Id || !r.Response {
		t.Fatalf("reply id %d response %v, want id %d response", r.Id, r.Response, m.Id)
	}
	return r
}

func rrStrings(rrs []mdns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype != mdns.TypeOPT {
			out = append(out, rr.String())
		}
	}
	return out
}

func TestServerAnswersTheZone(t *testing.T) {
	s := startServer(t, readyZone(), nil)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			r := exchange(t, network, s.addr, query("web.default.svc.cluster.local.", mdns.TypeA, 0, false))
			if r.Rcode != mdns.RcodeSuccess || !r.Authoritative || !r.RecursionAvailable {
				t.Errorf("rcode %s AA %v RA %v, want NOERROR AA RA", mdns.RcodeToString[r.Rcode], r.Authoritative, r.RecursionAvailable)
			}
			want := "web.default.svc.cluster.local.\t30\tIN\tA\t10.96.0.20"
			if got := rrStrings(r.Answer); len(got) != 1 || got[0] != want {
				t.Errorf("answer %q, want [%q]", got, want)
			}
		})
	}
}

func TestServerKeepsTheCaseOfTheQuestion(t *testing.T) {
	up := startUpstream(t)
	s := startServer(t, readyZone(), &dns.ForwarderConfig{Upstreams: []string{up.addr}, CacheSize: 100})
	for _, name := range []string{"WeB.Default.SVC.cluster.LOCAL.", "WwW.Example.ORG.", "www.EXAMPLE.org."} {
		t.Run(name, func(t *testing.T) {
			r := exchange(t, "udp", s.addr, query(name, mdns.TypeA, 0, false))
			if len(r.Question) != 1 || r.Question[0].Name != name {
				t.Errorf("question %v, want %s as asked", r.Question, name)
			}
			if len(r.Answer) != 1 || r.Answer[0].Header().Name != name {
				t.Errorf("answer %q, want one record owned by %s", rrStrings(r.Answer), name)
			}
		})
	}
	if n := up.count("www.example.org.", "udp"); n != 1 {
		t.Errorf("upstream asked %d times, want 1 (the second spelling is a cache hit)", n)
	}
}

func TestServerServfailsTheZoneUntilReady(t *testing.T) {
	up := startUpstream(t)
	zone := dns.NewZone(dns.Config{Zone: "cluster.local", TTL: 30})
	s := startServer(t, zone, &dns.ForwarderConfig{Upstreams: []string{up.addr}})
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
	}{
		{"web.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeServerFailure},
		{"nothing.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeServerFailure},
		{"20.0.96.10.in-addr.arpa.", mdns.TypePTR, mdns.RcodeServerFailure},
		{"www.example.org.", mdns.TypeA, mdns.RcodeSuccess}, // forwarded already
	} {
		r := exchange(t, "udp", s.addr, query(tc.name, tc.qtype, 0, false))
		if r.Rcode != tc.rcode {
			t.Errorf("%s: rcode %s before ready, want %s", tc.name, mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tc.rcode])
		}
	}
	svcs, sls := serverFixture()
	zone.Store(dns.Build(svcs, sls, nil, serverRanges))
	r := exchange(t, "udp", s.addr, query("web.default.svc.cluster.local.", mdns.TypeA, 0, false))
	if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("after Store: rcode %s answer %q, want the ClusterIP", mdns.RcodeToString[r.Rcode], rrStrings(r.Answer))
	}
}

func TestServerForwardsAndCaches(t *testing.T) {
	up := startUpstream(t)
	s := startServer(t, readyZone(), &dns.ForwarderConfig{Upstreams: []string{up.addr}, CacheSize: 100})
	for i := range 3 {
		r := exchange(t, "udp", s.addr, query("www.example.org.", mdns.TypeA, 0, false))
		if r.Rcode != mdns.RcodeSuccess || r.Authoritative || !r.RecursionAvailable {
			t.Errorf("query %d: rcode %s AA %v RA %v, want NOERROR, not AA, RA", i, mdns.RcodeToString[r.Rcode], r.Authoritative, r.RecursionAvailable)
		}
		if len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != "192.0.2.10" || r.Answer[0].Header().Ttl > 60 {
			t.Errorf("query %d: answer %q, want 192.0.2.10 with TTL <= 60", i, rrStrings(r.Answer))
		}
	}
	if n := up.count("www.example.org.", "udp"); n != 1 {
		t.Errorf("upstream asked %d times, want 1", n)
	}
	if hits, misses := testutil.ToFloat64(s.metrics.CacheHits), testutil.ToFloat64(s.metrics.CacheMisses); hits != 2 || misses != 1 {
		t.Errorf("cache hits %v misses %v, want 2 and 1", hits, misses)
	}
	// The DO bit is part of the key: a DNSSEC question is not answered
	// from a reply to a plain one.
	exchange(t, "udp", s.addr, query("www.example.org.", mdns.TypeA, 1232, true))
	if n := up.count("www.example.org.", "udp"); n != 2 {
		t.Errorf("upstream asked %d times after a DO query, want 2", n)
	}
	if got := testutil.ToFloat64(s.metrics.Requests.WithLabelValues("A", "NOERROR")); got != 4 {
		t.Errorf("requests{A,NOERROR} = %v, want 4", got)
	}
}

func TestServerCachesNegativeAnswers(t *testing.T) {
	up := startUpstream(t)
	s := startServer(t, readyZone(), &dns.ForwarderConfig{Upstreams: []string{up.addr}, CacheSize: 100})
	for i := range 2 {
		r := exchange(t, "udp", s.addr, query("nx.example.org.", mdns.TypeA, 0, false))
		if r.Rcode != mdns.RcodeNameError || len(r.Ns) != 1 {
			t.Fatalf("query %d: rcode %s authority %q, want NXDOMAIN with the SOA", i, mdns.RcodeToString[r.Rcode], rrStrings(r.Ns))
		}
		// RFC 2308: cached for min(SOA TTL 60, MINIMUM 20); the TTL
		// handed out is capped by what is left.
		if ttl := r.Ns[0].Header().Ttl; ttl > 20 {
			t.Errorf("query %d: SOA TTL %d, want at most 20 (the negative TTL)", i, ttl)
		}
	}
	if n := up.count("nx.example.org.", "udp"); n != 1 {
		t.Errorf("upstream asked %d times, want 1 (NXDOMAIN cached)", n)
	}
	// NODATA without a SOA is not cached (RFC 2308 §5).
	for range 2 {
		exchange(t, "udp", s.addr, query("www.example.org.", mdns.TypeTXT, 0, false))
	}
	if n := up.count("www.example.org.", "udp"); n != 2 {
		t.Errorf("upstream asked %d times for NODATA without SOA, want 2", n)
	}
}

func TestServerTruncatesUDPOnly(t *testing.T) {
	up := startUpstream(t)
	s := startServer(t, readyZone(), &dns.ForwarderConfig{Upstreams: []string{up.addr}, CacheSize: 100})
	for _, tc := range []struct {
		name, network string
		edns          uint16
		want          int // answers
		tc            bool
	}{
		{"many.default.svc.cluster.local.", "udp", 0, -1, true},
		{"many.default.svc.cluster.local.", "tcp", 0, manyEndpoints, false},
		{"many.default.svc.cluster.local.", "udp", 4096, manyEndpoints, false},
		// The upstream truncates its UDP reply to the forwarder, which
		// asks again over TCP.
		{"big.example.org.", "udp", 0, -1, true},
		{"big.example.org.", "tcp", 0, 100, false},
	} {
		t.Run(fmt.Sprintf("%s %s edns %d", tc.name, tc.network, tc.edns), func(t *testing.T) {
			q := query(tc.name, mdns.TypeA, tc.edns, false)
			r := exchange(t, tc.network, s.addr, q)
			if r.Truncated != tc.tc {
				t.Errorf("TC %v, want %v", r.Truncated, tc.tc)
			}
			if tc.want >= 0 && len(r.Answer) != tc.want {
				t.Errorf("%d answers, want %d", len(r.Answer), tc.want)
			}
			if tc.network == "udp" && tc.edns == 0 {
				r.Compress = true // as sent
				if n := r.Len(); n > mdns.MinMsgSize {
					t.Errorf("UDP reply is %d bytes, want at most 512", n)
				}
			}
		})
	}
	if n := up.count("big.example.org.", "tcp"); n != 1 {
		t.Errorf("forwarder asked the upstream over TCP %d times, want 1 (after the truncated UDP reply; then cached)", n)
	}
}

func TestServerEDNS0(t *testing.T) {
	s := startServer(t, readyZone(), nil)
	for _, tc := range []struct {
		name   string
		edns   uint16
		do     bool
		wantDO bool
	}{
		{"no OPT: none back", 0, false, false},
		{"OPT: the server's size back", 4096, false, false},
		{"OPT with DO: DO back", 4096, true, true},
		{"small buffer: treated as 512", 100, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := exchange(t, "udp", s.addr, query("web.default.svc.cluster.local.", mdns.TypeA, tc.edns, tc.do))
			opt := r.IsEdns0()
			if tc.edns == 0 {
				if opt != nil {
					t.Errorf("OPT %v in the reply to a query without one", opt)
				}
				return
			}
			if opt == nil {
				t.Fatal("no OPT in the reply")
			}
			if opt.UDPSize() != 1232 || opt.Do() != tc.wantDO || opt.Version() != 0 {
				t.Errorf("OPT size %d DO %v version %d, want 1232 %v 0", opt.UDPSize(), opt.Do(), opt.Version(), tc.wantDO)
			}
		})
	}
}

func TestServerRejectsWhatItDoesNotServe(t *testing.T) {
	s := startServer(t, readyZone(), nil)
	twoQuestions := query("web.default.svc.cluster.local.", mdns.TypeA, 0, false)
	twoQuestions.Question = append(twoQuestions.Question, mdns.Question{Name: "x.cluster.local.", Qtype: mdns.TypeA, Qclass: mdns.ClassINET})
	noQuestion := query("web.default.svc.cluster.local.", mdns.TypeA, 0, false)
	noQuestion.Question = nil
	notify := query("cluster.local.", mdns.TypeSOA, 0, false)
	notify.Opcode = mdns.OpcodeNotify
	update := query("cluster.local.", mdns.TypeSOA, 0, false)
	update.Opcode = mdns.OpcodeUpdate
	badvers := query("web.default.svc.cluster.local.", mdns.TypeA, 1232, false)
	badvers.IsEdns0().SetVersion(1)
	chaos := query("version.bind.", mdns.TypeTXT, 0, false)
	chaos.Question[0].Qclass = mdns.ClassCHAOS
	for _, tc := range []struct {
		name  string
		msg   *mdns.Msg
		rcode int
	}{
		{"two questions get FORMERR", twoQuestions, mdns.RcodeFormatError},
		{"no question gets FORMERR", noQuestion, mdns.RcodeFormatError},
		{"NOTIFY gets NOTIMP", notify, mdns.RcodeNotImplemented},
		{"UPDATE gets NOTIMP", update, mdns.RcodeNotImplemented},
		{"EDNS version 1 gets BADVERS", badvers, mdns.RcodeBadVers},
		{"AXFR gets REFUSED", query("cluster.local.", mdns.TypeAXFR, 0, false), mdns.RcodeRefused},
		{"class CH gets REFUSED", chaos, mdns.RcodeRefused},
		{"outside the zone without upstream gets REFUSED", query("www.example.org.", mdns.TypeA, 0, false), mdns.RcodeRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := exchange(t, "udp", s.addr, tc.msg)
			if r.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tc.rcode])
			}
		})
	}
}

func TestServerLimitsConcurrentUpstreamQueries(t *testing.T) {
	up := startUpstream(t)
	s := startServer(t, readyZone(), &dns.ForwarderConfig{Upstreams: []string{up.addr}, MaxConcurrent: 1, Timeout: 10 * time.Second})
	first := make(chan *mdns.Msg, 1)
	go func() {
		c := &mdns.Client{Net: "udp", Timeout: 10 * time.Second}
		r, _, _ := c.Exchange(query("slow1.example.org.", mdns.TypeA, 0, false), s.addr)
		first <- r
	}()
	select {
	case <-up.arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the first question never reached the upstream")
	}
	start := time.Now()
	r := exchange(t, "udp", s.addr, query("slow2.example.org.", mdns.TypeA, 0, false))
	if r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("second question while one is in flight: rcode %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("SERVFAIL took %v; it should not wait for the upstream", d)
	}
	if got := testutil.ToFloat64(s.metrics.UpstreamRejected); got != 1 {
		t.Errorf("upstream_rejected = %v, want 1", got)
	}
	close(up.release)
	if r := <-first; r == nil || r.Rcode != mdns.RcodeSuccess {
		t.Errorf("the first question: %v, want NOERROR once the upstream answers", r)
	}
	// The slot is free again.
	if r := exchange(t, "udp", s.addr, query("www.example.org.", mdns.TypeA, 0, false)); r.Rcode != mdns.RcodeSuccess {
		t.Errorf("after the first finished: rcode %s, want NOERROR", mdns.RcodeToString[r.Rcode])
	}
}

// deadUpstream is a UDP port nobody answers on: an exchange times out.
func deadUpstream(t *testing.T) net.PacketConn {
	t.Helper()
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dead.Close() })
	return dead
}

func TestServerFailsOverAndCountsUpstreamErrors(t *testing.T) {
	up := startUpstream(t)
	dead := deadUpstream(t)
	s := startServer(t, readyZone(), &dns.ForwarderConfig{Upstreams: []string{dead.LocalAddr().String(), up.addr}, Timeout: 200 * time.Millisecond})
	for i := range 4 {
		r := exchange(t, "udp", s.addr, query(fmt.Sprintf("h%d.example.org.", i), mdns.TypeA, 0, false))
		if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
			t.Errorf("query %d: rcode %s answer %q, want the working upstream's answer", i, mdns.RcodeToString[r.Rcode], rrStrings(r.Answer))
		}
	}
	// Round-robin starts at the dead one once; after that failure it is
	// tried last.
	if got := testutil.ToFloat64(s.metrics.UpstreamErrors.WithLabelValues(dead.LocalAddr().String())); got != 1 {
		t.Errorf("upstream errors of the dead upstream = %v, want 1", got)
	}
}

// TestServerTimesEachUpstream: every exchange with an upstream is timed
// under its address, a failed one (here a timeout) as an error.
func TestServerTimesEachUpstream(t *testing.T) {
	up := startUpstream(t)
	dead := deadUpstream(t)
	timeout := 200 * time.Millisecond
	s := startServer(t, readyZone(), &dns.ForwarderConfig{Upstreams: []string{dead.LocalAddr().String(), up.addr}, Timeout: timeout})
	for i := range 3 {
		exchange(t, "udp", s.addr, query(fmt.Sprintf("t%d.example.org.", i), mdns.TypeA, 0, false))
	}
	observed := func(upstream, result string) (uint64, float64) {
		var m dto.Metric
		if err := s.metrics.UpstreamDuration.WithLabelValues(upstream, result).(prometheus.Metric).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
	}
	if n, sum := observed(dead.LocalAddr().String(), "error"); n != 1 || sum < timeout.Seconds() {
		t.Errorf("the dead upstream: %d exchanges timed, %.3fs in all; want 1 of at least the %s timeout", n, sum, timeout)
	}
	if n, sum := observed(up.addr, "ok"); n != 3 || sum <= 0 || sum > timeout.Seconds() {
		t.Errorf("the live upstream: %d exchanges timed, %.3fs in all; want 3, each quick", n, sum)
	}
}

func TestHTTPHealthReadyMetrics(t *testing.T) {
	zone := dns.NewZone(dns.Config{Zone: "cluster.local", TTL: 30})
	reg := prometheus.NewRegistry()
	if err := dns.NewMetrics().Register(reg); err != nil {
		t.Fatal(err)
	}
	h := httptest.NewServer(dns.HTTPHandler(zone, reg))
	defer h.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(h.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	if code, _ := get("/health"); code != http.StatusOK {
		t.Errorf("/health %d, want 200", code)
	}
	if code, _ := get("/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("/ready before Store %d, want 503", code)
	}
	zone.Store(dns.Build(nil, nil, nil, nil))
	if code, _ := get("/ready"); code != http.StatusOK {
		t.Errorf("/ready after Store %d, want 200", code)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "podnet_dns_") {
		t.Errorf("/metrics %d without podnet_dns_ metrics", code)
	}
}

func TestServerFollowsTheCNAMEOfAnExternalNameService(t *testing.T) {
	up := startUpstream(t)
	s := startServer(t, readyZone(), &dns.ForwarderConfig{Upstreams: []string{up.addr}, CacheSize: 100})
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  []string
	}{
		{"ext.default.svc.cluster.local.", mdns.TypeA, []string{
			"ext.default.svc.cluster.local.\t30\tIN\tCNAME\twww.example.org.", "www.example.org.\t30\tIN\tA\t192.0.2.10"}}, // the cache caps TTLs at 30 s
		{"alias.default.svc.cluster.local.", mdns.TypeA, []string{
			"alias.default.svc.cluster.local.\t30\tIN\tCNAME\tweb.default.svc.cluster.local.", "web.default.svc.cluster.local.\t30\tIN\tA\t10.96.0.20"}},
		{"ext.default.svc.cluster.local.", mdns.TypeCNAME, []string{
			"ext.default.svc.cluster.local.\t30\tIN\tCNAME\twww.example.org."}},
	} {
		r := exchange(t, "udp", s.addr, query(tc.name, tc.qtype, 0, false))
		if got := rrStrings(r.Answer); r.Rcode != mdns.RcodeSuccess || !slices.Equal(got, tc.want) {
			t.Errorf("%s %s: rcode %s answer %q, want NOERROR %q", mdns.TypeToString[tc.qtype], tc.name, mdns.RcodeToString[r.Rcode], got, tc.want)
		}
	}
}

// TestServerForwardsOnlyReverseNamesOutsideTheCluster: with an upstream,
// reverse names inside the cluster's ranges are answered here (a PTR, or
// NXDOMAIN with the reverse zone's SOA) and never reach the upstream;
// names outside them are forwarded. Without an upstream every reverse name
// is answered here: NXDOMAIN, never REFUSED.
func TestServerForwardsOnlyReverseNamesOutsideTheCluster(t *testing.T) {
	up := startUpstream(t)
	withUp := startServer(t, readyZone(), &dns.ForwarderConfig{Upstreams: []string{up.addr}, CacheSize: 100})
	alone := startServer(t, readyZone(), nil)
	const (
		local = iota // answered by the zone
		fwd          // forwarded when there is an upstream
	)
	for _, tc := range []struct {
		addr  string // reverse name of this address, or a name ending in "."
		where int
		rcode int // without an upstream (and with one, when local)
		ptr   string
	}{
		{"10.96.0.20", local, mdns.RcodeSuccess, "web.default.svc.cluster.local."},
		{"10.244.1.7", local, mdns.RcodeSuccess, "10-244-1-7.many.default.svc.cluster.local."},
		{"10.96.0.99", local, mdns.RcodeNameError, ""},
		{"10.244.1.200", local, mdns.RcodeNameError, ""},
		{"fd00:96::99", local, mdns.RcodeNameError, ""},
		{"96.10.in-addr.arpa.", local, mdns.RcodeSuccess, ""},
		{"7.96.10.in-addr.arpa.", local, mdns.RcodeNameError, ""},
		{"10.244.2.1", fwd, mdns.RcodeNameError, ""}, // another node's range is unknown here
		{"192.0.2.1", fwd, mdns.RcodeNameError, ""},
		{"2001:db8::1", fwd, mdns.RcodeNameError, ""},
		{"10.in-addr.arpa.", fwd, mdns.RcodeSuccess, ""},
	} {
		name := tc.addr
		if !strings.HasSuffix(name, ".") {
			var err error
			if name, err = mdns.ReverseAddr(tc.addr); err != nil {
				t.Fatal(err)
			}
		}
		t.Run(name, func(t *testing.T) {
			r := exchange(t, "udp", alone.addr, query(name, mdns.TypePTR, 0, false))
			checkReverse(t, "without upstream", r, tc.rcode, tc.ptr)
			r = exchange(t, "udp", withUp.addr, query(name, mdns.TypePTR, 0, false))
			asked := up.count(strings.ToLower(name), "udp")
			if tc.where == local {
				checkReverse(t, "with upstream", r, tc.rcode, tc.ptr)
				if asked != 0 {
					t.Errorf("the upstream was asked %d times, want never", asked)
				}
				return
			}
			if got := rrStrings(r.Answer); r.Rcode != mdns.RcodeSuccess || r.Authoritative || len(got) != 1 || !strings.HasSuffix(got[0], "upstream.example.org.") {
				t.Errorf("with upstream: rcode %s AA %v answer %q, want the upstream's PTR", mdns.RcodeToString[r.Rcode], r.Authoritative, got)
			}
			if asked != 1 {
				t.Errorf("the upstream was asked %d times, want once", asked)
			}
		})
	}
}

// checkReverse checks a reply of the zone to a PTR question: rcode, AA,
// the PTR target (none when ptr is empty) and, for a negative answer, the
// reverse zone's SOA.
func checkReverse(t *testing.T, what string, r *mdns.Msg, rcode int, ptr string) {
	t.Helper()
	if r.Rcode != rcode || !r.Authoritative {
		t.Errorf("%s: rcode %s AA %v, want %s AA", what, mdns.RcodeToString[r.Rcode], r.Authoritative, mdns.RcodeToString[rcode])
	}
	var got []string
	for _, rr := range r.Answer {
		if p, ok := rr.(*mdns.PTR); ok {
			got = append(got, p.Ptr)
		}
	}
	if ptr == "" {
		apex := "in-addr.arpa."
		if strings.HasSuffix(r.Question[0].Name, "ip6.arpa.") {
			apex = "ip6.arpa."
		}
		if len(got) != 0 || len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != mdns.TypeSOA || r.Ns[0].Header().Name != apex {
			t.Errorf("%s: answer %q authority %q, want none and the SOA of %s", what, got, rrStrings(r.Ns), apex)
		}
		return
	}
	if len(got) != 1 || got[0] != ptr {
		t.Errorf("%s: PTR %q, want %s", what, got, ptr)
	}
}
