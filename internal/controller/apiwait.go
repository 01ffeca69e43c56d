package controller

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"
)

// apiProbeInterval is how often a process whose API server refuses
// connections tries to connect again (jittered up to twice that): one TCP
// connect, not one request per informer.
const apiProbeInterval = time.Second

// InformerConfig returns a copy of rc for the client of a process's
// informers: while the API server refuses connections (it is restarting, or
// down), their reads (GET: lists and watches) wait until it accepts them
// again, instead of failing. Other requests pass unchanged.
//
// Why: a reflector backs off after each failed list or watch, doubling its
// wait up to 30 s with as much jitter again, so after a minute without the
// API server each informer sleeps up to a minute more before it notices
// the return, and the node follows no change meanwhile. A read that waits
// instead never fails: the informers relist (once) within about a second
// of the return, and the waiting costs the API server one TCP connect per
// process per second, less than the reflectors' own retries.
//
// Dangerous: a read through this client blocks for as long as the API
// server refuses connections (until its context ends); use it for
// informers, never for a read whose caller must go on without an answer.
func InformerConfig(rc *rest.Config, log *slog.Logger) *rest.Config {
	c := rest.CopyConfig(rc)
	g := newAPIGate(apiAddress(rc.Host), apiProbeInterval, log)
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &gatedTransport{next: rt, gate: g} })
	return c
}

// apiAddress is host:port of the API server URL (or host[:port]).
func apiAddress(host string) string {
	u, err := url.Parse(host)
	if err != nil || u.Host == "" {
		u = &url.URL{Scheme: "https", Host: host}
	}
	if u.Port() != "" {
		return u.Host
	}
	port := "443"
	if u.Scheme == "http" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// apiGate says whether the API server accepts connections; once a request
// was refused it is closed until a probe connects.
type apiGate struct {
	// set at construction, read-only
	addr     string
	interval time.Duration
	log      *slog.Logger

	// mu guards the fields below.
	mu   sync.Mutex
	open chan struct{} // closed while the gate is open
	down time.Time     // when it closed (zero while open)
}

func newAPIGate(addr string, interval time.Duration, log *slog.Logger) *apiGate {
	if log == nil {
		log = slog.Default()
	}
	open := make(chan struct{})
	close(open)
	return &apiGate{addr: addr, interval: interval, log: log, open: open}
}

// wait returns once the gate is open, or with ctx's error.
func (g *apiGate) wait(ctx context.Context) error {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// refused closes the gate, if open, and starts probing.
func (g *apiGate) refused() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.down.IsZero() {
		return
	}
	g.down = time.Now()
	g.open = make(chan struct{})
	g.log.Warn("the API server refuses connections; informers wait for it", "address", g.addr)
	go g.probe()
}

// probe connects to the API server every interval (jittered) until it
// accepts, then opens the gate.
func (g *apiGate) probe() {
	d := net.Dialer{Timeout: g.interval}
	for {
		time.Sleep(g.interval + rand.N(g.interval))
		c, err := d.Dial("tcp", g.addr)
		if err != nil {
			continue
		}
		_ = c.Close()
		g.mu.Lock()
		g.log.Info("the API server accepts connections again; informers go on", "address", g.addr,
			"after", time.Since(g.down).Round(time.Millisecond))
		g.down = time.Time{}
		close(g.open)
		g.mu.Unlock()
		return
	}
}

// gatedTransport holds reads at the gate while the API server refuses
// connections, and sends a read again that was refused.
type gatedTransport struct {
	next http.RoundTripper
	gate *apiGate
}

func (t *gatedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet {
		return t.next.RoundTrip(req)
	}
	for {
		if err := t.gate.wait(req.Context()); err != nil {
			return nil, err
		}
		resp, err := t.next.RoundTrip(req) // a GET has no body: it can be sent again
		if err == nil || !utilnet.IsConnectionRefused(err) {
			return resp, err
		}
		t.gate.refused()
	}
}

// WrappedRoundTripper lets client-go see the transport underneath.
func (t *gatedTransport) WrappedRoundTripper() http.RoundTripper { return t.next }
