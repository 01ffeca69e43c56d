package e2e

// The LoadBalancer tests from the outside world run in a cluster of their
// own (2 nodes, the seed examples) with this address plan, which no other
// test uses: nodes 172.28.124.0/24 (node i is .10+i, the world .254), LB
// pool 172.28.124.200/29 (podnet up's default pool, .200-.207), pods
// 10.196.0.0/16, services 10.197.0.0/16, world 198.18.124.0/24. The pool
// "tiny" (172.28.124.220/32, not auto-assigned) is the exhaustion test's.

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

var lbWorldPlan = []string{"--node-network", "172.28.124.0/24", "--pod-cidr", "10.196.0.0/16",
	"--service-cidr", "10.197.0.0/16", "--world-network", "198.18.124.0/24"}

// TestLoadBalancerFromTheWorld: LoadBalancer IPs answer a client in the
// outside world (the seed's web-lb, two Services sharing an address, a
// requested address), a Service the pool cannot serve stays pending and
// says why, externalTrafficPolicy Local keeps the client's address and is
// announced only by the node with the endpoint; and after each kind of
// node failure, a client's requests to a LoadBalancer IP are answered
// through the other node.
func TestLoadBalancerFromTheWorld(t *testing.T) {
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	c, cfg := upOwn(t, "e2e-lbw-"+randHex(2), "-f examples/seed (LoadBalancer world)",
		append([]string{"-f", filepath.Join(repoRoot, "examples", "seed")}, lbWorldPlan...)...)
	w := &lbWorld{c: c, cfg: cfg}
	t.Run("the seed's web-lb answers at its address", w.testSeed)
	t.Run("two Services share one address and each port has its own backend", w.testSharing)
	t.Run("a requested address is honoured", w.testRequested)
	t.Run("a Service the pool cannot serve stays pending with an Event", w.testExhausted)
	t.Run("externalTrafficPolicy Local keeps the client and is announced by the endpoint's node", w.testLocal)
	// The failures run in this order on one Service: each restores
	// the cluster but the last (a deleted Node does not come back).
	w.setupFailover(t)
	for _, f := range []lbFailure{
		{"graceful stop of the agent", w.stopAgent(syscall.SIGTERM)},
		{"kill -9 of the agent", w.stopAgent(syscall.SIGKILL)},
		{"the node's link down", w.linkDown},
		{"the Node deleted", w.deleteNode},
	} {
		t.Run("failover: "+f.name, func(t *testing.T) { w.failover(t, f) })
	}
}

func (w *lbWorld) testSeed(t *testing.T) {
	ip := w.lbIP(t, "web-lb")
	if !w.cfg.LBPool.Contains(ip) {
		t.Fatalf("web-lb got %s, outside the pool %s", ip, w.cfg.LBPool)
	}
	w.answeredBy(t, ip.String()+":80", "web-")
}

func (w *lbWorld) testSharing(t *testing.T) {
	w.c.apply(t, `
apiVersion: v1
kind: Pod
metadata: {name: lbw-a, labels: {app: lbw-a}}
spec:
  containers: [{name: srv, image: podnet/test, ports: [{containerPort: 8081}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: lbw-b, labels: {app: lbw-b}}
spec:
  containers: [{name: srv, image: podnet/test, ports: [{containerPort: 8082}]}]
---
apiVersion: v1
kind: Service
metadata: {name: share-a, annotations: {lb.podnet.io/sharing-key: lbw}}
spec:
  type: LoadBalancer
  selector: {app: lbw-a}
  ports: [{port: 81, targetPort: 8081}]
---
apiVersion: v1
kind: Service
metadata: {name: share-b, annotations: {lb.podnet.io/sharing-key: lbw}}
spec:
  type: LoadBalancer
  selector: {app: lbw-b}
  ports: [{port: 82, targetPort: 8082}]
`)
	a, b := w.lbIP(t, "share-a"), w.lbIP(t, "share-b")
	if a != b {
		t.Fatalf("share-a got %s, share-b %s: not shared", a, b)
	}
	w.answeredBy(t, a.String()+":81", "lbw-a")
	w.answeredBy(t, a.String()+":82", "lbw-b")
}

func (w *lbWorld) testRequested(t *testing.T) {
	want := netip.MustParseAddr("172.28.124.206")
	w.c.apply(t, fmt.Sprintf(`
apiVersion: v1
kind: Service
metadata: {name: asked, annotations: {lb.podnet.io/ip: "%s"}}
spec:
  type: LoadBalancer
  selector: {app: lbw-b}
  ports: [{port: 80, targetPort: 8082}]
`, want))
	if got := w.lbIP(t, "asked"); got != want {
		t.Fatalf("asked for %s, got %s", want, got)
	}
	w.answeredBy(t, want.String()+":80", "lbw-b")
}

