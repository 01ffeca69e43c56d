package wireguard

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the encryption metrics (podnet_wireguard_*): counts kept by
// the Manager, and per-peer figures and strict-mode drops read from the
// device and the kernel at each scrape.
type Metrics struct {
	peers, invalid prometheus.Gauge
	rotations      prometheus.Counter
	source         atomic.Pointer[Manager]

	rx, tx, handshake, drops *prometheus.Desc
}

// NewMetrics declares the metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		peers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "podnet_wireguard_peers",
			Help: "Other nodes configured as WireGuard peers (with a valid public key)."}),
		invalid: prometheus.NewGauge(prometheus.GaugeOpts{Name: "podnet_wireguard_invalid_peers",
			Help: "Other nodes skipped because their WireGuard annotations are malformed."}),
		rotations: prometheus.NewCounter(prometheus.CounterOpts{Name: "podnet_wireguard_key_rotations_total",
			Help: "New keys this node made (by age or on request)."}),
		rx: prometheus.NewDesc("podnet_wireguard_peer_receive_bytes_total",
			"Bytes received from the peer through the tunnel.", []string{"peer"}, nil),
		tx: prometheus.NewDesc("podnet_wireguard_peer_transmit_bytes_total",
			"Bytes sent to the peer through the tunnel.", []string{"peer"}, nil),
		handshake: prometheus.NewDesc("podnet_wireguard_peer_last_handshake_seconds",
			"Unix time of the last handshake with the peer (0: none yet).", []string{"peer"}, nil),
		drops: prometheus.NewDesc("podnet_wireguard_strict_drops_total",
			"Packets to remote pods that strict mode dropped rather than send unencrypted.", nil, nil),
	}
}

// Register adds the metrics to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.peers, m.invalid, m.rotations, m} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Describe is part of prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.rx
	ch <- m.tx
	ch <- m.handshake
	ch <- m.drops
}

// Collect is part of prometheus.Collector: it reads the device.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	mgr := m.source.Load()
	if mgr == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := mgr.Status(ctx)
	if st.Strict {
		ch <- prometheus.MustNewConstMetric(m.drops, prometheus.CounterValue, float64(st.StrictDrops))
	}
	if err != nil {
		return
	}
	for _, p := range st.Peers {
		ch <- prometheus.MustNewConstMetric(m.rx, prometheus.CounterValue, float64(p.ReceiveBytes), p.Node)
		ch <- prometheus.MustNewConstMetric(m.tx, prometheus.CounterValue, float64(p.TransmitBytes), p.Node)
		hs := 0.0
		if !p.LastHandshake.IsZero() {
			hs = float64(p.LastHandshake.Unix())
		}
		ch <- prometheus.MustNewConstMetric(m.handshake, prometheus.GaugeValue, hs, p.Node)
	}
}
