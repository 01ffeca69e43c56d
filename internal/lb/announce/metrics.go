package announce

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podnet/podnet/internal/lb/heartbeat"
)

// Metrics are the announcer's own metrics (podnet_lb_*, docs/metrics.md).
type Metrics struct {
	Announced        *prometheus.GaugeVec // family: ipv4, ipv6
	Takeovers        prometheus.Counter
	Conflicts        prometheus.Counter
	Gratuitous       *prometheus.CounterVec // result: ok, error
	PeersAlive       prometheus.Gauge
	PeerDeaths       prometheus.Counter
	HeartbeatsMissed prometheus.Counter
	HeartbeatDrops   *prometheus.CounterVec // reason: malformed, auth, skew, replay, own-node
}

// NewMetrics returns unregistered metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		Announced: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "podnet_lb_announced_vips",
			Help: "LoadBalancer IPs this node announces (answers ARP/NDP for), by family."}, []string{"family"}),
		Takeovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "podnet_lb_takeovers_total",
			Help: "LoadBalancer IPs this node started to announce."}),
		Conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "podnet_lb_conflicts_total",
			Help: "Claims by another host heard for a LoadBalancer IP this node announced (split brain, healed by rank)."}),
		Gratuitous: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "podnet_lb_gratuitous_sent_total",
			Help: "Gratuitous ARP/unsolicited NA rounds sent, by result."}, []string{"result"}),
		PeersAlive: prometheus.NewGauge(prometheus.GaugeOpts{Name: "podnet_lb_peers_alive",
			Help: "Nodes alive in this node's heartbeat view, itself included."}),
		PeerDeaths: prometheus.NewCounter(prometheus.CounterOpts{Name: "podnet_lb_peer_deaths_total",
			Help: "Peers declared dead (heartbeat timeout or goodbye)."}),
		HeartbeatsMissed: prometheus.NewCounter(prometheus.CounterOpts{Name: "podnet_lb_heartbeats_missed_total",
			Help: "Heartbeats from live peers that did not arrive (gaps seen when the next one came)."}),
		HeartbeatDrops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "podnet_lb_heartbeat_drops_total",
			Help: "Heartbeat datagrams dropped, by reason."}, []string{"reason"}),
	}
}

// Register adds the metrics to r.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.Announced, m.Takeovers, m.Conflicts, m.Gratuitous,
		m.PeersAlive, m.PeerDeaths, m.HeartbeatsMissed, m.HeartbeatDrops} {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("lb announce metrics: %w", err)
		}
	}
	return nil
}

func (m *Metrics) counters() Counters {
	return Counters{
		Takeover: m.Takeovers.Inc,
		Conflict: m.Conflicts.Inc,
		Gratuitous: func(err error) {
			r := "ok"
			if err != nil {
				r = "error"
			}
			m.Gratuitous.WithLabelValues(r).Inc()
		},
	}
}

func (m *Metrics) observeAnnounced(as []Announcement) {
	var v4, v6 float64
	for _, a := range as {
		if a.VIP.Is4() {
			v4++
		} else {
			v6++
		}
	}
	m.Announced.WithLabelValues("ipv4").Set(v4)
	m.Announced.WithLabelValues("ipv6").Set(v6)
}

// dropReason names a heartbeat drop for the reason label.
func dropReason(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{{heartbeat.ErrAuth, "auth"}, {heartbeat.ErrSkew, "skew"}, {heartbeat.ErrReplay, "replay"}, {heartbeat.ErrOwnNode, "own-node"}} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "malformed"
}
