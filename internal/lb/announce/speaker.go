package announce

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Link is what the speaker needs of the interface (L2 is the real one).
type Link interface {
	Gratuitous(vip netip.Addr) error
	Join(vip netip.Addr) error
	Leave(vip netip.Addr) error
}

// View is this node's liveness view (heartbeat.Node is the real one).
type View interface {
	Settled() bool
	Alive(node string) bool
	NodeByMAC(mac net.HardwareAddr) string
}

// Repeats are when gratuitous ARP/NA is sent after a takeover, from the
// takeover: at once, then while switch and neighbour caches may still hold
// the old owner (Linux keeps a stale entry for about 5 s before probing).
var Repeats = []time.Duration{0, 200 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}

// YieldFor is how long an owner that heard a higher-ranked node claim a VIP
// stays silent for it before it looks at its own view again.
const YieldFor = 5 * time.Second

// Counters are the speaker's metric hooks (all optional).
type Counters struct {
	Takeover   func()
	Conflict   func()
	Gratuitous func(err error)
}

// Speaker decides which VIPs this node announces and keeps the link
// telling the segment so.
type Speaker struct {
	// set at construction, read-only
	self string
	mac  net.HardwareAddr
	link Link
	view View
	log  *slog.Logger
	ctr  Counters
	now  func() time.Time

	// mu guards the fields below.
	mu      sync.Mutex
	targets []Target
	owned   map[netip.Addr]*claim
	yielded map[netip.Addr]time.Time
	stopped bool
	leaving bool // answers requests, sends nothing gratuitous, never reclaims
}

type claim struct {
	service string
	since   time.Time
	next    int // index into Repeats of the next gratuitous message
	// reclaimed is when a lower claimant last made this node claim again.
	reclaimed time.Time
}

// reclaimInterval bounds how often a conflict makes an owner claim again
// (a host that is no node and answers for the VIP would otherwise get an
// ARP storm back).
const reclaimInterval = 500 * time.Millisecond

// NewSpeaker returns the speaker of node self, whose link has mac.
func NewSpeaker(self string, mac net.HardwareAddr, link Link, view View, ctr Counters, log *slog.Logger) *Speaker {
	for _, f := range []*func(){&ctr.Takeover, &ctr.Conflict} {
		if *f == nil {
			*f = func() {}
		}
	}
	if ctr.Gratuitous == nil {
		ctr.Gratuitous = func(error) {}
	}
	return &Speaker{self: self, mac: mac, link: link, view: view, ctr: ctr, log: log, now: time.Now,
		owned: map[netip.Addr]*claim{}, yielded: map[netip.Addr]time.Time{}}
}

// SetTargets replaces the VIPs and their candidates and reconciles.
func (s *Speaker) SetTargets(ts []Target) {
	s.mu.Lock()
	s.targets = ts
	s.mu.Unlock()
	s.Reconcile()
}

// Reconcile claims the VIPs this node owns in its view and withdraws the
// others; it sends the first gratuitous messages of new claims before it
// returns.
func (s *Speaker) Reconcile() {
	s.mu.Lock()
	now := s.now()
	want := map[netip.Addr]string{}
	if !s.stopped && s.view.Settled() {
		for _, t := range s.targets {
			if until, ok := s.yielded[t.VIP]; ok && now.Before(until) {
				continue
			}
			delete(s.yielded, t.VIP)
			if Owner(t.VIP, Eligible(t.Candidates, s.alive)) == s.self {
				want[t.VIP] = t.Service
			}
		}
	}
	var claimed, dropped []netip.Addr
	for vip, svc := range want {
		if s.owned[vip] == nil {
			s.owned[vip] = &claim{service: svc, since: now}
			claimed = append(claimed, vip)
		}
	}
	for vip := range s.owned {
		if _, ok := want[vip]; !ok {
			delete(s.owned, vip)
			dropped = append(dropped, vip)
		}
	}
	s.mu.Unlock()
	for _, vip := range dropped {
		s.log.Info("lb announce: withdraw", "vip", vip)
		_ = s.link.Leave(vip)
	}
	for _, vip := range claimed {
		s.log.Info("lb announce: take over", "vip", vip, "service", want[vip])
		s.ctr.Takeover()
		if err := s.link.Join(vip); err != nil {
			s.log.Error("lb announce: join the solicited-node group", "vip", vip, "err", err)
		}
	}
	s.repeat()
}

