package announce

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/podnet/podnet/internal/lb/heartbeat"
)

// DefaultPort is the heartbeat's UDP port on the node's InternalIP.
const DefaultPort = 7947

// AnnouncerConfig configures one node's announcer.
type AnnouncerConfig struct {
	Node string
	// Interface carries NodeIP and answers for the VIPs.
	Interface *net.Interface
	NodeIP    netip.Addr
	Port      uint16 // DefaultPort when 0
	Key       []byte // the cluster's heartbeat key
	// Interval between heartbeats (100 ms when 0); a peer is dead after 4.
	Interval time.Duration
	Metrics  *Metrics // NewMetrics() when nil
	Log      *slog.Logger
}

// Announcer is one node's heartbeat, liveness view, speaker and L2
// responder together.
type Announcer struct {
	// set at construction, read-only
	hb      *heartbeat.Node
	l2      *L2
	sp      *Speaker
	metrics *Metrics
	log     *slog.Logger
	family  int // of the node IP: 4 or 6
	port    uint16

	// mu guards cancel and wg (set by Start).
	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewAnnouncer opens the announcer's sockets in the caller's network
// namespace (the node's); Start runs it.
func NewAnnouncer(cfg AnnouncerConfig) (*Announcer, error) {
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	l2, err := OpenL2(cfg.Interface, cfg.Log)
	if err != nil {
		return nil, err
	}
	a := &Announcer{l2: l2, metrics: cfg.Metrics, log: cfg.Log, family: 6, port: cfg.Port}
	if cfg.NodeIP.Is4() {
		a.family = 4
	}
	m := cfg.Metrics
	a.hb, err = heartbeat.Listen(netip.AddrPortFrom(cfg.NodeIP, cfg.Port), heartbeat.Config{
		Node: cfg.Node, MAC: cfg.Interface.HardwareAddr, Key: cfg.Key, Interval: cfg.Interval, Log: cfg.Log,
		OnChange: func(alive []string) {
			m.PeersAlive.Set(float64(len(alive)))
			a.sp.Reconcile()
		},
		OnDrop:   func(err error) { m.HeartbeatDrops.WithLabelValues(dropReason(err)).Inc() },
		OnMissed: func(n int) { m.HeartbeatsMissed.Add(float64(n)) },
		OnDead:   func(string) { m.PeerDeaths.Inc() },
	})
	if err != nil {
		_ = l2.Close()
		return nil, fmt.Errorf("lb announce: %w", err)
	}
	a.sp = NewSpeaker(cfg.Node, cfg.Interface.HardwareAddr, l2, a.hb, m.counters(), cfg.Log)
	return a, nil
}

// Start runs the heartbeat, the responder and the speaker until Crash or
// Leave.
func (a *Announcer) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cancel = cancel
	a.wg.Go(func() { a.hb.Run(ctx) })
	a.wg.Go(func() { a.l2.Serve(ctx, a.sp.Owns, a.sp.Heard) })
	a.wg.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				a.sp.Reconcile()
				a.metrics.observeAnnounced(a.sp.Announced())
			}
		}
	})
}

// SetPeers sets the nodes to exchange heartbeats with (name → InternalIP).
func (a *Announcer) SetPeers(peers map[string]netip.Addr) { a.hb.SetPeers(peers) }

// SetTargets sets the VIPs and their candidate nodes.
func (a *Announcer) SetTargets(ts []Target) { a.sp.SetTargets(ts) }

// Announced lists the VIPs this node announces.
func (a *Announcer) Announced() []Announcement { return a.sp.Announced() }

// AliveNodes is this node's liveness view.
func (a *Announcer) AliveNodes() []string { return a.hb.AliveNodes() }

// Crash stops at once, without a goodbye, as a killed agent would.
func (a *Announcer) Crash() {
	a.stop()
}

// Leave hands the VIPs over: it says goodbye and keeps answering until
// every live peer has acknowledged (it has taken over) or timeout passed,
// then stops. It returns the peers that did not acknowledge.
func (a *Announcer) Leave(timeout time.Duration) []string {
	a.sp.Leaving()
	missing := a.hb.Leave(timeout)
	a.sp.Stop()
	a.stop()
	return missing
}

func (a *Announcer) stop() {
	a.mu.Lock()
	cancel := a.cancel
	a.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	_ = a.l2.Close()
	_ = a.hb.Close()
	a.wg.Wait()
}
