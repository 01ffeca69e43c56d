package dns_test

import (
	"net"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/podnet/podnet/internal/dns"
)

// fakeWriter is an mdns.ResponseWriter that packs what is written, as the
// real one does, and keeps the bytes.
type fakeWriter struct {
	remote net.Addr
	out    [][]byte
	err    error
}

func (w *fakeWriter) LocalAddr() net.Addr  { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (w *fakeWriter) RemoteAddr() net.Addr { return w.remote }
func (w *fakeWriter) WriteMsg(m *mdns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		w.err = err
		return err
	}
	w.out = append(w.out, b)
	return nil
}
func (w *fakeWriter) Write(b []byte) (int, error) { w.out = append(w.out, b); return len(b), nil }
func (w *fakeWriter) Close() error                { return nil }
func (w *fakeWriter) TsigStatus() error           { return nil }
func (w *fakeWriter) TsigTimersOnly(bool)         {}
func (w *fakeWriter) Hijack()                     {}

var _ mdns.ResponseWriter = (*fakeWriter)(nil)

// fuzzSeeds are queries of every kind the server must handle.
func fuzzSeeds() []*mdns.Msg {
	var out []*mdns.Msg
	add := func(name string, qtype uint16, edns uint16, do bool) *mdns.Msg {
		m := query(name, qtype, edns, do)
		out = append(out, m)
		return m
	}
	for _, name := range []string{
		"web.default.svc.cluster.local.", "many.default.svc.cluster.local.", "_http._tcp.web.default.svc.cluster.local.",
		"10-244-1-5.default.pod.cluster.local.", "20.0.96.10.in-addr.arpa.", "cluster.local.", "dns-version.cluster.local.",
		"WEB.default.SVC.cluster.local.", "www.example.org.", "nx.example.org.", "1.2.3.4.in-addr.arpa.",
	} {
		for _, qt := range []uint16{mdns.TypeA, mdns.TypeAAAA, mdns.TypeSRV, mdns.TypePTR, mdns.TypeANY, mdns.TypeTXT} {
			add(name, qt, 0, false)
		}
	}
	add("many.default.svc.cluster.local.", mdns.TypeA, 4096, true)
	add("cluster.local.", mdns.TypeAXFR, 0, false)
	add("x.cluster.local.", mdns.TypeOPT, 0, false)
	add("web.default.svc.cluster.local.", mdns.TypeA, 1232, false).IsEdns0().SetVersion(3)
	add("cluster.local.", mdns.TypeSOA, 0, false).Opcode = mdns.OpcodeNotify
	two := add("a.cluster.local.", mdns.TypeA, 0, false)
	two.Question = append(two.Question, two.Question[0])
	long := strings.Repeat(strings.Repeat("a", 63)+".", 3) + "cluster.local."
	add(long, mdns.TypeA, 0, false)
	add(`we\.b.default.svc.cluster.local.`, mdns.TypeA, 0, false)
	add("web.default.svc.cluster.local.", 65280, 0, false)
	return out
}

// FuzzServe feeds the handlers whatever unpacks as a DNS message, over
// "UDP" and "TCP": they must not panic, and what they write must pack and,
// over UDP, fit the client's limit. One server has a ready zone and a
// forwarder to a loopback upstream, the other neither.
func FuzzServe(f *testing.F) {
	for _, m := range fuzzSeeds() {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	up := startUpstream(f)
	close(up.release)
	metrics := dns.NewMetrics()
	fwd, err := dns.NewForwarder(dns.ForwarderConfig{Upstreams: []string{up.addr}, CacheSize: 1000,
		Timeout: 100 * time.Millisecond, Budget: 300 * time.Millisecond, Metrics: metrics})
	if err != nil {
		f.Fatal(err)
	}
	servers := []*dns.Server{
		dns.NewServer(dns.ServerConfig{Zone: readyZone(), Forwarder: fwd, Metrics: metrics}),
		dns.NewServer(dns.ServerConfig{Zone: dns.NewZone(dns.Config{Zone: "cluster.local"}), Metrics: metrics}),
	}
	remotes := []net.Addr{&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}}
	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(mdns.Msg)
		if err := req.Unpack(b); err != nil {
			return // the miekg server answers FORMERR or drops it
		}
		for _, srv := range servers {
			for _, remote := range remotes {
				w := &fakeWriter{remote: remote}
				srv.ServeDNS(w, req.Copy())
				if p := testutil.ToFloat64(metrics.Panics); p != 0 {
					t.Fatalf("the handler panicked on %v", req)
				}
				if w.err != nil {
					t.Fatalf("the response to %v does not pack: %v", req.Question, w.err)
				}
				if len(w.out) > 1 {
					t.Fatalf("%d responses to one request", len(w.out))
				}
				if _, udp := remote.(*net.UDPAddr); udp && len(w.out) == 1 {
					limit := mdns.MinMsgSize
					if opt := req.IsEdns0(); opt != nil {
						limit = max(limit, int(opt.UDPSize()))
					}
					if len(w.out[0]) > limit {
						t.Fatalf("UDP response of %d bytes over the client's %d", len(w.out[0]), limit)
					}
				}
				if !req.Response && len(w.out) == 0 {
					t.Fatalf("no response to the query %v", req)
				}
			}
		}
	})
}
