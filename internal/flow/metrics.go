package flow

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Loss reasons of podnet_flow_records_dropped_total.
const (
	LossRateLimit         = "rate-limit"         // over logrule.Rate; read from the tables' counters
	LossNFLOGOverflow     = "nflog-overflow"     // the NFLOG socket's buffer was full (ENOBUFS)
	LossConntrackOverflow = "conntrack-overflow" // the conntrack event socket's buffer was full
	LossUnparsable        = "unparsable"         // a logged packet the collector could not read
	LossSlowReader        = "slow-reader"        // a /flows follower fell behind
)

const droppedHelp = "Flow records lost, by reason: rate-limit (packets over the tables' log rate limit), nflog-overflow, conntrack-overflow (socket buffer full), unparsable, slow-reader (a /flows follower fell behind)."

// Metrics are the flow collector's Prometheus metrics (docs/metrics.md).
type Metrics struct {
	Records *prometheus.CounterVec // verdict
	Dropped *prometheus.CounterVec // reason
	ring    *Ring
	// excess reads the tables' rate-limit counters (nil: none).
	excess *excessReader
}

// NewMetrics returns unregistered metrics for ring; excess (may be nil)
// returns the packets the tables' rate limits kept from the log, summed
// over the tables.
func NewMetrics(ring *Ring, excess func(context.Context) (uint64, error)) *Metrics {
	m := &Metrics{
		Records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "podnet_flow_records_total",
			Help: "Flow records made on this node, by verdict (forwarded, dropped)."}, []string{"verdict"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "podnet_flow_records_dropped_total",
			Help: droppedHelp},
			[]string{"reason"}),
		ring: ring,
	}
	for _, v := range []string{Forwarded, Dropped} {
		m.Records.WithLabelValues(v)
	}
	for _, r := range []string{LossNFLOGOverflow, LossConntrackOverflow, LossUnparsable, LossSlowReader} {
		m.Dropped.WithLabelValues(r)
	}
	if excess != nil {
		m.excess = &excessReader{read: excess}
	}
	return m
}

// Register adds the metrics to r.
func (m *Metrics) Register(r prometheus.Registerer) error {
	cs := []prometheus.Collector{m.Records, droppedCollector{m},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "podnet_flow_ring_records",
			Help: "Flow records held in this node's ring."}, func() float64 { return float64(m.ring.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "podnet_flow_ring_capacity",
			Help: "Size of this node's flow record ring."}, func() float64 { return float64(m.ring.Cap()) }),
	}
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("flow metrics: %w", err)
		}
	}
	return nil
}

// excessReader reads the tables' excess counters at most once a second
// (each read runs the nft binary).
type excessReader struct {
	read func(context.Context) (uint64, error)

	mu   sync.Mutex // guards the fields below
	at   time.Time
	last uint64
}

func (e *excessReader) value() float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if time.Since(e.at) < time.Second {
		return float64(e.last)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if v, err := e.read(ctx); err == nil && v >= e.last {
		e.last, e.at = v, time.Now()
	}
	return float64(e.last)
}

// droppedCollector serves podnet_flow_records_dropped_total: the counted
// reasons, and rate-limit read from the tables.
type droppedCollector struct{ m *Metrics }

var droppedDesc = prometheus.NewDesc("podnet_flow_records_dropped_total", droppedHelp, []string{"reason"}, nil)

func (d droppedCollector) Describe(ch chan<- *prometheus.Desc) { d.m.Dropped.Describe(ch) }

func (d droppedCollector) Collect(ch chan<- prometheus.Metric) {
	d.m.Dropped.Collect(ch)
	if d.m.excess != nil {
		ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, d.m.excess.value(), LossRateLimit)
	}
}
