package proxy

import (
	"fmt"
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the proxy's own Prometheus metrics; its failures and last
// success are the common controller metrics (package controller). Register
// them with Register.
type Metrics struct {
	SyncDuration       *prometheus.HistogramVec
	Operations         prometheus.Gauge
	ServicePorts       prometheus.Gauge
	Endpoints          prometheus.Gauge
	ConntrackDeleted   prometheus.Counter
	ProgrammingLatency prometheus.Histogram

	// mu guards seen: the last EndpointSlice change already measured.
	mu    sync.Mutex
	seen  map[string]time.Time
	swept time.Time
}

// NewMetrics makes the metrics (unregistered).
func NewMetrics() *Metrics {
	buckets := prometheus.ExponentialBuckets(0.001, 2, 16) // 1 ms .. 32 s
	return &Metrics{
		SyncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "podnet_proxy_sync_duration_seconds",
			Help: "Time to compute and apply the proxy's nftables table, by kind (full or partial).", Buckets: buckets}, []string{"kind"}),
		Operations: prometheus.NewGauge(prometheus.GaugeOpts{Name: "podnet_proxy_transaction_operations",
			Help: "Operations (rules, elements, chains) in the last transaction."}),
		ServicePorts: prometheus.NewGauge(prometheus.GaugeOpts{Name: "podnet_proxy_service_ports",
			Help: "Service ports programmed."}),
		Endpoints: prometheus.NewGauge(prometheus.GaugeOpts{Name: "podnet_proxy_endpoints",
			Help: "Endpoints programmed, over all Service ports."}),
		ConntrackDeleted: prometheus.NewCounter(prometheus.CounterOpts{Name: "podnet_proxy_conntrack_entries_deleted_total",
			Help: "Stale UDP conntrack entries deleted."}),
		ProgrammingLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "podnet_proxy_network_programming_duration_seconds",
			Help:    "From an EndpointSlice change (its last-change-trigger-time) to the rules being in the kernel.",
			Buckets: buckets}),
		seen: map[string]time.Time{},
	}
}

// Register adds the metrics to r.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.SyncDuration, m.Operations, m.ServicePorts,
		m.Endpoints, m.ConntrackDeleted, m.ProgrammingLatency} {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("proxy metrics: %w", err)
		}
	}
	return nil
}

// Observe records a successful sync; slices are the EndpointSlices it read
// (at least those of the Services that changed), whose trigger times give
// the network programming latency, each change once. Changes older than
// latencyHorizon are not measured (their bookkeeping is dropped).
func (m *Metrics) Observe(res SyncResult, slices []*discoveryv1.EndpointSlice, now time.Time) {
	kind := "partial"
	if res.Full {
		kind = "full"
	}
	m.SyncDuration.WithLabelValues(kind).Observe(res.Duration.Seconds())
	m.Operations.Set(float64(res.Operations))
	m.ServicePorts.Set(float64(res.ServicePorts))
	m.Endpoints.Set(float64(res.Endpoints))
	m.ConntrackDeleted.Add(float64(res.ConntrackDeleted))
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, sl := range slices {
		key := sl.Namespace + "/" + sl.Name
		s, ok := sl.Annotations["endpoints.kubernetes.io/last-change-trigger-time"]
		if !ok {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || !t.After(m.seen[key]) || now.Sub(t) > latencyHorizon {
			continue
		}
		m.seen[key] = t
		if d := now.Sub(t); d >= 0 {
			m.ProgrammingLatency.Observe(d.Seconds())
		}
	}
	if now.Sub(m.swept) > latencyHorizon {
		m.swept = now
		for k, t := range m.seen {
			if now.Sub(t) > latencyHorizon {
				delete(m.seen, k)
			}
		}
	}
}

// latencyHorizon bounds the programming latency measured, and how long a
// measured change is remembered.
const latencyHorizon = 15 * time.Minute
