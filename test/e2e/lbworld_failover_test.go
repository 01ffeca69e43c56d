package e2e

import (
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/podnet/podnet/internal/lb/announce"
	"github.com/podnet/podnet/internal/proc"
)

// lbFailure is one way the announcing node can fail: fail breaks node i
// and returns what puts it back (nil: nothing can).
type lbFailure struct {
	name string
	fail func(t *testing.T, node int) (restore func(t *testing.T))
}

// setupFailover makes the Service fo (UDP 9000) and one backend pinned to
// each node, fo-1 and fo-2; each failover selects the backend that is not
// on the announcing node, so what is measured is the announcement alone
// (not a backend lost with its node).
func (w *lbWorld) setupFailover(t *testing.T) {
	pod := `
apiVersion: v1
kind: Pod
metadata: {name: fo-%d, labels: {app: fo, node: n%[1]d}}
spec:
  nodeName: %s
  containers: [{name: srv, image: podnet/test, ports: [{containerPort: 9000, protocol: UDP}]}]
---`
	w.c.apply(t, fmt.Sprintf(pod, 1, w.node(1))+fmt.Sprintf(pod, 2, w.node(2))+`
apiVersion: v1
kind: Service
metadata: {name: fo}
spec:
  type: LoadBalancer
  selector: {app: fo, node: n1}
  ports: [{port: 9000, protocol: UDP}]
`)
	w.c.runningPods(t, "default", "app=fo", 2, true)
	w.foVIP = w.lbIP(t, "fo")
}

// failover runs a client in the world sending to fo's address every
// 10 ms, breaks the announcing node with f, and waits (10 s at most) until
// the world's neighbour entry for the address has the other node's MAC
// and the same client is answered again; it logs the longest silence.
func (w *lbWorld) failover(t *testing.T, f lbFailure) {
	vip := w.foVIP
	owner := w.settled(t, vip)
	other := 3 - owner
	w.c.kubectl(t, "patch", "svc", "fo", "--type=merge", "-p", fmt.Sprintf(`{"spec":{"selector":{"app":"fo","node":"n%d"}}}`, other))
	ownerMAC, otherMAC := w.nodeMAC(t, owner), w.nodeMAC(t, other)
	client := startVIPClient(t, w.worldNS(), netip.AddrPortFrom(vip, 9000))
	eventually(t, 30*time.Second, fmt.Sprintf("the world's client answered by fo-%d through node %d", other, owner), func() error {
		if pod := client.lastPod(); pod != fmt.Sprintf("fo-%d", other) {
			return fmt.Errorf("last reply from %q", pod)
		}
		if mac := w.worldNeighbour(vip); mac != ownerMAC {
			return fmt.Errorf("the world's neighbour entry is %q, node %d has %s", mac, owner, ownerMAC)
		}
		return nil
	})
	sent0, answered0 := client.counts()
	failAt := time.Now()
	if restore := f.fail(t, owner); restore != nil {
		t.Cleanup(func() { restore(t) })
	}
	var movedAt time.Time
	eventually(t, 10*time.Second, fmt.Sprintf("the client answered through node %d", other), func() error {
		if movedAt.IsZero() {
			if mac := w.worldNeighbour(vip); mac != otherMAC {
				return fmt.Errorf("the world's neighbour entry is %q, node %d has %s", mac, other, otherMAC)
			}
			movedAt = time.Now()
		}
		// Watch a second more: the repeated gratuitous ARPs, the
		// old owner's last answers.
		if n := client.repliesAfter(movedAt.Add(time.Second)); n < 10 {
			return fmt.Errorf("%d replies a second after the neighbour entry moved", n)
		}
		return nil
	})
	client.close()
	gap, last, first := client.gap(failAt)
	sent, answered := client.counts()
	t.Logf("%s: longest silence %s (from %s to %s after the failure); the world's neighbour entry moved within %s; %d of %d requests unanswered",
		f.name, gap.Round(time.Millisecond), last.Sub(failAt).Round(time.Millisecond), first.Sub(failAt).Round(time.Millisecond),
		movedAt.Sub(failAt).Round(time.Millisecond), (sent-sent0)-(answered-answered0), sent-sent0)
	// The surviving agent's own view (podnet status loadbalancers
	// would wait for the node that is off the network).
	v, err := w.agentView(other)
	if err != nil || !slices.ContainsFunc(v.Announced, func(a announce.Announcement) bool { return a.VIP == vip }) {
		t.Errorf("node %d's agent does not say it announces %s: %+v (%v)", other, vip, v, err)
	}
}

// stopAgent sends sig to node i's agent (the process podnet up recorded)
// and restarts it the way podnet up started it.
func (w *lbWorld) stopAgent(sig syscall.Signal) func(t *testing.T, node int) func(t *testing.T) {
	return func(t *testing.T, node int) func(t *testing.T) {
		procs := filepath.Join(w.c.stateDir, "procs")
		rec, err := proc.Read(procs, "agent-"+w.node(node))
		if err != nil || !proc.Alive(rec) {
			t.Fatalf("agent of node %d: %v (alive: %v)", node, err, err == nil && proc.Alive(rec))
		}
		if err := syscall.Kill(rec.PID, sig); err != nil {
			t.Fatalf("kill -%d %d: %v", sig, rec.PID, err)
		}
		return func(t *testing.T) {
			eventually(t, 10*time.Second, "the agent exits", func() error {
				if proc.Alive(rec) {
					return fmt.Errorf("pid %d still runs", rec.PID)
				}
				return nil
			})
			if _, err := proc.Start(procs, proc.Spec{Name: rec.Name, Argv: rec.Argv, LogFile: rec.LogFile, Netns: rec.Netns}); err != nil {
				t.Fatalf("restart %s: %v", rec.Name, err)
			}
		}
	}
}

// linkDown takes node i off the node network: the root end of its veth
// on the underlay bridge goes down.
func (w *lbWorld) linkDown(t *testing.T, node int) func(t *testing.T) {
	veth := w.cfg.NodeVethName(node)
	setLink := func(t *testing.T, state string) {
		if out, err := exec.Command("ip", "link", "set", veth, state).CombinedOutput(); err != nil {
			t.Fatalf("ip link set %s %s: %v %s", veth, state, err, out)
		}
	}
	setLink(t, "down")
	return func(t *testing.T) { setLink(t, "up") }
}

// deleteNode deletes node i's Node object; nothing brings it back (the
// pod runtime registers only when it starts), so it runs last.
func (w *lbWorld) deleteNode(t *testing.T, node int) func(t *testing.T) {
	w.c.kubectl(t, "delete", "node", w.node(node), "--wait=false")
	return nil
}
