package heartbeat

import (
	"bytes"
	"net"
	"slices"
	"time"
)

// Detector is the pure failure detector: it accepts authenticated
// messages with the time they arrived and says which nodes are alive at a
// given time. A node is alive while its last message is younger than
// DeadAfter and it has not said goodbye in its current epoch; this node is
// always alive in its own view. Not safe for concurrent use.
type Detector struct {
	// set at construction, read-only
	self      string
	deadAfter time.Duration
	interval  time.Duration

	peers map[string]*peerState
}

type peerState struct {
	epoch, seq uint64
	last       time.Time
	mac        net.HardwareAddr
	left       bool
}

// NewDetector returns a detector for the node self whose peers beat every
// interval and are dead after deadAfter without a message.
func NewDetector(self string, interval, deadAfter time.Duration) *Detector {
	return &Detector{self: self, interval: interval, deadAfter: deadAfter, peers: map[string]*peerState{}}
}

// Accept records m, received at now, or says why it is dropped. missed is
// how many beats went missing before it (the heartbeat loss on the way).
func (d *Detector) Accept(m Message, now time.Time) (missed int, err error) {
	if m.Node == d.self {
		return 0, ErrOwnNode
	}
	if skew := now.Sub(m.Time); skew > MaxSkew || skew < -MaxSkew {
		return 0, ErrSkew
	}
	p := d.peers[m.Node]
	if p == nil {
		p = &peerState{}
		d.peers[m.Node] = p
	} else if m.Epoch < p.epoch || (m.Epoch == p.epoch && m.Seq <= p.seq) {
		return 0, ErrReplay
	} else if m.Epoch == p.epoch && d.interval > 0 {
		if gap := now.Sub(p.last); gap > d.interval*3/2 && !p.left {
			missed = int(gap/d.interval) - 1
		}
	}
	if m.Epoch != p.epoch {
		p.left = false // a restart
	}
	p.epoch, p.seq, p.last, p.mac = m.Epoch, m.Seq, now, m.MAC
	if m.Kind == Goodbye {
		p.left = true
	}
	return missed, nil
}

// Alive reports whether node is alive at now.
func (d *Detector) Alive(node string, now time.Time) bool {
	if node == d.self {
		return true
	}
	p := d.peers[node]
	return p != nil && !p.left && now.Sub(p.last) < d.deadAfter
}

// AliveNodes returns the nodes alive at now, sorted, this node included.
func (d *Detector) AliveNodes(now time.Time) []string {
	out := []string{d.self}
	for n := range d.peers {
		if d.Alive(n, now) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// NodeByMAC returns the node whose messages carry mac ("" when none).
func (d *Detector) NodeByMAC(mac net.HardwareAddr) string {
	for n, p := range d.peers {
		if bytes.Equal(p.mac, mac) {
			return n
		}
	}
	return ""
}

// Forget drops what is known of nodes not in keep (deleted Nodes).
func (d *Detector) Forget(keep func(node string) bool) {
	for n := range d.peers {
		if !keep(n) {
			delete(d.peers, n)
		}
	}
}
