package dns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
)

// ForwarderConfig configures the forwarder of names outside the cluster.
type ForwarderConfig struct {
	// Upstreams are ADDR:PORT of recursive resolvers (a bare address
	// means port 53). They are tried round-robin; on failure the next
	// one is tried, those that failed recently last.
	Upstreams []string
	// Timeout bounds one exchange with one upstream (default 2 s);
	// Budget bounds the whole question, every upstream tried (default 5 s).
	Timeout, Budget time.Duration
	// MaxConcurrent bounds the upstream questions in flight (default
	// 1000); beyond it questions get SERVFAIL at once.
	MaxConcurrent int
	// CacheSize is the number of replies kept (0: no cache).
	CacheSize int
	// CacheMaxTTL caps how long a reply is cached (default 30 s, as the
	// "cache 30" of Kubernetes' default Corefile).
	CacheMaxTTL time.Duration
	// UDPSize is the EDNS0 buffer size advertised upstream (default 1232).
	UDPSize uint16
	Metrics *Metrics
}

// Defaults fills the zero fields.
func (c *ForwarderConfig) Defaults() {
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.Budget <= 0 {
		c.Budget = 5 * time.Second
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = 1000
	}
	if c.CacheMaxTTL <= 0 {
		c.CacheMaxTTL = 30 * time.Second
	}
	if c.UDPSize == 0 {
		c.UDPSize = defaultUDPSize
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics()
	}
}

// ParseUpstream reads ADDR:PORT or a bare address (port 53).
func ParseUpstream(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("upstream %q is not ADDR:PORT nor an address", s)
	}
	return netip.AddrPortFrom(a, 53), nil
}

// Forwarder answers questions outside the cluster zone from its cache or
// the upstream resolvers. It is safe for concurrent use.
type Forwarder struct {
	// set at construction, read-only
	cfg       ForwarderConfig
	upstreams []*upstream
	cache     *cache // nil: no cache
	sem       chan struct{}
	now       func() time.Time

	next atomic.Uint32 // round-robin start
}

type upstream struct {
	addr      string
	downUntil atomic.Int64 // unix nanoseconds; tried last before then
}

// downFor is how long an upstream that failed is tried after the others.
const downFor = 10 * time.Second

