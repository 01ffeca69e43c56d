package probe

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// matrixPods are x/a, x/b and y/a; their "namespaces" are their keys (the
// fake probe reads them), addresses 10.244.1.1-3.
func matrixPods() []MatrixPod {
	var out []MatrixPod
	for i, k := range []string{"x/a", "x/b", "y/a"} {
		_, name, _ := strings.Cut(k, "/")
		out = append(out, MatrixPod{Key: k, Name: name, Addr: netip.AddrFrom4([4]byte{10, 244, 1, byte(i + 1)}), NetNS: k})
	}
	return out
}

// fakeNet answers as podnet's test server would, except for the pairs in
// deny (FROM -> ADDR), which get no reply.
type fakeNet struct {
	deny  map[string]bool
	names map[string]string // address -> pod name

	mu       sync.Mutex
	inFlight int
	maxSeen  int
	calls    atomic.Int32
}

func (n *fakeNet) probe(nsPath, protocol, target string, timeout time.Duration) (Reply, error) {
	n.calls.Add(1)
	n.mu.Lock()
	n.inFlight++
	n.maxSeen = max(n.maxSeen, n.inFlight)
	n.mu.Unlock()
	time.Sleep(time.Millisecond)
	defer func() { n.mu.Lock(); n.inFlight--; n.mu.Unlock() }()
	host, _, _ := strings.Cut(target, ":")
	if n.deny[nsPath+" -> "+host] {
		return Reply{}, &NoReplyError{errors.New("i/o timeout")}
	}
	return Reply{Pod: n.names[host], Client: "x"}, nil
}

func newFakeNet(deny ...string) *fakeNet {
	n := &fakeNet{deny: map[string]bool{}, names: map[string]string{}}
	for _, d := range deny {
		n.deny[d] = true
	}
	for _, p := range matrixPods() {
		n.names[p.Addr.String()] = p.Name
	}
	return n
}

func TestRunMatrix(t *testing.T) {
	n := newFakeNet("x/a -> 10.244.1.3", "y/a -> 10.244.1.1")
	m, err := RunMatrix(context.Background(), matrixPods(), MatrixOptions{Protocol: "tcp", Port: 80, Timeout: time.Second, Parallel: 2, Probe: n.probe})
	if err != nil {
		t.Fatal(err)
	}
	want := "-\tx/a\tx/b\ty/a\n" +
		"x/a\t.\t.\tX\n" +
		"x/b\t.\t.\t.\n" +
		"y/a\tX\t.\t.\n"
	if got := m.String(); got != want {
		t.Errorf("matrix:\n%s\nwant:\n%s", got, want)
	}
	if n.maxSeen > 2 {
		t.Errorf("%d probes in flight, want at most Parallel=2", n.maxSeen)
	}
	if c, total := m.Counts(); c != 7 || total != 9 {
		t.Errorf("Counts = %d of %d, want 7 of 9", c, total)
	}
	if why := m.Why["x/a -> y/a"]; !strings.Contains(why, "i/o timeout") {
		t.Errorf("why x/a -> y/a = %q, want the probe's error", why)
	}
}

// A reply from another pod than the probed one is no connection to it;
// UDP is resent; a probe that cannot be sent is an error.
func TestRunMatrixCells(t *testing.T) {
	n := newFakeNet()
	n.names["10.244.1.2"] = "impostor"
	m, err := RunMatrix(context.Background(), matrixPods(), MatrixOptions{Protocol: "tcp", Port: 80, Timeout: time.Second, Probe: n.probe})
	if err != nil || m.Allowed["x/a"]["x/b"] || !strings.Contains(m.Why["x/a -> x/b"], "answered by impostor") {
		t.Errorf("a reply from another pod: allowed %v, why %q, err %v", m.Allowed["x/a"]["x/b"], m.Why["x/a -> x/b"], err)
	}

	udp := newFakeNet("x/a -> 10.244.1.2")
	if _, err := RunMatrix(context.Background(), matrixPods(), MatrixOptions{Protocol: "udp", Port: 53, Timeout: time.Second, Probe: udp.probe}); err != nil {
		t.Fatal(err)
	}
	if got := udp.calls.Load(); got != 8+3 {
		t.Errorf("%d udp probes, want 8 answered at once + 3 tries of the dropped one", got)
	}

	broken := func(nsPath, protocol, target string, timeout time.Duration) (Reply, error) {
		return Reply{}, errors.New("enter network namespace: no such file")
	}
	m, err = RunMatrix(context.Background(), matrixPods()[:1], MatrixOptions{Protocol: "tcp", Port: 80, Probe: broken})
	if err == nil || !strings.Contains(err.Error(), "x/a -> x/a: enter network namespace") || m.Allowed["x/a"]["x/a"] {
		t.Errorf("a probe that cannot be sent: err %v, cell %v", err, m.Allowed["x/a"]["x/a"])
	}
	for _, o := range []MatrixOptions{{Protocol: "icmp", Port: 80}, {Protocol: "tcp", Port: 0}} {
		if _, err := RunMatrix(context.Background(), matrixPods(), o); err == nil {
			t.Errorf("RunMatrix(%+v): no error", o)
		}
	}
}

func TestParseMatrixAndDiff(t *testing.T) {
	text := "# expected with x/a isolated\n-  x/a x/b y/a\nx/a . . .\n\nx/b X . .\ny/a X . .\n"
	want, err := ParseMatrix(text)
	if err != nil {
		t.Fatal(err)
	}
	if want.String() != "-\tx/a\tx/b\ty/a\nx/a\t.\t.\t.\nx/b\tX\t.\t.\ny/a\tX\t.\t.\n" {
		t.Errorf("ParseMatrix then String:\n%s", want)
	}
	got := NewMatrix([]string{"x/a", "x/b", "y/a"}, []string{"x/a", "x/b", "y/a"})
	for _, f := range got.Froms {
		for _, d := range got.Tos {
			got.Allowed[f][d] = true
		}
	}
	got.Allowed["y/a"]["x/a"] = false
	got.Why["y/a -> x/a"] = "i/o timeout"
	got.Allowed["x/a"]["y/a"] = false
	got.Why["x/a -> y/a"] = "connection refused"
	wantDiff := []string{
		"x/a -> y/a: X (connection refused), want .",
		"x/b -> x/a: connected (.), want X",
	}
	if d := Diff(want, got); !slices.Equal(d, wantDiff) {
		t.Errorf("Diff:\n%s\nwant:\n%s", strings.Join(d, "\n"), strings.Join(wantDiff, "\n"))
	}
	if d := Diff(want, want); len(d) != 0 {
		t.Errorf("a matrix differs from itself: %q", d)
	}
	small := NewMatrix([]string{"x/a"}, []string{"x/a", "z/c"})
	small.Allowed["x/a"]["x/a"] = true
	wantDiff = []string{"row x/b: expected, not probed", "row y/a: expected, not probed",
		"column x/b: expected, not probed", "column y/a: expected, not probed", "column z/c: probed, not in the expectation"}
	if d := Diff(want, small); !slices.Equal(d, wantDiff) {
		t.Errorf("Diff with other pods:\n%s\nwant:\n%s", strings.Join(d, "\n"), strings.Join(wantDiff, "\n"))
	}
	for _, bad := range []string{"", "x/a .\n", "- x/a\nx/a . .\n", "- x/a\nx/a ?\n", "- x/a\nx/a .\nx/a .\n"} {
		if _, err := ParseMatrix(bad); err == nil {
			t.Errorf("ParseMatrix(%q): no error", bad)
		}
	}
}
