package probe

import (
	"testing"
	"time"
)

func TestWindowIsTheLongestTimeBetweenRepliesAndCountsTheLost(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	p := &UDP{}
	// Sent every 10 ms; the ones sent at 20..40 ms got no reply; the reply
	// to the one sent at 50 ms came late, at 120 ms: gaps are between
	// replies in the order they arrived.
	for _, s := range []struct{ sent, reply int }{{0, 2}, {10, 12}, {20, -1}, {30, -1}, {40, -1}, {50, 120}, {60, 62}} {
		smp := &sample{sent: at(s.sent)}
		if s.reply >= 0 {
			smp.reply = at(s.reply)
		}
		p.samples = append(p.samples, smp)
	}
	gap, sent, lost := p.Window(at(0), at(70))
	if gap != 58*time.Millisecond || sent != 7 || lost != 3 {
		t.Errorf("Window = gap %s, %d sent, %d lost; want 58ms (replies by arrival: 62 → 120 ms), 7, 3", gap, sent, lost)
	}
	if gap, sent, _ := p.Window(at(20), at(50)); gap != 30*time.Millisecond || sent != 3 {
		t.Errorf("a window with no reply: gap %s, %d sent; want its length 30ms, 3", gap, sent)
	}
	if r, ok := p.FirstReply(); !ok || !r.Equal(at(2)) {
		t.Errorf("FirstReply = %v %v, want %v", r, ok, at(2))
	}
	if r, ok := p.FirstReplyAfter(at(15)); !ok || !r.Equal(at(62)) {
		t.Errorf("FirstReplyAfter(15 ms) = %v %v, want the reply at 62 ms (earliest arrival among later requests)", r, ok)
	}
	if _, ok := p.FirstReplyAfter(at(70)); ok {
		t.Errorf("FirstReplyAfter(70 ms) found a reply; no request was sent after 60 ms")
	}
}
