package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/podnet/podnet/internal/controller"
)

// serveHTTP starts the metrics and healthz servers; they stop with ctx.
// /metrics serves reg. /healthz answers for the service proxy (as
// kube-proxy's does, for load balancers; always 200 when the proxy is off),
// /healthz/<name> for each controller (routing, cni-config, proxy, policy),
// /livez for all of them (none stalled) and /readyz once every one has
// applied its state (a successful sync since the start) and keeps up.
// /lb/announcements (on the metrics address) is the LoadBalancer
// announcer's view as JSON, /policy/status the NetworkPolicy enforcer's
// (package policy/status; 404 when policy is off), /flows the node's flow
// records (package flow). The metrics address serves the health paths
// too, so that probes have them where kube-proxy's health address is
// taken (HealthzAddr empty, kube-proxy beside the agent).
func serveHTTP(ctx context.Context, cfg Config, reg *prometheus.Registry, ctrls []*controller.Controller, pages map[string]http.Handler) error {
	hz := healthMux(ctrls)
	for _, s := range []struct {
		addr string
		h    http.Handler
	}{{cfg.MetricsAddr, metricsMux(reg, hz, pages)}, {cfg.HealthzAddr, hz}} {
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

// metricsMux serves /metrics, the pages (path to handler: /lb/announcements,
// /flows) and the health paths of hz.
func metricsMux(reg *prometheus.Registry, hz http.Handler, pages map[string]http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	for path, h := range pages {
		mux.Handle(path, h)
	}
	for _, p := range []string{"/healthz", "/healthz/", "/livez", "/readyz"} {
		mux.Handle(p, hz)
	}
	return mux
}

// healthMux serves /healthz/<name> for every controller, /healthz for the
// proxy, /livez and /readyz for all controllers.
func healthMux(ctrls []*controller.Controller) *http.ServeMux {
	hz := http.NewServeMux()
	var proxyHealth http.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok (the service proxy is off)")
	})
	for _, c := range ctrls {
		h := controller.HealthHandler(c)
		hz.Handle("/healthz/"+c.Name(), h)
		if c.Name() == "proxy" {
			proxyHealth = h
		}
	}
	hz.Handle("/healthz", proxyHealth)
	hz.Handle("/livez", allHandler(ctrls, (*controller.Controller).Healthy))
	hz.Handle("/readyz", allHandler(ctrls, (*controller.Controller).Ready))
	return hz
}

// allHandler answers 200 when check passes for every controller, else 503;
// the body has one line per controller.
func allHandler(ctrls []*controller.Controller, check func(*controller.Controller, time.Time) (bool, string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		now := time.Now()
		var b strings.Builder
		code := http.StatusOK
		for _, c := range ctrls {
			ok, why := check(c, now)
			if !ok {
				code = http.StatusServiceUnavailable
			}
			fmt.Fprintf(&b, "%s: %s\n", c.Name(), why)
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, b.String())
	})
}
