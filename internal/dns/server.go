package dns

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// defaultUDPSize is the EDNS0 buffer size the server advertises and asks
// upstreams for: 1232 bytes avoids IP fragmentation on any path (DNS Flag
// Day 2020).
const defaultUDPSize = 1232

// ServerConfig configures a Server.
type ServerConfig struct {
	Zone *Zone
	// Forwarder answers names outside the zone, and reverse names outside
	// the cluster's ranges; nil means such questions are answered REFUSED
	// (as an authoritative-only server does) and the reverse names by the
	// zone (NXDOMAIN), never forwarded anywhere.
	Forwarder *Forwarder
	// UDPSize is the EDNS0 buffer size advertised to clients (default 1232).
	UDPSize uint16
	Metrics *Metrics // nil: counted nowhere
	Log     *slog.Logger
}

// Server answers DNS messages: the cluster zone from Zone, other names
// through the Forwarder. It implements mdns.Handler.
//
// What every request gets:
//   - not exactly one question, more than one OPT, or an OPT qtype: FORMERR;
//   - an opcode other than QUERY: NOTIMP; an EDNS version other than 0: BADVERS;
//   - a class other than IN (or ANY), AXFR and IXFR: REFUSED;
//   - in-zone names before the zone is ready: SERVFAIL (never NXDOMAIN);
//   - in-zone names: the zone's answer, AA set;
//   - reverse names (in-addr.arpa., ip6.arpa.): the zone's answer when a
//     cluster record owns the name or it lies inside the cluster's ranges
//     (NXDOMAIN when nothing owns it); others are forwarded, and answered
//     by the zone (NXDOMAIN with the SOA) only without a forwarder;
//   - other names: the forwarder's answer (REFUSED without a forwarder,
//     SERVFAIL when the upstream limit is reached or no upstream answers).
//
// Every response echoes the question as asked and has RA set. A client
// that sent an OPT gets one back with the server's buffer size (and DO if
// it set DO). UDP responses larger than the client's limit (512 bytes
// without EDNS0) are truncated with TC set; TCP gets everything. A
// response (QR set) is dropped without an answer.
type Server struct {
	// set at construction, read-only
	zone    *Zone
	fwd     *Forwarder
	udpSize uint16
	metrics *Metrics
	log     *slog.Logger
}

var _ mdns.Handler = (*Server)(nil)

// NewServer returns a server.
func NewServer(c ServerConfig) *Server {
	if c.UDPSize < mdns.MinMsgSize {
		c.UDPSize = defaultUDPSize
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics()
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return &Server{zone: c.Zone, fwd: c.Forwarder, udpSize: c.UDPSize, metrics: c.Metrics, log: c.Log}
}

// ServeDNS answers r on w. It never panics: a panic is recovered, counted,
// and answered SERVFAIL when nothing was written yet.
func (s *Server) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	start := time.Now()
	wrote := false
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		s.metrics.Panics.Inc()
		s.log.Error("panic while answering a DNS request", "panic", v, "stack", string(debug.Stack()))
		if !wrote {
			s.writeServfail(w, r)
		}
	}()
	if r == nil || r.Response {
		return
	}
	m, source := s.reply(w, r)
	qtype := uint16(0)
	if len(r.Question) == 1 {
		qtype = r.Question[0].Qtype
	}
	s.metrics.Requests.WithLabelValues(qtypeLabel(qtype), rcodeLabel(m.Rcode)).Inc()
	s.metrics.Duration.WithLabelValues(source).Observe(time.Since(start).Seconds())
	wrote = true
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("writing a DNS response failed", "remote", w.RemoteAddr(), "err", err)
	}
}

// writeServfail answers SERVFAIL after a panic; it must not panic itself.
func (s *Server) writeServfail(w mdns.ResponseWriter, r *mdns.Msg) {
	defer func() { _ = recover() }()
	m := &mdns.Msg{MsgHdr: mdns.MsgHdr{Response: true, Rcode: mdns.RcodeServerFailure, RecursionAvailable: true}}
	if r != nil {
		m.Id = r.Id
		m.Opcode = r.Opcode
		if len(r.Question) == 1 {
			m.Question = r.Question
		}
	}
	_ = w.WriteMsg(m)
}

