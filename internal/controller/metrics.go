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
	Events       *prometheus.CounterVec   // controller, outcome

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
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "podnet_controller_events_total",
			Help: "Informer events by controller and outcome: changed (marked and poked the runner), " +
				"unchanged (an update carrying the resourceVersion the cache had: a resync or a relist; nothing to do), " +
				"ignored (the source's Ignore said nothing the sync reads changed)."}, []string{"controller", "outcome"}),
		names: map[string]bool{},
	}
}

// The outcomes of an informer event (label outcome of Events).
const (
	EventChanged   = "changed"
	EventUnchanged = "unchanged"
	EventIgnored   = "ignored"
)

// Register adds the metrics to r.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.SyncDuration, m.SyncFailures, m.LastSuccess, m.Events} {
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

var (
	descName   = regexp.MustCompile(`fqName: "([^"]+)"`)
	descLabels = regexp.MustCompile(`variableLabels: \{([^}]*)\}\}$`)
	docName    = regexp.MustCompile("`(podnet_[a-z0-9_]*[a-z0-9])`")
)

// Describe returns the metrics c describes (a registry describes
// everything registered in it), by name, with their variable labels.
func Describe(c prometheus.Collector) map[string][]string {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	out := map[string][]string{}
	for d := range ch {
		s := d.String()
		n := descName.FindStringSubmatch(s)
		if n == nil {
			continue
		}
		var labels []string
		if l := descLabels.FindStringSubmatch(s); l != nil && l[1] != "" {
			labels = strings.Split(l[1], ",")
		}
		out[n[1]] = labels
	}
	return out
}

// DocProblems returns what doc, the text of docs/metrics.md, gets wrong
// about the podnet_ metrics c describes: a metric without a line that
// names it in backquotes, a label missing from that line, and a metric the
// document names, that owns says belongs to c, but c does not describe.
// Tests keep the document true with it.
func DocProblems(c prometheus.Collector, doc string, owns func(name string) bool) []string {
	have := Describe(c)
	var problems []string
	for name, labels := range have {
		if !strings.HasPrefix(name, "podnet_") {
			continue
		}
		line := ""
		for l := range strings.Lines(doc) {
			if strings.Contains(l, "`"+name+"`") {
				line = l
				break
			}
		}
		if line == "" {
			problems = append(problems, name+" is not documented")
			continue
		}
		for _, label := range labels {
			if !strings.Contains(line, "`"+label+"`") {
				problems = append(problems, fmt.Sprintf("%s: label %s is not documented on its line", name, label))
			}
		}
	}
	for _, m := range docName.FindAllStringSubmatch(doc, -1) {
		if _, ok := have[m[1]]; !ok && owns(m[1]) {
			problems = append(problems, m[1]+" is documented but not registered")
		}
	}
	slices.Sort(problems)
	return slices.Compact(problems)
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
