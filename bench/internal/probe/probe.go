// Package probe measures outages from a client's point of view: a UDP
// request every few milliseconds, each from a new socket, with the time it
// was sent and the time its reply came, so that a benchmark can ask what
// happened in any window afterwards (the longest time without a reply, how
// many requests were lost) while it fails and repairs something else.
//
// Each request comes from a new socket, so from a new source port: a new
// conntrack entry, what a stream of new clients sees. Requests go only to
// the one destination the caller names, from inside the namespace it names.
package probe

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/podnet/podnet/internal/netns"
)

// sample is one request: when it was sent and when its reply came (zero:
// none within the timeout).
type sample struct{ sent, reply time.Time }

// UDP sends a datagram to Dst from the namespace at NSPath every Every
// and waits up to Timeout for each reply. It keeps every sample.
type UDP struct {
	NSPath  string
	Dst     netip.AddrPort
	Every   time.Duration
	Timeout time.Duration
	// Payload is what each request carries (default "probe\n").
	Payload []byte

	mu      sync.Mutex // guards samples
	samples []*sample
}

// Run probes until ctx ends and then waits for the replies in flight.
func (p *UDP) Run(ctx context.Context) {
	var wg sync.WaitGroup
	t := time.NewTicker(p.Every)
	defer t.Stop()
	for {
		wg.Add(1)
		go func() { defer wg.Done(); p.one() }()
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
		}
	}
}

func (p *UDP) one() {
	s := &sample{}
	var c *net.UDPConn
	err := netns.Do(p.NSPath, func() (err error) {
		c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(p.Dst))
		return err
	})
	s.sent = time.Now()
	p.mu.Lock()
	p.samples = append(p.samples, s)
	p.mu.Unlock()
	if err != nil {
		return
	}
	defer c.Close()
	_ = c.SetDeadline(s.sent.Add(p.Timeout))
	payload := p.Payload
	if len(payload) == 0 {
		payload = []byte("probe\n")
	}
	buf := make([]byte, 512)
	if _, err := c.Write(payload); err != nil {
		return
	}
	if _, err := c.Read(buf); err == nil {
		now := time.Now()
		p.mu.Lock()
		s.reply = now
		p.mu.Unlock()
	}
}

// FirstReply is the time of the earliest reply, if any.
func (p *UDP) FirstReply() (time.Time, bool) {
	return p.FirstReplyAfter(time.Time{})
}

// FirstReplyAfter is the time of the earliest reply to a request sent at
// or after t, if any.
func (p *UDP) FirstReplyAfter(t time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var first time.Time
	for _, s := range p.samples {
		if s.sent.Before(t) || s.reply.IsZero() {
			continue
		}
		if first.IsZero() || s.reply.Before(first) {
			first = s.reply
		}
	}
	return first, !first.IsZero()
}

// Window sums up the requests sent in [from, to): the longest time between
// two consecutive replies among theirs (last reply before → first reply
// after an outage), how many were sent and how many got no reply. With no
// reply at all the gap is the window's length.
func (p *UDP) Window(from, to time.Time) (gap time.Duration, sent, lost int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var replies []time.Time
	for _, s := range p.samples {
		if s.sent.Before(from) || !s.sent.Before(to) {
			continue
		}
		sent++
		if s.reply.IsZero() {
			lost++
		} else {
			replies = append(replies, s.reply)
		}
	}
	slices.SortFunc(replies, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(replies); i++ {
		gap = max(gap, replies[i].Sub(replies[i-1]))
	}
	if len(replies) == 0 {
		gap = to.Sub(from)
	}
	return gap, sent, lost
}
