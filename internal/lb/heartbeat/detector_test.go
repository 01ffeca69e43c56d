package heartbeat

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

var (
	key = []byte("cluster key for tests")
	t0  = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	mac = net.HardwareAddr{2, 0, 0, 0, 0, 2}
)

func msg(kind Kind, node string, epoch, seq uint64, at time.Time) Message {
	return Message{Kind: kind, Node: node, Epoch: epoch, Seq: seq, Time: at, MAC: mac}
}

func TestMessageRoundTripAndTampering(t *testing.T) {
	m := msg(Goodbye, "node-2", 7, 9, t0)
	b, err := m.Marshal(key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b, key)
	if err != nil || got.Node != m.Node || got.Kind != m.Kind || got.Epoch != 7 || got.Seq != 9 || !got.Time.Equal(t0) || got.MAC.String() != mac.String() {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if _, err := Unmarshal(b, []byte("another key")); !errors.Is(err, ErrAuth) {
		t.Errorf("other key: err %v, want ErrAuth", err)
	}
	for i := range b {
		c := slices.Clone(b)
		c[i] ^= 1
		if _, err := Unmarshal(c, key); err == nil {
			t.Fatalf("a flipped bit at byte %d is accepted", i)
		}
	}
	if _, err := Unmarshal(b[:len(b)-1], key); err == nil {
		t.Error("a truncated message is accepted")
	}
}

func TestDetector(t *testing.T) {
	const iv = 100 * time.Millisecond
	d := NewDetector("node-1", iv, 4*iv)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	if got := d.AliveNodes(t0); !slices.Equal(got, []string{"node-1"}) {
		t.Fatalf("alone: %v", got)
	}
	for i := range 5 {
		if _, err := d.Accept(msg(Beat, "node-2", 1, uint64(i+1), at(i*100)), at(i*100)); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name  string
		do    func() error
		now   int
		alive []string
	}{
		{"a peer beating is alive", nil, 450, []string{"node-1", "node-2"}},
		{"3 missed beats: still alive", nil, 799, []string{"node-1", "node-2"}},
		{"4 intervals without a beat: dead", nil, 800, []string{"node-1"}},
		{"a replayed beat does not revive it", func() error {
			_, err := d.Accept(msg(Beat, "node-2", 1, 5, at(850)), at(850))
			return want(err, ErrReplay)
		}, 850, []string{"node-1"}},
		{"a message from far in the past is dropped", func() error {
			_, err := d.Accept(msg(Beat, "node-2", 1, 99, at(850).Add(-time.Minute)), at(850))
			return want(err, ErrSkew)
		}, 850, []string{"node-1"}},
		{"a new beat revives it and counts the loss", func() error {
			missed, err := d.Accept(msg(Beat, "node-2", 1, 6, at(900)), at(900))
			if err == nil && missed != 4 {
				return errors.New("missed beats not counted")
			}
			return err
		}, 900, []string{"node-1", "node-2"}},
		{"a goodbye is dead at once", func() error {
			_, err := d.Accept(msg(Goodbye, "node-2", 1, 7, at(950)), at(950))
			return err
		}, 950, []string{"node-1"}},
		{"beats of the same run after a goodbye do not revive it", func() error {
			_, err := d.Accept(msg(Beat, "node-2", 1, 8, at(1000)), at(1000))
			return err
		}, 1000, []string{"node-1"}},
		{"a restart (newer epoch) revives it", func() error {
			_, err := d.Accept(msg(Beat, "node-2", 2, 1, at(1100)), at(1100))
			return err
		}, 1100, []string{"node-1", "node-2"}},
		{"an older epoch is a replay", func() error {
			_, err := d.Accept(msg(Goodbye, "node-2", 1, 100, at(1150)), at(1150))
			return want(err, ErrReplay)
		}, 1150, []string{"node-1", "node-2"}},
		{"its own name is refused", func() error {
			_, err := d.Accept(msg(Beat, "node-1", 1, 1, at(1150)), at(1150))
			return want(err, ErrOwnNode)
		}, 1150, []string{"node-1", "node-2"}},
	}
	for _, s := range steps {
		if s.do != nil {
			if err := s.do(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		if got := d.AliveNodes(at(s.now)); !slices.Equal(got, s.alive) {
			t.Fatalf("%s: alive at %d ms = %v, want %v", s.name, s.now, got, s.alive)
		}
	}
	if n := d.NodeByMAC(mac); n != "node-2" {
		t.Errorf("NodeByMAC = %q", n)
	}
}

func want(err, target error) error {
	if !errors.Is(err, target) {
		return errors.Join(errors.New("unexpected error"), err)
	}
	return nil
}

// TestNodesOnLoopback runs three nodes on 127.0.0.x: they see each other,
// a crashed one is dead within DeadAfter plus a check, and a leaving one is
// acknowledged by the others after they reported the change.
func TestNodesOnLoopback(t *testing.T) {
	const iv = 20 * time.Millisecond
	type seen struct {
		sync.Mutex
		alive [][]string
	}
	var views [3]seen
	var nodes [3]*Node
	port := uint16(20000 + time.Now().UnixNano()%20000)
	peers := map[string]netip.Addr{}
	for i := range 3 {
		name := []string{"a", "b", "c"}[i]
		ip := netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 2)})
		peers[name] = ip
		n, err := Listen(netip.AddrPortFrom(ip, port), Config{Node: name, MAC: net.HardwareAddr{2, 0, 0, 0, 0, byte(i)},
			Key: key, Interval: iv, OnChange: func(a []string) {
				views[i].Lock()
				views[i].alive = append(views[i].alive, a)
				views[i].Unlock()
			}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		nodes[i] = n
	}
	ctxs := make([]func(), 3)
	for i, n := range nodes {
		n.SetPeers(peers)
		ctx, cancel := contextWithCancel()
		ctxs[i] = cancel
		go n.Run(ctx)
	}
	t.Cleanup(func() {
		for _, c := range ctxs {
			c()
		}
	})
	waitAlive(t, nodes[0], []string{"a", "b", "c"}, time.Second)
	// Crash c: it stops beating without a goodbye.
	ctxs[2]()
	start := time.Now()
	waitAlive(t, nodes[0], []string{"a", "b"}, time.Second)
	// Loose bound (a loaded machine delays goroutines): well under the
	// 1 s the caller's waitAlive allows.
	if took := time.Since(start); took > 3*4*iv {
		t.Errorf("a crash was seen after %v, want about DeadAfter (%v)", took, 4*iv)
	}
	// b leaves: a acknowledges, after reporting the change.
	if missing := nodes[1].Leave(time.Second); len(missing) != 0 {
		t.Fatalf("no ack from %v", missing)
	}
	views[0].Lock()
	last := views[0].alive[len(views[0].alive)-1]
	views[0].Unlock()
	if !slices.Equal(last, []string{"a"}) {
		t.Errorf("a acknowledged the goodbye before it reported the change: last view %v", last)
	}
}

func waitAlive(t *testing.T, n *Node, want []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !slices.Equal(n.AliveNodes(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("alive = %v, want %v", n.AliveNodes(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func contextWithCancel() (context.Context, func()) { return context.WithCancel(context.Background()) }
