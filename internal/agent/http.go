package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/podnet/podnet/internal/controller"
)

// serveHTTP starts the metrics and healthz servers; they stop with ctx.
// /metrics serves reg. /healthz answers for the service proxy (as
// kube-proxy's does, for load balancers; always 200 when the proxy is off),
// /healthz/<name> for each controller (routing, cni-config, proxy, policy).
// /lb/announcements (on the metrics address) is the LoadBalancer
// announcer's view as JSON.
func serveHTTP(ctx context.Context, cfg Config, reg *prometheus.Registry, ctrls []*controller.Controller, lb http.Handler) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	mux.Handle("/lb/announcements", lb)
	for _, s := range []struct {
		addr string
		h    http.Handler
	}{{cfg.MetricsAddr, mux}, {cfg.HealthzAddr, healthMux(ctrls)}} {
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

// healthMux serves /healthz/<name> for every controller and /healthz for
// the proxy.
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
	return hz
}
