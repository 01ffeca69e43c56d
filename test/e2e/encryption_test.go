package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podnet/podnet/internal/proc"
	"github.com/podnet/podnet/internal/trace"
	"github.com/podnet/podnet/internal/wireguard"
)

// End-to-end tests of WireGuard encryption between nodes (issue 15), on
// clusters of their own:
//
//   - wgd: direct routing, --encryption wireguard --encryption-strict;
//     nodes 172.29.40.0/24, pods 10.140.0.0/17, services 10.140.128.0/20,
//     world 198.18.40.0/24. Two nodes, a third added by a subtest.
//   - wgv: VXLAN routing, --encryption wireguard (not strict);
//     nodes 172.29.41.0/24, pods 10.141.0.0/17, services 10.141.128.0/20,
//     world 198.18.41.0/24.
//
// Pods and services share a /16 so that no range meets a shared cluster
// moved by PODNET_E2E_SLOT (10.142-159); 172.29.42-49 and 198.18.42-49
// are kept for more of these clusters. Every check that traffic is
// encrypted reads the cluster's node network (its underlay bridge) with
// encryption_capture_test.go's capture, and the same capture passes a
// positive control: it sees the marker and the pod addresses where the
// traffic is in the clear (TestEncryptionCaptureSeesPlainPodTraffic on the
// shared cluster, and a skipped peer without strict mode on wgv).

func encPlan(x int) []string {
	return []string{"--node-network", fmt.Sprintf("172.29.%d.0/24", 40+x), "--pod-cidr", fmt.Sprintf("10.%d.0.0/17", 140+x),
		"--service-cidr", fmt.Sprintf("10.%d.128.0/20", 140+x), "--world-network", fmt.Sprintf("198.18.%d.0/24", 40+x)}
}

func upEncrypted(t *testing.T, prefix string, x int, args ...string) *encEnv {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	c, err := up(prefix+"-"+randHex(2), append(append(encPlan(x), "--encryption", "wireguard"), args...)...)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	t.Cleanup(c.down)
	t.Logf("podnet up %s: %s", strings.Join(args, " "), c.upTime.Round(100*time.Millisecond))
	return newEncEnv(t, c, "default")
}

// checkEncrypted sends the marker both ways between a and b (TCP and UDP)
// and checks that the node network carried only WireGuard between the
// nodes, and that a's node routes b through the WireGuard device.
func (e *encEnv) checkEncrypted(t *testing.T, what string, a, b *encPod) {
	t.Helper()
	waitRouteDev(t, a.node, b.ip, wireguard.Device)
	cp := e.capture(t, 0)
	n := e.exchanges(t, 20*time.Second, [2]*encPod{a, b}, [2]*encPod{b, a})
	rep, err := cp.stop()
	// Each exchange is at least a message and its echo.
	assertEncrypted(t, what, rep, err, int64(2*n), 0)
}

