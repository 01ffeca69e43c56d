package main

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/podnet/podnet/internal/netns"
)

// sample is one request from the world: when it was sent and when its
// reply came (zero: none within the timeout).
type sample struct{ sent, reply time.Time }

// prober sends a UDP datagram to dst from the world namespace every
// `every`, each from a new socket (a new source port, so a new conntrack
// entry: what a stream of new clients sees), and waits up to timeout for
// its reply. It keeps every sample.
type prober struct {
	nsPath  string
	dst     netip.AddrPort
	every   time.Duration
	timeout time.Duration

	mu      sync.Mutex // guards samples
	samples []*sample
}

// run probes until ctx ends and then waits for the replies in flight.
func (p *prober) run(ctx context.Context) {
	var wg sync.WaitGroup
	t := time.NewTicker(p.every)
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

func (p *prober) one() {
	s := &sample{}
	var c *net.UDPConn
	err := netns.Do(p.nsPath, func() (err error) {
		c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(p.dst))
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
	_ = c.SetDeadline(s.sent.Add(p.timeout))
	buf := make([]byte, 512)
	if _, err := c.Write([]byte("lbbench\n")); err != nil {
		return
	}
	if _, err := c.Read(buf); err == nil {
		now := time.Now()
		p.mu.Lock()
		s.reply = now
		p.mu.Unlock()
	}
}

// firstReply is the time of the earliest reply, if any.
func (p *prober) firstReply() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var first time.Time
	for _, s := range p.samples {
		if !s.reply.IsZero() && (first.IsZero() || s.reply.Before(first)) {
			first = s.reply
		}
	}
	return first, !first.IsZero()
}

// window sums up the requests sent in [from, to): the longest time between
// two consecutive replies among theirs (last reply before → first reply
// after an outage), how many were sent and how many got no reply.
func (p *prober) window(from, to time.Time) (gap time.Duration, sent, lost int) {
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

// neighbourMAC is the world's neighbour entry for ip: the MAC it sends
// ip's packets to ("" when there is none, or it is not resolved).
func neighbourMAC(worldNS string, ip netip.Addr) (string, error) {
	var mac string
	err := netns.Do(worldNS, func() error {
		ns, err := netlink.NeighList(0, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, n := range ns {
			ok := n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT) != 0
			if a, _ := netip.AddrFromSlice(n.IP); a.Unmap() == ip && ok && len(n.HardwareAddr) > 0 {
				mac = n.HardwareAddr.String()
			}
		}
		return nil
	})
	return mac, err
}

// forgetNeighbour deletes the world's neighbour entry for ip, so that the
// next packet to it asks with ARP as for an address never seen.
func forgetNeighbour(worldNS string, ip netip.Addr) error {
	return netns.Do(worldNS, func() error {
		ns, err := netlink.NeighList(0, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, n := range ns {
			if a, _ := netip.AddrFromSlice(n.IP); a.Unmap() == ip {
				if err := netlink.NeighDel(&n); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// linkMAC is the MAC of the link called name in the namespace at nsPath.
func linkMAC(nsPath, name string) (string, error) {
	var mac string
	err := netns.Do(nsPath, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		mac = l.Attrs().HardwareAddr.String()
		return nil
	})
	return mac, err
}
