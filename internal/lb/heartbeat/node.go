package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Config configures one node's heartbeat.
type Config struct {
	// Node is this node's name, MAC its announcing interface's address.
	Node string
	MAC  net.HardwareAddr
	// Key authenticates every message (HMAC-SHA256); all nodes share it.
	Key []byte
	// Interval between beats (default 100 ms); DeadAfter without a message
	// declares a peer dead (default 4 intervals).
	Interval, DeadAfter time.Duration
	// OnChange is called, from one goroutine at a time, with the alive
	// nodes whenever that set changes; on a peer's goodbye it is called
	// before the Ack is sent, so the Ack means "I took over".
	OnChange func(alive []string)
	// Hooks for metrics, all optional.
	OnDrop   func(err error)
	OnMissed func(n int)
	OnDead   func(node string)
	Log      *slog.Logger
}

func (c *Config) defaults() {
	if c.Interval == 0 {
		c.Interval = 100 * time.Millisecond
	}
	if c.DeadAfter == 0 {
		c.DeadAfter = 4 * c.Interval
	}
	if c.OnChange == nil {
		c.OnChange = func([]string) {}
	}
	if c.OnDrop == nil {
		c.OnDrop = func(error) {}
	}
	if c.OnMissed == nil {
		c.OnMissed = func(int) {}
	}
	if c.OnDead == nil {
		c.OnDead = func(string) {}
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Node sends this node's beats to its peers over UDP and keeps the
// detector fed with theirs.
type Node struct {
	// set at construction, read-only
	cfg   Config
	conn  *net.UDPConn
	port  uint16
	epoch uint64
	start time.Time

	// changeMu serialises OnChange calls; last is the set last reported.
	changeMu sync.Mutex
	last     []string

	// mu guards the fields below.
	mu      sync.Mutex
	det     *Detector
	peers   map[string]netip.Addr
	seq     uint64
	leaving bool
	acks    map[string]bool
}

// Listen opens the UDP socket on addr (the node's InternalIP and the
// heartbeat port) in the caller's network namespace.
func Listen(addr netip.AddrPort, cfg Config) (*Node, error) {
	cfg.defaults()
	if len(cfg.Key) == 0 || cfg.Node == "" {
		return nil, errors.New("heartbeat: a node name and a key are required")
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, fmt.Errorf("heartbeat: listen %s: %w", addr, err)
	}
	now := time.Now()
	return &Node{
		cfg: cfg, conn: conn, port: addr.Port(), epoch: uint64(now.UnixNano()), start: now,
		det: NewDetector(cfg.Node, cfg.Interval, cfg.DeadAfter), peers: map[string]netip.Addr{},
	}, nil
}

// SetPeers sets the nodes to beat to (name → InternalIP); a node left out
// is forgotten.
func (n *Node) SetPeers(peers map[string]netip.Addr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.peers = peers
	n.det.Forget(func(node string) bool { _, ok := peers[node]; return ok })
}

// Settled reports whether a full DeadAfter has passed since the start: only
// then has this node had the chance to hear every live peer, and its view
// can be acted on (before, it would believe it is alone and claim all).
func (n *Node) Settled() bool { return time.Since(n.start) >= n.cfg.DeadAfter }

// Alive reports whether node is alive in this node's view.
func (n *Node) Alive(node string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.det.Alive(node, time.Now())
}

// AliveNodes returns the alive nodes, this one included.
func (n *Node) AliveNodes() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.det.AliveNodes(time.Now())
}

// NodeByMAC returns the peer whose beats carry mac.
func (n *Node) NodeByMAC(mac net.HardwareAddr) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.det.NodeByMAC(mac)
}

// Run beats and receives until ctx ends; Close closes the socket after.
func (n *Node) Run(ctx context.Context) {
	go n.receive()
	t := time.NewTicker(n.cfg.Interval)
	defer t.Stop()
	check := time.NewTicker(n.cfg.Interval / 4)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.mu.Lock()
			leaving := n.leaving
			n.mu.Unlock()
			if !leaving {
				n.send(Beat, n.peerAddrs())
			}
		case <-check.C:
			n.checkChange()
		}
	}
}

// Close closes the socket.
func (n *Node) Close() error { return n.conn.Close() }

func (n *Node) peerAddrs() []netip.AddrPort {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]netip.AddrPort, 0, len(n.peers))
	for name, ip := range n.peers {
		if name != n.cfg.Node {
			out = append(out, netip.AddrPortFrom(ip, n.port))
		}
	}
	return out
}

// send signs one message of kind and sends it to every address in to.
func (n *Node) send(kind Kind, to []netip.AddrPort) {
	n.mu.Lock()
	n.seq++
	m := Message{Kind: kind, Epoch: n.epoch, Seq: n.seq, Time: time.Now(), MAC: n.cfg.MAC, Node: n.cfg.Node}
	n.mu.Unlock()
	b, err := m.Marshal(n.cfg.Key)
	if err != nil {
		n.cfg.Log.Error("heartbeat: encode", "err", err)
		return
	}
	for _, a := range to {
		if _, err := n.conn.WriteToUDPAddrPort(b, a); err != nil {
			n.cfg.Log.Debug("heartbeat: send", "to", a, "kind", kind, "err", err)
		}
	}
}

// checkChange reports the alive set to OnChange when it changed, and
// counts the peers that died since.
func (n *Node) checkChange() {
	n.changeMu.Lock()
	defer n.changeMu.Unlock()
	alive := n.AliveNodes()
	if slices.Equal(alive, n.last) {
		return
	}
	for _, p := range n.last {
		if !slices.Contains(alive, p) {
			n.cfg.OnDead(p)
		}
	}
	n.last = alive
	n.cfg.OnChange(alive)
}

func (n *Node) receive() {
	buf := make([]byte, 1500)
	for {
		k, from, err := n.conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		m, err := Unmarshal(buf[:k], n.cfg.Key)
		if err == nil {
			n.mu.Lock()
			var missed int
			missed, err = n.det.Accept(m, time.Now())
			if err == nil && m.Kind == Ack && n.acks != nil {
				n.acks[m.Node] = true
			}
			n.mu.Unlock()
			if missed > 0 {
				n.cfg.OnMissed(missed)
			}
		}
		if err != nil {
			n.cfg.OnDrop(err)
			continue
		}
		n.checkChange()
		if m.Kind == Goodbye {
			// checkChange has handed the leaver's VIPs over.
			n.send(Ack, []netip.AddrPort{from})
		}
	}
}

// Leave says goodbye to the peers, repeating it every interval, until
// every peer alive when it started has acknowledged (each has taken over
// what it owns without this node) or timeout passes. It returns the peers
// that did not answer. After Leave the node sends no more beats.
func (n *Node) Leave(timeout time.Duration) []string {
	n.mu.Lock()
	n.leaving = true
	n.acks = map[string]bool{}
	waitFor := slices.DeleteFunc(n.det.AliveNodes(time.Now()), func(p string) bool { return p == n.cfg.Node })
	n.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for {
		n.send(Goodbye, n.peerAddrs())
		n.mu.Lock()
		missing := slices.DeleteFunc(slices.Clone(waitFor), func(p string) bool { return n.acks[p] })
		n.mu.Unlock()
		if len(missing) == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(min(n.cfg.Interval/2, time.Until(deadline)+time.Millisecond))
	}
}