// TestEncryptionDirectStrict runs one encrypted, strict cluster in direct
// routing mode through the checks, one subtest each, in order:
// the marker, rotation under a long transfer, an agent restart, a node
// that joins, and a peer that goes missing.
func TestEncryptionDirectStrict(t *testing.T) {
	e := upEncrypted(t, "e2e-wgd", 0, "--encryption-strict")
	n1, n2 := e.cfg.NodeName(1), e.cfg.NodeName(2)
	a, b := e.pod(t, "enc-a", 1), e.pod(t, "enc-b", 2)
	for _, n := range []string{n1, n2} {
		if st := e.mustStatus(t, n); !st.Strict || st.Implementation == "" || st.ListenPort != wireguard.DefaultPort {
			t.Errorf("%s: /encryption %+v, want strict on port %d", n, st, wireguard.DefaultPort)
		}
	}

	t.Run("a marker between pods on two nodes is only seen as WireGuard on the node network", func(t *testing.T) {
		e.checkEncrypted(t, "direct", a, b)
		for _, pair := range [][2]string{{n1, n2}, {n2, n1}} {
			if err := e.handshaken(pair[0], []string{pair[1]}, time.Time{}, nil); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("key rotation on request keeps a long transfer alive", func(t *testing.T) {
		e.rotateUnderTransfer(t, a, b)
	})

	t.Run("a restarted agent re-establishes its tunnels", func(t *testing.T) {
		e.restartAgentUnderTraffic(t, a, b)
	})

	var c *encPod
	t.Run("a node that joins is reached encrypted", func(t *testing.T) {
		c = e.addNodeEncrypted(t, a, b)
	})

	t.Run("strict mode drops rather than leaks while a peer is missing", func(t *testing.T) {
		if c == nil {
			t.Fatal("no pod on a third node: the subtest that adds the node failed")
		}
		e.strictWhilePeerMissing(t, a, b, c)
	})

	t.Run("a node that leaves is removed as a peer", func(t *testing.T) {
		if c == nil {
			t.Fatal("no third node: the subtest that adds the node failed")
		}
		e.nodeLeaves(t, a, b, c)
	})
}

// nodeLeaves stops c's node's runtime and agent and deletes its Node: the
// other nodes remove it as a peer (and its route), and keep talking.
func (e *encEnv) nodeLeaves(t *testing.T, a, b, c *encPod) {
	for _, name := range []string{"runtime-" + c.node, "agent-" + c.node} {
		rec, err := proc.Read(filepath.Join(e.c.stateDir, "procs"), name)
		if err != nil {
			t.Fatal(err)
		}
		if err := proc.Stop(rec, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := e.c.podnet("kubectl", "--", "delete", "node", c.node, "--wait=true"); err != nil {
		t.Fatalf("delete node %s: %v\n%s", c.node, err, out)
	}
	for _, node := range []string{a.node, b.node} {
		eventually(t, 30*time.Second, node+" drops "+c.node+" as a peer", func() error {
			st, err := e.status(node)
			if err != nil {
				return err
			}
			for _, p := range st.Peers {
				if p.Node == c.node || p.Node == "" {
					return fmt.Errorf("peers %+v", st.Peers)
				}
			}
			if len(st.Peers) != 1 {
				return fmt.Errorf("%d peers, want 1 (the other node)", len(st.Peers))
			}
			return nil
		})
		if got := e.metric(t, node, "podnet_wireguard_peers"); got != 1 {
			t.Errorf("%s: podnet_wireguard_peers %v, want 1", node, got)
		}
		if dev, err := routeDev(node, c.ip); err == nil && dev == wireguard.Device {
			t.Errorf("%s still routes %s (the deleted node's pod) into %s", node, c.ip, dev)
		}
	}
	if n := e.exchanges(t, 30*time.Second, [2]*encPod{a, b}, [2]*encPod{b, a}); n == 0 {
		t.Error("the remaining nodes' pods no longer talk")
	}
}

// rotateUnderTransfer streams about 24 s from a to b, asks b's node for a
// new key after 8 s, and checks that the key changed, the transfer ended
// intact and nothing of it was seen in the clear.
func (e *encEnv) rotateUnderTransfer(t *testing.T, a, b *encPod) {
	const size, rate = 60 << 20, 2500 << 10 // 60 MiB at 2.5 MiB/s: 24.6 s
	peer := b.node
	before := e.node(t, peer).Annotations
	oldKey := before[wireguard.AnnotationPublicKey]
	if st := e.mustStatus(t, peer); st.PublicKey != oldKey || oldKey == "" {
		t.Fatalf("%s: /encryption has key %q, its Node %q", peer, st.PublicKey, oldKey)
	}
	rotations0 := e.metric(t, peer, "podnet_wireguard_key_rotations_total")
	cp := e.capture(t, 0)
	s := e.startStream(t, a, b, size, rate)
	time.Sleep(8 * time.Second)

	asked := time.Now()
	e.annotate(t, peer, wireguard.AnnotationRotate, asked.UTC().Format(time.RFC3339))
	var newKey string
	eventually(t, 30*time.Second, peer+" publishes a new key", func() error {
		ann := e.node(t, peer).Annotations
		newKey = ann[wireguard.AnnotationPublicKey]
		if newKey == oldKey || ann[wireguard.AnnotationKeyCreated] == before[wireguard.AnnotationKeyCreated] {
			return fmt.Errorf("key %s made %s", newKey, ann[wireguard.AnnotationKeyCreated])
		}
		st, err := e.status(peer)
		if err == nil && st.PublicKey != newKey {
			err = fmt.Errorf("/encryption has key %s, the Node %s", st.PublicKey, newKey)
		}
		return err
	})
	published := time.Since(asked)
	eventually(t, 30*time.Second, a.node+" handshakes with the new key, and has let go of the old", func() error {
		st, err := e.status(a.node)
		if err == nil {
			err = peersExactly(st, peer)
		}
		if err == nil {
			err = e.handshaken(a.node, []string{peer}, asked, map[string]string{peer: newKey})
		}
		return err
	})
	handshake := time.Since(asked)

	res := s.wait(t, 2*time.Minute)
	rep, err := cp.stop()
	if res.err != nil {
		t.Errorf("transfer: %v", res.err)
	}
	if res.sent != size || res.received != size || res.sentSum != res.gotSum {
		t.Errorf("transfer: sent %d bytes, received %d, want %d each and the same SHA-256 (%x, %x)", res.sent, res.received, size, res.sentSum[:6], res.gotSum[:6])
	}
	t.Logf("rotation: new key on the Node after %s, %s handshaken with it after %s; %d MiB in %s, longest stall at the receiver %s, longest write %s",
		published.Round(time.Millisecond), a.node, handshake.Round(time.Millisecond), size>>20,
		res.elapsed.Round(100*time.Millisecond), res.maxGap.Round(time.Millisecond), res.maxWrite.Round(time.Millisecond))
	// The frames may each hold several messages (UDP GSO): the bytes
	// tell that the whole transfer went through WireGuard.
	assertEncrypted(t, "transfer with a rotation", rep, err, 1, size)
	if got := e.metric(t, peer, "podnet_wireguard_key_rotations_total"); got != rotations0+1 {
		t.Errorf("%s: podnet_wireguard_key_rotations_total %v, want %v", peer, got, rotations0+1)
	}
	if ev := e.events(t, peer, "WireGuardKeyRotated"); len(ev) == 0 {
		t.Errorf("%s: no WireGuardKeyRotated Event", peer)
	}
}

// udpProber sends a's marker to b's echo every 50 ms and remembers when
// it came back.
type udpProber struct {
	stopOnce sync.Once
	stopped  chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	ok       []time.Time
}

func (e *encEnv) startProber(a, b *encPod) *udpProber {
	p := &udpProber{stopped: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stopped:
				return
			default:
			}
			if exchange(a, b, "udp", e.msg(a, b, "udp"), 200*time.Millisecond) == nil {
				p.mu.Lock()
				p.ok = append(p.ok, time.Now())
				p.mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return p
}

// answeredAfter says whether an answer came after at.
func (p *udpProber) answeredAfter(at time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ok) > 0 && p.ok[len(p.ok)-1].After(at)
}

func (p *udpProber) stop() []time.Time {
	p.stopOnce.Do(func() { close(p.stopped) })
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.ok)
}

// longestGap is the longest time between two answers in ok, and when it
// began.
func longestGap(ok []time.Time) (time.Duration, time.Time) {
	var gap time.Duration
	var at time.Time
	for i := 1; i < len(ok); i++ {
		if d := ok[i].Sub(ok[i-1]); d > gap {
			gap, at = d, ok[i-1]
		}
	}
	return gap, at
}

// stopAgent ends node's agent by its process record and returns the
// record to start it again with.
func (e *encEnv) stopAgent(t *testing.T, node string) *proc.Record {
	t.Helper()
	rec, err := proc.Read(filepath.Join(e.c.stateDir, "procs"), "agent-"+node)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Stop(rec, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return rec
}

// startAgent starts an agent again with the argv of its record.
func (e *encEnv) startAgent(t *testing.T, rec *proc.Record) {
	t.Helper()
	if _, err := proc.Start(filepath.Join(e.c.stateDir, "procs"), proc.Spec{Name: rec.Name, Argv: rec.Argv, LogFile: rec.LogFile, Netns: rec.Netns}); err != nil {
		t.Fatalf("restart %s: %v", rec.Name, err)
	}
}

// restartAgentUnderTraffic restarts b's node's agent while a probes b
// every 50 ms, and reports how long b's pods were cut off; the node
// network stays clean throughout (strict mode: also while the agent, and
// with it the user-space device, is down).
func (e *encEnv) restartAgentUnderTraffic(t *testing.T, a, b *encPod) {
	cp := e.capture(t, 0)
	p := e.startProber(a, b)
	defer p.stop()
	time.Sleep(time.Second)
	t0 := time.Now()
	rec := e.stopAgent(t, b.node)
	stopped := time.Since(t0)
	e.startAgent(t, rec)
	restarted := time.Now()
	// Wait for an answer a second after the restart, or a minute.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && !p.answeredAfter(restarted.Add(time.Second)) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	ok := p.stop()
	rep, err := cp.stop()
	var after []time.Time
	for _, at := range ok {
		if at.After(restarted) {
			after = append(after, at)
		}
	}
	if len(after) == 0 {
		t.Fatalf("no answer from %s in the minute after its node's agent restarted (%d answers before)", b.name, len(ok))
	}
	gap, at := longestGap(ok)
	t.Logf("agent restart on %s: stopping took %s; pods cut off for %s (the longest gap between answers, beginning %s from the start of the stop); first answer %s after the new agent started",
		b.node, stopped.Round(time.Millisecond), gap.Round(time.Millisecond), at.Sub(t0).Round(time.Millisecond), after[0].Sub(restarted).Round(time.Millisecond))
	assertEncrypted(t, "agent restart", rep, err, int64(len(ok)), 0)
	if err := e.handshaken(b.node, []string{a.node}, restarted, nil); err != nil {
		t.Error(err)
	}
}

// addNodeEncrypted adds a node with podnet add-node, starts a pod on it
// and checks that the pods of the first two nodes reach it, and it them,
// only through WireGuard, also in the first seconds of the node's life.
func (e *encEnv) addNodeEncrypted(t *testing.T, a, b *encPod) *encPod {
	cp := e.capture(t, 1)
	t0 := time.Now()
	out, err := e.c.podnet("add-node")
	if err != nil {
		t.Fatalf("add-node: %v\n%s", err, out)
	}
	e.reload(t)
	if e.cfg.Nodes != 3 {
		t.Fatalf("after add-node the cluster has %d nodes, want 3", e.cfg.Nodes)
	}
	n3 := e.cfg.NodeName(3)
	if !strings.Contains(out, n3) {
		t.Errorf("add-node does not name %s:\n%s", n3, out)
	}
	c := e.pod(t, "enc-c", 3)
	ready := time.Since(t0)
	n := e.exchanges(t, 30*time.Second, [2]*encPod{a, c}, [2]*encPod{c, a}, [2]*encPod{b, c})
	reached := time.Since(t0)
	rep, err := cp.stop()
	t.Logf("add-node: pod on %s Ready after %s, reached from both other nodes after %s", n3, ready.Round(100*time.Millisecond), reached.Round(100*time.Millisecond))
	assertEncrypted(t, "a node joins", rep, err, int64(2*n), 0)
	for _, node := range []string{a.node, b.node} {
		if err := e.handshaken(node, []string{n3}, time.Time{}, nil); err != nil {
			t.Error(err)
		}
	}
	if err := e.handshaken(n3, []string{a.node, b.node}, time.Time{}, nil); err != nil {
		t.Error(err)
	}
	if got := e.metric(t, a.node, "podnet_wireguard_peers"); got != 2 {
		t.Errorf("%s: podnet_wireguard_peers %v, want 2", a.node, got)
	}
	if got, err := routeDev(a.node, c.ip); err != nil || got != wireguard.Device {
		t.Errorf("%s routes %s through %q (%v), want %s", a.node, c.ip, got, err, wireguard.Device)
	}
	return c
}

// strictWhilePeerMissing stops c's node's agent and gives its Node a
// malformed key, then a key of the wrong length: a's node skips it (a
// Warning Event), drops a's traffic to c rather than sending it in the
// clear, and counts it; a and b keep talking. After the agent restarts it
// publishes its key again and c is reached encrypted.
func (e *encEnv) strictWhilePeerMissing(t *testing.T, a, b, c *encPod) {
	missing := c.node
	good := e.node(t, missing).Annotations[wireguard.AnnotationPublicKey]
	rec := e.stopAgent(t, missing)
	restarted := false
	defer func() {
		if !restarted {
			e.startAgent(t, rec)
		}
	}()

	for _, tc := range []struct{ what, key string }{
		{"a malformed key", "this is not a WireGuard key!"},
		{"valid base64 of the wrong length", base64.StdEncoding.EncodeToString([]byte("sixteen bytes..."))},
	} {
		seen := len(e.events(t, missing, "WireGuardPeerSkipped"))
		e.annotate(t, missing, wireguard.AnnotationPublicKey, tc.key)
		var reason string
		eventually(t, 30*time.Second, "the other agents skip "+missing+" with "+tc.what, func() error {
			for _, node := range []string{a.node, b.node} {
				st, err := e.status(node)
				if err != nil {
					return err
				}
				if reason = st.Invalid[missing]; reason == "" || !strings.Contains(reason, wireguard.AnnotationPublicKey) {
					return fmt.Errorf("%s: invalid %v", node, st.Invalid)
				}
				other := a.node
				if node == a.node {
					other = b.node
				}
				if err := peersExactly(st, other); err != nil {
					return err
				}
			}
			return nil
		})
		waitRouteDev(t, a.node, c.ip, "eth0")
		if peers, invalid := e.metric(t, a.node, "podnet_wireguard_peers"), e.metric(t, a.node, "podnet_wireguard_invalid_peers"); peers != 1 || invalid != 1 {
			t.Errorf("%s: podnet_wireguard_peers %v and _invalid_peers %v, want 1 and 1", a.node, peers, invalid)
		}
		drops0 := e.mustStatus(t, a.node).StrictDrops
		metric0 := e.metric(t, a.node, "podnet_wireguard_strict_drops_total")
		got0 := c.echo.received.Load()

		cp := e.capture(t, 0)
		const tries = 10
		delivered := 0
		for range tries {
			if exchange(a, c, "udp", e.msg(a, c, "udp"), 300*time.Millisecond) == nil {
				delivered++
			}
		}
		if exchange(a, c, "tcp", e.msg(a, c, "tcp"), time.Second) == nil {
			delivered++
		}
		n := e.exchanges(t, 10*time.Second, [2]*encPod{a, b}, [2]*encPod{b, a})
		rep, err := cp.stop()
		assertEncrypted(t, tc.what, rep, err, int64(2*n), 0)
		if delivered > 0 || c.echo.received.Load() != got0 {
			t.Errorf("%s: %d of %d sends from %s reached %s (its echo got %d), want none", tc.what, delivered, tries+1, a.name, c.name, c.echo.received.Load()-got0)
		}
		drops := e.mustStatus(t, a.node).StrictDrops
		metric := e.metric(t, a.node, "podnet_wireguard_strict_drops_total")
		if drops < drops0+tries || metric < metric0+tries {
			t.Errorf("%s: strict drops on %s went from %d to %d (metric %v to %v), want at least %d more", tc.what, a.node, drops0, drops, metric0, metric, tries)
		}
		var ev []string
		eventually(t, 20*time.Second, "a new WireGuardPeerSkipped Event on "+missing, func() error {
			ev = nil
			for _, x := range e.events(t, missing, "WireGuardPeerSkipped") {
				ev = append(ev, fmt.Sprintf("%s %s: %s", x.Type, x.Source.Component, x.Message))
			}
			fromA := func(s string) bool {
				return strings.HasPrefix(s, "Warning") && strings.Contains(s, a.node+" ") && strings.Contains(s, reason)
			}
			if len(ev) <= seen || !slices.ContainsFunc(ev, fromA) {
				return fmt.Errorf("%d events, %d before: %q", len(ev), seen, ev)
			}
			return nil
		})
		t.Logf("%s: skipped (%s); %d drops counted on %s; events: %q", tc.what, reason, drops-drops0, a.node, ev)
	}

	t0 := time.Now()
	e.startAgent(t, rec)
	restarted = true
	// The pods on the node are cut off until the others have its key
	// again: measured by probing every 100 ms.
	var back time.Duration
	eventually(t, 60*time.Second, c.name+" reached again after its agent restarted", func() error {
		err := exchange(a, c, "udp", e.msg(a, c, "udp"), 200*time.Millisecond)
		back = time.Since(t0)
		return err
	})
	if got := e.node(t, missing).Annotations[wireguard.AnnotationPublicKey]; got != good {
		t.Errorf("%s published key %q after its restart, want its key %q again", missing, got, good)
	}
	t.Logf("after the restart of %s's agent its pods were cut off for %s more", missing, back.Round(time.Millisecond))
	e.checkEncrypted(t, "after the restart", a, c)
	e.checkEncrypted(t, "after the restart", c, b)
}

// TestEncryptionVXLAN runs the marker check on an encrypted cluster in
// VXLAN routing mode without strict mode, and its positive control: a node
// whose key is unusable is then reached in the clear, over VXLAN, and the
// capture sees the marker and the pod addresses inside.
func TestEncryptionVXLAN(t *testing.T) {
	e := upEncrypted(t, "e2e-wgv", 1, "--routing-mode", "vxlan")
	a, b := e.pod(t, "enc-a", 1), e.pod(t, "enc-b", 2)

	t.Run("a marker between pods on two nodes is only seen as WireGuard on the node network", func(t *testing.T) {
		e.checkEncrypted(t, "vxlan", a, b)
	})

	t.Run("podnet trace names the WireGuard route", func(t *testing.T) {
		r, code, out := e.c.traceJSON(t, "-n", e.ns, a.name, b.ip+":80")
		if code > 1 || len(r.Paths) != 1 {
			t.Fatalf("podnet trace %s %s:80: exit %d, %d paths:\n%s", a.name, b.ip, code, len(r.Paths), out)
		}
		if rt := r.Paths[0].Route; rt.Kind != trace.RouteWireGuard || rt.From != a.node || rt.To != b.node || rt.Unencrypted != "" {
			t.Errorf("route %+v, want kind %s from %s to %s, encrypted", rt, trace.RouteWireGuard, a.node, b.node)
		}
	})

	t.Run("without strict mode a node with an unusable key is reached in the clear, and the capture sees it", func(t *testing.T) {
		rec := e.stopAgent(t, b.node)
		restarted := false
		defer func() {
			if !restarted {
				e.startAgent(t, rec)
			}
		}()
		e.annotate(t, b.node, wireguard.AnnotationPublicKey, "not a key")
		waitRouteDev(t, a.node, b.ip, "pnvxlan")
		got0 := b.echo.received.Load()
		cp := e.capture(t, 0)
		// b's answers go back through its node's device, which no agent
		// serves now: only the way there is seen.
		eventually(t, 10*time.Second, "the marker reaches "+b.name+" in the clear", func() error {
			_ = exchange(a, b, "udp", e.msg(a, b, "udp"), 300*time.Millisecond)
			if b.echo.received.Load() == got0 {
				return fmt.Errorf("not received")
			}
			return nil
		})
		rep, err := cp.stop()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("in the clear: node network: %s\n%s", rep, strings.Join(rep.Leaks, "\n"))
		if rep.MarkerFrames == 0 || !slices.ContainsFunc(rep.Leaks, func(s string) bool { return strings.Contains(s, "pod address "+a.ip+" inside VXLAN") }) {
			t.Errorf("the capture did not see the marker and %s inside VXLAN, though the pods talked in the clear", a.ip)
		}

		e.startAgent(t, rec)
		restarted = true
		eventually(t, 30*time.Second, b.node+" publishes its key again", func() error {
			return e.handshaken(a.node, []string{b.node}, time.Time{}, nil)
		})
		e.checkEncrypted(t, "vxlan after the agent's restart", a, b)
	})
}

// TestEncryptionCaptureSeesPlainPodTraffic is the positive control of the
// capture in direct routing mode: on the shared cluster, which does not
// encrypt, the same exchange shows the marker and the pod addresses on the
// node network, and no WireGuard.
func TestEncryptionCaptureSeesPlainPodTraffic(t *testing.T) {
	c := sharedCluster(t)
	ns := "enc-ctl-" + randHex(3)
	np := &npEnv{c: c, cs: c.client(t)}
	if _, err := np.cs.CoreV1().Namespaces().Create(context.Background(), &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { np.deleteNamespace(t, ns) })
	e := newEncEnv(t, c, ns)
	if e.cfg.Encryption != "" {
		t.Fatalf("the shared cluster encrypts (%q): it cannot be the control", e.cfg.Encryption)
	}
	a, b := e.pod(t, "plain-a", 1), e.pod(t, "plain-b", 2)
	cp := e.capture(t, 0)
	n := e.exchanges(t, 20*time.Second, [2]*encPod{a, b}, [2]*encPod{b, a})
	rep, err := cp.stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("plain: node network: %s", rep)
	// Each exchange carries the marker there and back.
	if rep.MarkerFrames < int64(2*n) || rep.WireGuard != 0 {
		t.Errorf("want at least %d frames with the marker and no WireGuard: %s", 2*n, rep)
	}
	if !slices.ContainsFunc(rep.Leaks, func(s string) bool { return strings.Contains(s, "pod address "+a.ip) }) {
		t.Errorf("the capture did not see %s:\n%s", a.ip, strings.Join(rep.Leaks, "\n"))
	}
}