// NewForwarder returns a forwarder; it fails when an upstream does not
// parse or there is none.
func NewForwarder(cfg ForwarderConfig) (*Forwarder, error) {
	cfg.Defaults()
	if len(cfg.Upstreams) == 0 {
		return nil, errors.New("dns forwarder: no upstream")
	}
	f := &Forwarder{cfg: cfg, sem: make(chan struct{}, cfg.MaxConcurrent), now: time.Now}
	var errs []error
	for _, s := range cfg.Upstreams {
		ap, err := ParseUpstream(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f.upstreams = append(f.upstreams, &upstream{addr: ap.String()})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("dns forwarder: %w", err)
	}
	if cfg.CacheSize > 0 {
		f.cache = newCache(cfg.CacheSize, cfg.CacheMaxTTL)
	}
	return f, nil
}

// Forward answers q. The reply holds Rcode, AuthenticatedData and the
// sections (no OPT); the caller owns it. source says who answered (for
// metrics): cache, upstream, limit or error.
func (f *Forwarder) Forward(ctx context.Context, q mdns.Question, do bool) (*mdns.Msg, string) {
	m := f.cfg.Metrics
	key := keyOf(q, do)
	if f.cache != nil {
		if r, ok := f.cache.get(key, f.now()); ok {
			m.CacheHits.Inc()
			return r, sourceCache
		}
		m.CacheMisses.Inc()
		m.CacheEntries.Set(float64(f.cache.len()))
	}
	select {
	case f.sem <- struct{}{}:
		defer func() { <-f.sem }()
	default:
		m.UpstreamRejected.Inc()
		return &mdns.Msg{MsgHdr: mdns.MsgHdr{Rcode: mdns.RcodeServerFailure}}, sourceLimit
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Budget)
	defer cancel()

	req := new(mdns.Msg)
	req.Id = mdns.Id()
	req.RecursionDesired = true
	req.Question = []mdns.Question{q}
	req.SetEdns0(f.cfg.UDPSize, do)

	var last *mdns.Msg
	for _, u := range f.order() {
		r, err := f.timedExchange(ctx, u, req)
		if err != nil {
			m.UpstreamErrors.WithLabelValues(u.addr).Inc()
			u.downUntil.Store(f.now().Add(downFor).UnixNano())
			if ctx.Err() != nil {
				break
			}
			continue
		}
		m.UpstreamRequests.WithLabelValues(u.addr, rcodeLabel(r.Rcode)).Inc()
		r = slim(r)
		switch r.Rcode {
		case mdns.RcodeServerFailure, mdns.RcodeRefused, mdns.RcodeNotImplemented, mdns.RcodeFormatError:
			// This upstream could not answer; another may.
			last = r
			continue
		}
		if f.cache != nil {
			now := f.now()
			f.cache.add(key, r, now)
			m.CacheEntries.Set(float64(f.cache.len()))
			// Hand out what the cache will: TTLs capped from the start
			// (a negative answer's SOA at its negative TTL).
			if c, ok := f.cache.get(key, now); ok {
				r = c
			}
		}
		return r, sourceUpstream
	}
	if last != nil {
		return last, sourceUpstream
	}
	return &mdns.Msg{MsgHdr: mdns.MsgHdr{Rcode: mdns.RcodeServerFailure}}, sourceError
}

// order lists the upstreams to try: round-robin, those that failed within
// downFor last.
func (f *Forwarder) order() []*upstream {
	n := len(f.upstreams)
	start := int(f.next.Add(1)-1) % n
	now := f.now().UnixNano()
	out := make([]*upstream, 0, n)
	var down []*upstream
	for i := range n {
		u := f.upstreams[(start+i)%n]
		if u.downUntil.Load() > now {
			down = append(down, u)
			continue
		}
		out = append(out, u)
	}
	return append(out, down...)
}

// errMismatch is a reply that does not answer the question asked.
var errMismatch = errors.New("reply does not match the question")

// timedExchange is exchange, timed in the upstream duration metric.
func (f *Forwarder) timedExchange(ctx context.Context, u *upstream, req *mdns.Msg) (*mdns.Msg, error) {
	start := time.Now()
	r, err := f.exchange(ctx, u, req)
	result := "ok"
	if err != nil {
		result = "error"
	}
	f.cfg.Metrics.UpstreamDuration.WithLabelValues(u.addr, result).Observe(time.Since(start).Seconds())
	return r, err
}

// exchange asks u over UDP, and again over TCP when the reply is
// truncated (keeping the truncated reply if TCP fails).
func (f *Forwarder) exchange(ctx context.Context, u *upstream, req *mdns.Msg) (*mdns.Msg, error) {
	c := &mdns.Client{Net: "udp", Timeout: f.cfg.Timeout, UDPSize: f.cfg.UDPSize}
	r, _, err := c.ExchangeContext(ctx, req, u.addr)
	if err != nil {
		return nil, fmt.Errorf("udp %s: %w", u.addr, err)
	}
	if r.Truncated {
		tc := &mdns.Client{Net: "tcp", Timeout: f.cfg.Timeout}
		if full, _, err := tc.ExchangeContext(ctx, req, u.addr); err == nil {
			r = full
		}
	}
	q := req.Question[0]
	if !r.Response || len(r.Question) != 1 || !strings.EqualFold(r.Question[0].Name, q.Name) ||
		r.Question[0].Qtype != q.Qtype || r.Question[0].Qclass != q.Qclass {
		return nil, fmt.Errorf("%s: %w", u.addr, errMismatch)
	}
	return r, nil
}

// slim keeps what a forwarded reply carries to the client: the rcode, the
// AD and TC bits and the sections, without the upstream's OPT and TSIG.
func slim(r *mdns.Msg) *mdns.Msg {
	out := &mdns.Msg{MsgHdr: mdns.MsgHdr{Rcode: r.Rcode, AuthenticatedData: r.AuthenticatedData, Truncated: r.Truncated},
		Answer: r.Answer, Ns: r.Ns}
	for _, rr := range r.Extra {
		switch rr.Header().Rrtype {
		case mdns.TypeOPT, mdns.TypeTSIG:
			continue
		}
		out.Extra = append(out.Extra, rr)
	}
	return out
}
