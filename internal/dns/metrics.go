package dns

import (
	"fmt"
	"net/http"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/podnet/podnet/internal/controller"
)

// Metrics are the server's own Prometheus metrics; the zone rebuilds are
// counted by the common controller metrics (package controller, controller
// "dns"). Every label has a bounded
// set of values: qtypes and rcodes outside miekg/dns's tables count as
// "other", upstreams are the configured ones.
type Metrics struct {
	Requests         *prometheus.CounterVec   // qtype, rcode
	Duration         *prometheus.HistogramVec // source
	CacheHits        prometheus.Counter
	CacheMisses      prometheus.Counter
	CacheEntries     prometheus.Gauge
	UpstreamRequests *prometheus.CounterVec   // upstream, rcode
	UpstreamErrors   *prometheus.CounterVec   // upstream
	UpstreamDuration *prometheus.HistogramVec // upstream, result
	UpstreamRejected prometheus.Counter
	Panics           prometheus.Counter
	ZoneReady        prometheus.Gauge
}

// The values of the Duration metric's source label: who answered.
const (
	sourceZone     = "zone"     // the cluster zone
	sourceCache    = "cache"    // the forwarder's cache
	sourceUpstream = "upstream" // an upstream server
	sourceLimit    = "limit"    // SERVFAIL: too many upstream queries in flight
	sourceError    = "error"    // SERVFAIL: no upstream answered
	sourceRefused  = "refused"  // REFUSED: no upstream configured, or a zone transfer
	sourceInvalid  = "invalid"  // FORMERR, NOTIMP, BADVERS
)

// NewMetrics returns unregistered metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "podnet_dns_requests_total",
			Help: "DNS requests answered, by question type and response code."}, []string{"qtype", "rcode"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "podnet_dns_request_duration_seconds",
			Help:    "Time to answer a request, by who answered: zone, cache, upstream, or limit/error/refused/invalid.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 18)}, []string{"source"}), // 50 µs .. 6.5 s
		CacheHits: prometheus.NewCounter(prometheus.CounterOpts{Name: "podnet_dns_cache_hits_total",
			Help: "Forwarded questions answered from the cache."}),
		CacheMisses: prometheus.NewCounter(prometheus.CounterOpts{Name: "podnet_dns_cache_misses_total",
			Help: "Forwarded questions not in the cache."}),
		CacheEntries: prometheus.NewGauge(prometheus.GaugeOpts{Name: "podnet_dns_cache_entries",
			Help: "Entries in the forwarder's cache (positive and negative)."}),
		UpstreamRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "podnet_dns_upstream_responses_total",
			Help: "Responses received from upstream servers, by upstream and response code."}, []string{"upstream", "rcode"}),
		UpstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "podnet_dns_upstream_errors_total",
			Help: "Upstream exchanges that failed (timeout, network error, mismatched reply), by upstream."}, []string{"upstream"}),
		UpstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "podnet_dns_upstream_request_duration_seconds",
			Help:    "Time of one exchange with one upstream server (UDP, and TCP after a truncated reply), by upstream and result (ok, error).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 17)}, []string{"upstream", "result"}), // 100 µs .. 6.5 s
		UpstreamRejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "podnet_dns_upstream_rejected_total",
			Help: "Questions answered SERVFAIL at once because the concurrent upstream query limit was reached."}),
		Panics: prometheus.NewCounter(prometheus.CounterOpts{Name: "podnet_dns_panics_total",
			Help: "Requests whose handling panicked (recovered; the client got SERVFAIL or nothing)."}),
		ZoneReady: prometheus.NewGauge(prometheus.GaugeOpts{Name: "podnet_dns_zone_ready",
			Help: "1 once the informers have synced and the cluster zone answers."}),
	}
}

// Register adds the metrics to r.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.Requests, m.Duration, m.CacheHits, m.CacheMisses, m.CacheEntries,
		m.UpstreamRequests, m.UpstreamErrors, m.UpstreamDuration, m.UpstreamRejected, m.Panics, m.ZoneReady} {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("dns metrics: %w", err)
		}
	}
	return nil
}

// newMetrics returns the server's metrics, the zone controller's, and the
// registry they are served from (docs/metrics.md lists them).
func newMetrics() (*Metrics, *controller.Metrics, *prometheus.Registry, error) {
	m, cm := NewMetrics(), controller.NewMetrics()
	reg, err := controller.NewRegistry(m, cm)
	return m, cm, reg, err
}

// qtypeLabel names a question type for a label; unknown types are "other"
// so that a client cannot grow the label set.
func qtypeLabel(t uint16) string {
	if s, ok := mdns.TypeToString[t]; ok {
		return s
	}
	return "other"
}

// rcodeLabel names a response code for a label.
func rcodeLabel(rc int) string {
	if s, ok := mdns.RcodeToString[rc]; ok {
		return s
	}
	return "other"
}

// HTTPHandler serves /health (200 while the process serves), /ready (200
// once the zone has data) and /metrics from g.
func HTTPHandler(zone *Zone, g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "OK")
	})
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !zone.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready: the informers have not synced yet")
			return
		}
		fmt.Fprintln(w, "OK")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return mux
}
