package policy

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the policy enforcer's own Prometheus metrics; its failures and
// last success are the common controller metrics (package controller).
type Metrics struct {
	SyncDuration *prometheus.HistogramVec // kind: full, partial
	Isolated     *prometheus.GaugeVec     // direction: ingress, egress
	Unusable     prometheus.Gauge
}

// NewMetrics returns unregistered metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		SyncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "podnet_policy_sync_duration_seconds",
			Help:    "Time to compile NetworkPolicies and program them, by kind (full, partial).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}, []string{"kind"}),
		Isolated: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "podnet_policy_isolated_pod_addresses",
			Help: "Addresses of this node's pods isolated, by direction."}, []string{"direction"}),
		Unusable: prometheus.NewGauge(prometheus.GaugeOpts{Name: "podnet_policy_unusable_policies",
			Help: "NetworkPolicies the agent could not use as they are (their last good version, or their usable part, applies)."}),
	}
}

// Register adds the metrics to r.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.SyncDuration, m.Isolated, m.Unusable} {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("policy metrics: %w", err)
		}
	}
	return nil
}

// observe records a successful sync that wrote want and took d.
func (m *Metrics) observe(res SyncResult, want Desired, d time.Duration) {
	kind := "partial"
	if res.Full {
		kind = "full"
	}
	m.SyncDuration.WithLabelValues(kind).Observe(d.Seconds())
	for _, dir := range []Direction{Ingress, Egress} {
		n := len(want[dir.String()+"-isolated-v4"]) + len(want[dir.String()+"-isolated-v6"])
		m.Isolated.WithLabelValues(dir.String()).Set(float64(n))
	}
}