func (s *Speaker) alive(node string) bool { return node == s.self || s.view.Alive(node) }

// repeat sends the gratuitous messages that are due.
func (s *Speaker) repeat() {
	s.mu.Lock()
	if s.leaving {
		s.mu.Unlock()
		return
	}
	now := s.now()
	var due []netip.Addr
	for vip, c := range s.owned {
		if c.next < len(Repeats) && !now.Before(c.since.Add(Repeats[c.next])) {
			due = append(due, vip)
			for c.next < len(Repeats) && !now.Before(c.since.Add(Repeats[c.next])) {
				c.next++
			}
		}
	}
	s.mu.Unlock()
	slices.SortFunc(due, netip.Addr.Compare)
	for _, vip := range due {
		err := s.link.Gratuitous(vip)
		s.ctr.Gratuitous(err)
		if err != nil {
			s.log.Error("lb announce: gratuitous ARP/NA", "vip", vip, "err", err)
		}
	}
}

// Owns reports whether this node answers for vip now.
func (s *Speaker) Owns(vip netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owned[vip] != nil
}

// Heard handles another host's claim on an owned VIP (split brain: two
// views that disagree). The claim with the higher MAC rank (OutranksMAC)
// wins: both ends know both MACs, whatever each one's view, so they agree.
// The loser yields the VIP for YieldFor; the winner claims it again at
// once (at most once per reclaimInterval), so the segment ends on the
// winner within a round trip.
func (s *Speaker) Heard(vip netip.Addr, mac net.HardwareAddr) {
	other := s.view.NodeByMAC(mac)
	s.ctr.Conflict()
	s.mu.Lock()
	c := s.owned[vip]
	if c == nil {
		s.mu.Unlock()
		return
	}
	if s.leaving {
		s.mu.Unlock()
		return
	}
	// A node this view knows as dead or gone (a leaving node still
	// answering until it has its acks) does not win: it stops on its own.
	if OutranksMAC(vip, mac, s.mac) && (other == "" || s.view.Alive(other)) {
		s.log.Info("lb announce: yield to a higher-ranked claimant", "vip", vip, "node", other)
		delete(s.owned, vip)
		s.yielded[vip] = s.now().Add(YieldFor)
		s.mu.Unlock()
		_ = s.link.Leave(vip)
		return
	}
	now := s.now()
	if now.Sub(c.reclaimed) < reclaimInterval {
		s.mu.Unlock()
		return
	}
	// Restart the repeats: the other host's claim may have reached caches.
	s.log.Info("lb announce: claim again over a lower-ranked claimant", "vip", vip, "node", other, "mac", mac.String())
	c.since, c.next, c.reclaimed = now, 0, now
	s.mu.Unlock()
	s.repeat()
}

// Leaving keeps answering for the owned VIPs but sends no gratuitous
// message and yields every conflict: the node is handing its VIPs over.
func (s *Speaker) Leaving() {
	s.mu.Lock()
	s.leaving = true
	s.mu.Unlock()
}

// Stop withdraws every VIP and claims none again.
func (s *Speaker) Stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.Reconcile()
}

// Announcement is one VIP this node announces.
type Announcement struct {
	VIP     netip.Addr `json:"vip"`
	Service string     `json:"service"`
	Since   time.Time  `json:"since"`
}

// Announced lists the VIPs this node announces, sorted.
func (s *Speaker) Announced() []Announcement {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Announcement, 0, len(s.owned))
	for vip, c := range s.owned {
		out = append(out, Announcement{VIP: vip, Service: c.service, Since: c.since})
	}
	slices.SortFunc(out, func(a, b Announcement) int { return a.VIP.Compare(b.VIP) })
	return out
}
