package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// stallAfter is how long a change may wait for a successful sync before
// /healthz reports the proxy as stalled.
const stallAfter = time.Minute

// syncHealth tracks whether syncs keep up with changes, as kube-proxy's
// healthz does: healthy unless a change has waited longer than stallAfter
// without a successful sync.
type syncHealth struct {
	mu          sync.Mutex
	firstChange time.Time // oldest change not yet synced; zero when none
	lastSuccess time.Time
}

func (h *syncHealth) changed() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.firstChange.IsZero() {
		h.firstChange = time.Now()
	}
}

func (h *syncHealth) synced() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.firstChange, h.lastSuccess = time.Time{}, time.Now()
}

// healthy returns whether syncs keep up, and a line saying why.
func (h *syncHealth) healthy(now time.Time) (bool, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.firstChange.IsZero() && now.Sub(h.firstChange) > stallAfter {
		return false, fmt.Sprintf("a change has waited %s for a successful sync (last success %s)",
			now.Sub(h.firstChange).Round(time.Second), h.lastSuccess.Format(time.RFC3339))
	}
	return true, fmt.Sprintf("ok (last successful sync %s)", h.lastSuccess.Format(time.RFC3339))
}

// serveHTTP starts the metrics and healthz servers; they stop with ctx.
// /healthz answers for the service proxy (as kube-proxy's does, for load
// balancers), /healthz/policy for NetworkPolicy enforcement.
func serveHTTP(ctx context.Context, cfg Config, health, policyHealth *syncHealth) error {
	type srv struct {
		addr string
		h    http.Handler
	}
	handler := func(h *syncHealth) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			ok, why := h.healthy(time.Now())
			if !ok {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			fmt.Fprintln(w, why)
		})
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	hz := http.NewServeMux()
	hz.Handle("/healthz", handler(health))
	hz.Handle("/healthz/policy", handler(policyHealth))
	for _, s := range []srv{{cfg.MetricsAddr, mux}, {cfg.HealthzAddr, hz}} {
		if s.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			return fmt.Errorf("agent: listen %s: %w", s.addr, err)
		}
		server := &http.Server{Handler: s.h, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = server.Serve(ln) }()
		go func() { <-ctx.Done(); _ = server.Close() }()
	}
	return nil
}
