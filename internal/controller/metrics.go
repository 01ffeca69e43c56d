package controller

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the metrics every controller has, one series per controller
// (label controller). One Metrics serves all the controllers of a process;
// register it once with Register.
type Metrics struct {
	SyncDuration *prometheus.HistogramVec // controller
	SyncFailures *prometheus.CounterVec   // controller
	LastSuccess  *prometheus.GaugeVec     // controller

	// mu guards names: the controllers already counted here.
	mu    sync.Mutex
	names map[string]bool
}

// NewMetrics returns unregistered metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		SyncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "podnet_controller_sync_duration_seconds",
			Help:    "Time one sync took, failed or not, by controller.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"controller"}), // 1 ms .. 32 s
		SyncFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "podnet_controller_sync_failures_total",
			Help: "Syncs that failed (what they program stays as it was; the sync is retried with backoff), by controller."}, []string{"controller"}),
		LastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "podnet_controller_last_success_timestamp_seconds",
			Help: "Unix time of the last successful sync, by controller (0: none yet)."}, []string{"controller"}),
		names: map[string]bool{},
	}
}

// Register adds the metrics to r.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.SyncDuration, m.SyncFailures, m.LastSuccess} {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("controller metrics: %w", err)
		}
	}
	return nil
}

// claim reserves name's series, so that two controllers never share one.
func (m *Metrics) claim(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.names[name] {
		return fmt.Errorf("controller %q already exists", name)
	}
	m.names[name] = true
	return nil
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// MetricNames returns the sorted names of the metrics c describes (a
// registry describes everything registered in it).
func MetricNames(c prometheus.Collector) []string {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	var names []string
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Undocumented returns the podnet metrics c describes that doc (the text of
// docs/metrics.md) does not name in backquotes; tests keep the document
// true with it.
func Undocumented(c prometheus.Collector, doc string) []string {
	var out []string
	for _, n := range MetricNames(c) {
		if strings.HasPrefix(n, "podnet_") && !strings.Contains(doc, "`"+n+"`") {
			out = append(out, n)
		}
	}
	return out
}

// MetricSet is a component's metrics: NewMetrics declares them, Register
// adds them to a registry.
type MetricSet interface {
	Register(prometheus.Registerer) error
}

// NewRegistry returns the registry a process serves on /metrics: the Go
// runtime and process collectors, and sets.
func NewRegistry(sets ...MetricSet) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	if err := errors.Join(reg.Register(collectors.NewGoCollector()),
		reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))); err != nil {
		return nil, fmt.Errorf("runtime metrics: %w", err)
	}
	for _, s := range sets {
		if err := s.Register(reg); err != nil {
			return nil, err
		}
	}
	return reg, nil
}
