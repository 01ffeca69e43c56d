package flow

import (
	"sync"
)

// RingSize is the number of records a node keeps: at about 0.5 KiB per
// record in memory, some 2 MiB. At the logging rate limit (100 packets per
// second per rule) a full ring holds at least the last ten seconds of
// drops; usually minutes of records.
const RingSize = 4096

// followBuffer is how many records a follower may lag before it loses
// records (counted as "slow-reader").
const followBuffer = 1024

// Ring keeps the latest records of a node, oldest overwritten first, and
// hands new ones to followers. It is safe for concurrent use.
type Ring struct {
	// set at construction, read-only
	onSlow func() // counts a record a follower lost

	mu        sync.Mutex // guards the fields below
	buf       []Record
	next      int    // where the next record goes
	n         int    // records held
	total     uint64 // records ever added
	followers map[chan Record]struct{}
}

// NewRing returns a ring of size records; onSlow (may be nil) is called for
// every record a follower lost because it read too slowly.
func NewRing(size int, onSlow func()) *Ring {
	if size < 1 {
		size = 1
	}
	if onSlow == nil {
		onSlow = func() {}
	}
	return &Ring{buf: make([]Record, size), onSlow: onSlow, followers: map[chan Record]struct{}{}}
}

// Add appends r, overwriting the oldest record when the ring is full, and
// offers it to every follower without waiting.
func (g *Ring) Add(r Record) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.buf[g.next] = r
	g.next = (g.next + 1) % len(g.buf)
	g.n = min(g.n+1, len(g.buf))
	g.total++
	for ch := range g.followers {
		select {
		case ch <- r:
		default:
			g.onSlow()
		}
	}
}

// Len and Cap are the records held and the ring's size.
func (g *Ring) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// Cap is the ring's size.
func (g *Ring) Cap() int { return len(g.buf) }

// Snapshot returns the held records that match f, oldest first; with
// last > 0 only the newest last of them.
func (g *Ring) Snapshot(f Filter, last int) []Record {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.snapshotLocked(f, last)
}

func (g *Ring) snapshotLocked(f Filter, last int) []Record {
	var out []Record
	start := (g.next - g.n + len(g.buf)) % len(g.buf)
	for i := 0; i < g.n; i++ {
		r := g.buf[(start+i)%len(g.buf)]
		if f.Match(r) {
			out = append(out, r)
		}
	}
	if last > 0 && len(out) > last {
		out = out[len(out)-last:]
	}
	return out
}

// Follow returns the held records that match f (as Snapshot) and a channel
// that receives every record added afterwards, none missed in between;
// stop ends the subscription (the channel is then no longer written).
func (g *Ring) Follow(f Filter, last int) (backlog []Record, ch <-chan Record, stop func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := make(chan Record, followBuffer)
	g.followers[c] = struct{}{}
	stop = func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		delete(g.followers, c)
	}
	return g.snapshotLocked(f, last), c, stop
}