func (w *lbWorld) testExhausted(t *testing.T) {
	tinySvc := `
apiVersion: v1
kind: Service
metadata: {name: %s, annotations: {lb.podnet.io/pool: tiny}}
spec:
  type: LoadBalancer
  ports: [{port: 80}]
`
	w.c.apply(t, `
apiVersion: lb.podnet.io/v1alpha1
kind: LoadBalancerIPPool
metadata: {name: tiny}
spec:
  blocks: [{cidr: 172.28.124.220/32}]
  autoAssign: false
---`+fmt.Sprintf(tinySvc, "tiny-1"))
	if got := w.lbIP(t, "tiny-1"); got != netip.MustParseAddr("172.28.124.220") {
		t.Fatalf("tiny-1 got %s, want the pool's only address", got)
	}
	w.c.apply(t, fmt.Sprintf(tinySvc, "tiny-2"))
	cond := `jsonpath={.status.conditions[?(@.type=="lb.podnet.io/AddressAssigned")].status}/{.status.conditions[?(@.type=="lb.podnet.io/AddressAssigned")].reason}|{.status.loadBalancer.ingress}`
	eventually(t, 30*time.Second, "tiny-2 pending: PoolExhausted", func() error {
		if out := w.c.kubectl(t, "get", "svc", "tiny-2", "-o", cond); out != "False/PoolExhausted|" {
			return fmt.Errorf("condition/reason|ingress: %q", out)
		}
		return nil
	})
	eventually(t, 30*time.Second, "a Warning Event for tiny-2", func() error {
		out := w.c.kubectl(t, "get", "events", "--field-selector", "reason=PoolExhausted,involvedObject.name=tiny-2",
			"-o", "jsonpath={.items[*].type}")
		if !strings.Contains(out, "Warning") {
			return fmt.Errorf("event types %q", out)
		}
		return nil
	})
	w.c.kubectl(t, "delete", "svc", "tiny-1")
	if got := w.lbIP(t, "tiny-2"); got != netip.MustParseAddr("172.28.124.220") {
		t.Fatalf("tiny-2 got %s once tiny-1 left", got)
	}
}

// testLocal puts the only endpoint on node 1, then on node 2: each time
// only that node announces (whatever the hash would choose), the world's
// neighbour entry has its MAC, and the backend sees the world's address.
func (w *lbWorld) testLocal(t *testing.T) {
	pod := `
apiVersion: v1
kind: Pod
metadata: {name: local-be, labels: {app: local-be}}
spec:
  nodeName: %s
  containers: [{name: srv, image: podnet/test, ports: [{containerPort: 8080}]}]
`
	w.c.apply(t, fmt.Sprintf(pod, w.node(1))+`---
apiVersion: v1
kind: Service
metadata: {name: local-lb}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: local-be}
  ports: [{port: 80, targetPort: 8080}]
`)
	vip := w.lbIP(t, "local-lb")
	for _, i := range []int{1, 2} {
		if i == 2 {
			w.c.kubectl(t, "delete", "pod", "local-be", "--wait=true")
			w.c.apply(t, fmt.Sprintf(pod, w.node(2)))
		}
		w.c.runningPods(t, "default", "app=local-be", 1, true)
		client := w.answeredBy(t, vip.String()+":80", "local-be")
		if host, _, _ := strings.Cut(client, ":"); host != w.cfg.WorldIP.String() {
			t.Errorf("endpoint on node %d: the backend saw %s, want the world's %s", i, client, w.cfg.WorldIP)
		}
		eventually(t, 10*time.Second, fmt.Sprintf("only node %d announces %s", i, vip), func() error {
			by, err := w.announcedBy(t, vip)
			if err != nil || !slices.Equal(by, []string{w.node(i)}) {
				return fmt.Errorf("announced by %v (%v)", by, err)
			}
			return nil
		})
		mac := w.nodeMAC(t, i)
		eventually(t, 10*time.Second, fmt.Sprintf("the world's neighbour entry for %s is node %d's", vip, i), func() error {
			if got := w.worldNeighbour(vip); got != mac {
				return fmt.Errorf("lladdr %q, node %d has %s", got, i, mac)
			}
			return nil
		})
	}
}
