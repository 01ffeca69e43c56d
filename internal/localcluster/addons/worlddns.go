package addons

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/podnet/podnet/internal/localcluster/controlplane"
	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/proc"
)

// The world DNS server's zone and process record.
const (
	// WorldZone is the zone the world's DNS server is authoritative for.
	WorldZone = "example.com"
	// WorldDNSProc is the world DNS server's process record name.
	WorldDNSProc = "world-dns"
)

// WorldDNS is the outside world's DNS server in a local cluster: a tiny
// authoritative server for one zone, run by `podnet up` inside the world
// namespace (`podnet world-dns`). It is the cluster DNS's only upstream, so
// that names outside the cluster zone resolve without the cluster ever
// asking the host's resolver. It never sends a query anywhere: a name
// outside its zone is REFUSED.
//
// Its zone holds:
//
//	<zone>        SOA, NS ns.<zone>, A <Address>, TXT "podnet outside world"
//	www.<zone>    A <Address>
//	ns.<zone>     A <NSAddress> (the server's own address)
//
// Other names in the zone are NXDOMAIN, other types of existing names
// NODATA (both with the SOA in the authority section).
type WorldDNS struct {
	Zone      string     // e.g. example.com
	Address   netip.Addr // the zone's hosts
	NSAddress netip.Addr // the server itself
}

// worldTTL is the TTL of every record of the world zone.
const worldTTL = 300

// WorldTXT is the TXT record of the world zone's apex.
const WorldTXT = "podnet outside world"

func (w *WorldDNS) zone() string { return dns.Fqdn(strings.ToLower(w.Zone)) }

func (w *WorldDNS) soa() dns.RR {
	z := w.zone()
	return &dns.SOA{Hdr: dns.RR_Header{Name: z, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: worldTTL},
		Ns: "ns." + z, Mbox: "hostmaster." + z, Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 60}
}

// records returns the records of name (lower case, fully qualified) and
// whether the name exists in the zone.
func (w *WorldDNS) records(name string) ([]dns.RR, bool) {
	z := w.zone()
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: worldTTL}
	}
	a := func(addr netip.Addr) dns.RR {
		if addr.Is4() {
			return &dns.A{Hdr: hdr(dns.TypeA), A: addr.AsSlice()}
		}
		return &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: addr.AsSlice()}
	}
	switch name {
	case z:
		return []dns.RR{w.soa(), &dns.NS{Hdr: hdr(dns.TypeNS), Ns: "ns." + z}, a(w.Address),
			&dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: []string{WorldTXT}}}, true
	case "www." + z:
		return []dns.RR{a(w.Address)}, true
	case "ns." + z:
		return []dns.RR{a(w.NSAddress)}, true
	}
	return nil, false
}

// Answer builds the reply to one query. It is pure.
func (w *WorldDNS) Answer(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = false
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 {
		m.Rcode = dns.RcodeNotImplemented
		if req.Opcode == dns.OpcodeQuery {
			m.Rcode = dns.RcodeFormatError
		}
		return m
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if q.Qclass != dns.ClassINET || !dns.IsSubDomain(w.zone(), name) {
		m.Rcode = dns.RcodeRefused
		return m
	}
	m.Authoritative = true
	rrs, ok := w.records(name)
	if !ok {
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{w.soa()}
		return m
	}
	for _, rr := range rrs {
		if q.Qtype == dns.TypeANY || rr.Header().Rrtype == q.Qtype {
			rr = dns.Copy(rr)
			rr.Header().Name = q.Name // keep the asker's case
			m.Answer = append(m.Answer, rr)
		}
	}
	if len(m.Answer) == 0 {
		m.Ns = []dns.RR{w.soa()}
	}
	return m
}

// ServeDNS implements dns.Handler.
func (w *WorldDNS) ServeDNS(rw dns.ResponseWriter, req *dns.Msg) {
	m := w.Answer(req)
	if _, isUDP := rw.RemoteAddr().(*net.UDPAddr); isUDP {
		size := 512
		if o := req.IsEdns0(); o != nil {
			size = int(o.UDPSize())
			m.SetEdns0(o.UDPSize(), false)
		}
		m.Truncate(size)
	}
	_ = rw.WriteMsg(m)
}

// Serve answers on listen (ADDR:PORT) over UDP and TCP until ctx ends.
func (w *WorldDNS) Serve(ctx context.Context, listen string) error {
	if _, err := netip.ParseAddrPort(listen); err != nil {
		return fmt.Errorf("world DNS: listen address: %w", err)
	}
	pc, err := net.ListenPacket("udp", listen)
	if err != nil {
		return fmt.Errorf("world DNS: %w", err)
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		pc.Close()
		return fmt.Errorf("world DNS: %w", err)
	}
	servers := []*dns.Server{{PacketConn: pc, Handler: w}, {Listener: l, Handler: w}}
	errc := make(chan error, len(servers))
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() { defer wg.Done(); errc <- s.ActivateAndServe() }()
	}
	select {
	case <-ctx.Done():
		err = nil
	case err = <-errc:
	}
	for _, s := range servers {
		_ = s.Shutdown()
	}
	wg.Wait()
	return err
}

// CheckWorldDNS asks the world's DNS server, from inside the world
// namespace, for the zone's apex until it answers or timeout passes.
func CheckWorldDNS(cfg *plan.Config, timeout time.Duration) error {
	server := netip.AddrPortFrom(cfg.WorldDNSIP, 53).String()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(WorldZone), dns.TypeA)
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		var r *dns.Msg
		last = netns.Do(netns.Path(cfg.WorldNSName()), func() (err error) {
			r, _, err = c.Exchange(q, server)
			return err
		})
		if last == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
			return nil
		}
		if last == nil {
			last = errors.New("answer: " + dns.RcodeToString[r.Rcode])
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("world DNS server at %s does not answer: %v", server, last)
}

// WorldDNSArgv is the world DNS server's command line.
func WorldDNSArgv(cfg *plan.Config, podnet string) []string {
	return []string{podnet, "world-dns",
		"--listen", netip.AddrPortFrom(cfg.WorldDNSIP, 53).String(),
		"--zone", WorldZone,
		"--address", cfg.WorldHostIP().String(),
	}
}

// StartWorldDNS starts the world's DNS server inside the world namespace and
// writes every node's resolver configuration, which names it.
func StartWorldDNS(cfg *plan.Config, podnet string) error {
	for i := 1; i <= cfg.Nodes; i++ {
		if err := os.MkdirAll(cfg.NodeDir(i), 0o755); err != nil {
			return err
		}
		if err := plan.WriteFile(cfg.NodeResolvConfPath(i), []byte(NodeResolvConf(cfg)), 0o644); err != nil {
			return fmt.Errorf("node %s resolv.conf: %w", cfg.NodeName(i), err)
		}
	}
	_, err := proc.Start(cfg.ProcsDir(), proc.Spec{
		Name:    WorldDNSProc,
		Argv:    WorldDNSArgv(cfg, podnet),
		Env:     controlplane.ProcessEnv(),
		LogFile: filepath.Join(cfg.LogsDir(), WorldDNSProc+".log"),
		Netns:   netns.Path(cfg.WorldNSName()),
	})
	if err != nil {
		return fmt.Errorf("world DNS server: %w", err)
	}
	return nil
}