// reply builds the response to r, ready to write on w.
func (s *Server) reply(w mdns.ResponseWriter, r *mdns.Msg) (*mdns.Msg, string) {
	m := new(mdns.Msg)
	m.Id = r.Id
	m.Response = true
	m.Opcode = r.Opcode
	m.RecursionDesired = r.RecursionDesired
	m.CheckingDisabled = r.CheckingDisabled
	m.RecursionAvailable = true

	var opts int
	for _, rr := range r.Extra {
		if rr.Header().Rrtype == mdns.TypeOPT {
			opts++
		}
	}
	opt := r.IsEdns0()
	if opts > 1 || len(r.Question) != 1 {
		m.Rcode = mdns.RcodeFormatError
		return s.finish(w, m, nil), sourceInvalid
	}
	q := r.Question[0]
	m.Question = []mdns.Question{q}
	switch {
	case r.Opcode != mdns.OpcodeQuery:
		m.Rcode = mdns.RcodeNotImplemented
		return s.finish(w, m, nil), sourceInvalid
	case opt != nil && opt.Version() != 0:
		m.Rcode = mdns.RcodeBadVers
		return s.finish(w, m, opt), sourceInvalid
	case q.Qtype == mdns.TypeOPT:
		m.Rcode = mdns.RcodeFormatError
		return s.finish(w, m, opt), sourceInvalid
	case q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY,
		q.Qtype == mdns.TypeAXFR, q.Qtype == mdns.TypeIXFR:
		m.Rcode = mdns.RcodeRefused
		return s.finish(w, m, opt), sourceRefused
	}

	if rep, in := s.zoneAnswer(q); in {
		m.Rcode = rep.Rcode
		m.Authoritative = rep.Authoritative
		m.Answer, m.Ns, m.Extra = dropNil(rep.Answer), dropNil(rep.Ns), dropNil(rep.Extra)
		s.chase(m, q, opt != nil && opt.Do())
		return s.finish(w, m, opt), sourceZone
	}
	if s.fwd == nil {
		m.Rcode = mdns.RcodeRefused
		return s.finish(w, m, opt), sourceRefused
	}
	do := opt != nil && opt.Do()
	f, source := s.fwd.Forward(context.Background(), q, do)
	m.Rcode = f.Rcode
	m.AuthenticatedData = f.AuthenticatedData && (do || r.AuthenticatedData)
	m.Truncated = f.Truncated
	m.Answer, m.Ns, m.Extra = f.Answer, f.Ns, f.Extra
	// The upstream (or the cache, shared by every spelling of the name)
	// may have spelled the owner differently: answer as asked.
	for _, rr := range m.Answer {
		if h := rr.Header(); h.Name != q.Name && strings.EqualFold(h.Name, q.Name) {
			h.Name = q.Name
		}
	}
	return s.finish(w, m, opt), source
}

// maxChase bounds the CNAMEs followed for one question.
const maxChase = 8

// chase follows a CNAME the zone answered (an ExternalName Service) for
// any other type, as a recursive server does for its clients: stub
// resolvers do not follow CNAMEs themselves. The target is answered by the
// zone when it is in it, else through the forwarder; the last name's rcode
// is the reply's (RFC 6604), and a forwarded part makes it not
// authoritative.
func (s *Server) chase(m *mdns.Msg, q mdns.Question, do bool) {
	if q.Qtype == mdns.TypeCNAME || q.Qtype == mdns.TypeANY {
		return
	}
	seen := map[string]bool{strings.ToLower(q.Name): true}
	for range maxChase {
		if m.Rcode != mdns.RcodeSuccess || len(m.Answer) == 0 {
			return
		}
		cname, ok := m.Answer[len(m.Answer)-1].(*mdns.CNAME)
		if !ok {
			return
		}
		target := strings.ToLower(cname.Target)
		if seen[target] {
			return // a loop: answer with what there is
		}
		seen[target] = true
		tq := mdns.Question{Name: cname.Target, Qtype: q.Qtype, Qclass: q.Qclass}
		if rep, in := s.zoneAnswer(tq); in {
			m.Rcode = rep.Rcode
			m.Answer = append(m.Answer, dropNil(rep.Answer)...)
			if len(rep.Answer) == 0 {
				m.Ns = dropNil(rep.Ns)
			}
			continue
		}
		if s.fwd == nil {
			return
		}
		f, _ := s.fwd.Forward(context.Background(), tq, do)
		m.Authoritative = false
		m.Rcode = f.Rcode
		m.Answer = append(m.Answer, f.Answer...)
		if len(f.Answer) == 0 {
			m.Ns = f.Ns
		} else {
			m.Ns = nil
		}
		return // the upstream followed the rest of the chain
	}
}

