package ipam

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podnet/podnet/internal/controller"
)

// Metrics are the LoadBalancer IPAM controller's own metrics
// (podnet_lbipam_*; docs/metrics.md).
type Metrics struct {
	Services     *prometheus.GaugeVec   // state
	Addresses    *prometheus.GaugeVec   // state
	StatusWrites *prometheus.CounterVec // object
	Leader       prometheus.Gauge
}

var _ controller.MetricSet = (*Metrics)(nil)

// NewMetrics returns unregistered metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		Services: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "podnet_lbipam_services",
			Help: "LoadBalancer Services podnet serves, by state (assigned, pending)."}, []string{"state"}),
		Addresses: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "podnet_lbipam_pool_addresses",
			Help: "Addresses of all pools, by state (used, free; free saturates at 2^63-1)."}, []string{"state"}),
		StatusWrites: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "podnet_lbipam_status_writes_total",
			Help: "Status writes, by object (service, pool)."}, []string{"object"}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "podnet_lbipam_leader",
			Help: "1 while this replica is the active one (holds the Lease), else 0."}),
	}
}

// Register adds the metrics to r.
func (m *Metrics) Register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.Services, m.Addresses, m.StatusWrites, m.Leader} {
		errs = append(errs, r.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lb metrics: %w", err)
	}
	return nil
}

// newRegistry returns the process's metrics and registry.
func newRegistry() (*Metrics, *controller.Metrics, *prometheus.Registry, error) {
	m, cm := NewMetrics(), controller.NewMetrics()
	reg, err := controller.NewRegistry(cm, m)
	if err != nil {
		return nil, nil, nil, err
	}
	return m, cm, reg, nil
}
