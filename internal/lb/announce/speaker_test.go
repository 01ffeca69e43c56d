package announce

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

type fakeLink struct {
	mu   sync.Mutex
	sent []netip.Addr
}

func (l *fakeLink) Gratuitous(vip netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent = append(l.sent, vip)
	return nil
}
func (*fakeLink) Join(netip.Addr) error  { return nil }
func (*fakeLink) Leave(netip.Addr) error { return nil }

type fakeView struct {
	alive map[string]bool
	macs  map[string]string
}

func (fakeView) Settled() bool                         { return true }
func (v fakeView) Alive(n string) bool                 { return v.alive[n] }
func (v fakeView) NodeByMAC(m net.HardwareAddr) string { return v.macs[m.String()] }

var (
	macA = net.HardwareAddr{2, 0, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{2, 0, 0, 0, 0, 0xb}
)

// a VIP node "a" owns alone, and where b's MAC outranks a's.
func speakerFixture(t *testing.T, bAlive bool) (*Speaker, *fakeLink, netip.Addr) {
	t.Helper()
	var vip netip.Addr
	for i := range 256 {
		vip = netip.AddrFrom4([4]byte{172, 30, 0, byte(i)})
		if OutranksMAC(vip, macB, macA) {
			break
		}
	}
	link := &fakeLink{}
	view := fakeView{alive: map[string]bool{"b": bAlive}, macs: map[string]string{macB.String(): "b"}}
	s := NewSpeaker("a", macA, link, view, Counters{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.SetTargets([]Target{{VIP: vip, Candidates: []string{"a"}}})
	if !s.Owns(vip) {
		t.Fatalf("a does not own %s", vip)
	}
	return s, link, vip
}

func TestSpeakerSendsGratuitousAtOnceAndRepeats(t *testing.T) {
	s, link, vip := speakerFixture(t, true)
	if len(link.sent) != 1 || link.sent[0] != vip {
		t.Fatalf("at takeover: sent %v, want one round for %s", link.sent, vip)
	}
	now := time.Now()
	s.now = func() time.Time { return now.Add(10 * time.Second) }
	s.Reconcile()
	if len(link.sent) != 2 {
		t.Errorf("after the repeats' span: %d rounds, want 2 (late repeats are coalesced)", len(link.sent))
	}
}

func TestSpeakerYieldsToAHigherLiveClaimant(t *testing.T) {
	s, _, vip := speakerFixture(t, true)
	s.Heard(vip, macB)
	if s.Owns(vip) {
		t.Error("a still owns the VIP after hearing b, which outranks it")
	}
	s.Reconcile()
	if s.Owns(vip) {
		t.Error("a claimed again while yielding")
	}
}

func TestSpeakerIgnoresAClaimFromANodeItKnowsIsGone(t *testing.T) {
	// b said goodbye and still answers until it has its acks: its claims
	// must not make the new owner yield (then nobody would answer).
	s, link, vip := speakerFixture(t, false)
	s.Heard(vip, macB)
	if !s.Owns(vip) {
		t.Fatal("a yielded to b, which its view knows is gone")
	}
	if len(link.sent) != 2 {
		t.Errorf("a sent %d gratuitous rounds, want 2 (the claim again)", len(link.sent))
	}
}

func TestSpeakerLeavingSendsNothingAndNeverReclaims(t *testing.T) {
	s, link, vip := speakerFixture(t, true)
	s.Leaving()
	s.Heard(vip, net.HardwareAddr{2, 0, 0, 0, 0, 0xc})
	now := time.Now()
	s.now = func() time.Time { return now.Add(10 * time.Second) }
	s.Reconcile()
	if len(link.sent) != 1 {
		t.Errorf("a leaving speaker sent %d rounds after leaving", len(link.sent)-1)
	}
	if !s.Owns(vip) {
		t.Error("a leaving speaker stopped answering before Stop")
	}
	s.Stop()
	if s.Owns(vip) {
		t.Error("owns after Stop")
	}
}