// zoneAnswer asks the zone, and says whether its reply is the one to
// send. Before the zone has data, every name under the zone or a reverse
// zone is the zone's and gets SERVFAIL (only the data could tell a reverse
// name of a cluster address from another); names outside go to the
// forwarder already. A reverse name that is not the cluster's alone goes
// to the forwarder when there is one.
func (s *Server) zoneAnswer(q mdns.Question) (Reply, bool) {
	rep, in := s.zone.Answer(q)
	return rep, in && !(rep.Forward && s.fwd != nil)
}

// finish adds the OPT record for an EDNS0 client and fits the message to
// the transport: UDP replies are truncated to the client's size (512
// without EDNS0), TCP replies are compressed and complete up to 64 KiB.
func (s *Server) finish(w mdns.ResponseWriter, m *mdns.Msg, opt *mdns.OPT) *mdns.Msg {
	size := mdns.MinMsgSize
	if opt != nil {
		o := &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
		o.SetUDPSize(s.udpSize)
		if opt.Do() {
			o.SetDo()
		}
		m.Extra = append(m.Extra, o)
		size = max(int(opt.UDPSize()), mdns.MinMsgSize)
	} else if m.Rcode > 0xF {
		// An extended rcode needs an OPT the client cannot read.
		m.Rcode = mdns.RcodeServerFailure
	}
	if !isUDP(w) {
		// TCP carries up to 64 KiB: only a huge headless Service gets
		// truncated there.
		size = mdns.MaxMsgSize
	}
	m.Truncate(size)
	if !isUDP(w) {
		m.Compress = true
	}
	return m
}

func isUDP(w mdns.ResponseWriter) bool {
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	return !tcp
}

func dropNil(rrs []mdns.RR) []mdns.RR {
	out := rrs[:0:0]
	for _, rr := range rrs {
		if rr != nil {
			out = append(out, rr)
		}
	}
	return out
}

// acceptMsg is the server's MsgAcceptFunc: it drops responses and
// rejects messages with more records than a query carries, and leaves
// every other check to ServeDNS (so that it is answered and counted in
// one place).
func acceptMsg(dh mdns.Header) mdns.MsgAcceptAction {
	const qr = 1 << 15
	switch {
	case dh.Bits&qr != 0:
		return mdns.MsgIgnore
	case dh.Ancount > 1, dh.Nscount > 1, dh.Arcount > 2:
		return mdns.MsgReject
	}
	return mdns.MsgAccept
}

// Serve answers on pc (UDP) and ln (TCP) until ctx ends; either may be
// nil. It returns the first serving error, or nil after ctx ended.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn, ln net.Listener) error {
	var servers []*mdns.Server
	if pc != nil {
		servers = append(servers, &mdns.Server{PacketConn: pc, Handler: s, MsgAcceptFunc: acceptMsg, UDPSize: 4096})
	}
	if ln != nil {
		servers = append(servers, &mdns.Server{Listener: ln, Handler: s, MsgAcceptFunc: acceptMsg,
			ReadTimeout: 2 * time.Second, IdleTimeout: func() time.Duration { return 10 * time.Second }})
	}
	if len(servers) == 0 {
		return errors.New("dns: nothing to serve on")
	}
	errc := make(chan error, len(servers))
	for _, srv := range servers {
		go func() { errc <- srv.ActivateAndServe() }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.ShutdownContext(sctx)
	}
	return err
}
