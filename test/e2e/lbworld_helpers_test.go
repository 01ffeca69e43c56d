package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podnet/podnet/internal/lb/announce"
	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/testserver"
)

// lbWorld is a cluster seen from its outside-world namespace: what a
// client on the node network sees of its LoadBalancer IPs.
type lbWorld struct {
	c   *cluster
	cfg *localcluster.Config
	// foVIP is the failover Service's address (setupFailover).
	foVIP netip.Addr
}

func (w *lbWorld) node(i int) string { return w.cfg.NodeName(i) }

func (w *lbWorld) worldNS() string { return "/run/netns/" + w.cfg.WorldNSName() }

// lbIP waits until the Service has a LoadBalancer address and returns it.
func (w *lbWorld) lbIP(t *testing.T, svc string) netip.Addr {
	t.Helper()
	var ip netip.Addr
	eventually(t, time.Minute, svc+" has a LoadBalancer address", func() error {
		out := w.c.kubectl(t, "get", "svc", svc, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		a, err := netip.ParseAddr(strings.TrimSpace(out))
		if err != nil {
			return fmt.Errorf("ingress %q", out)
		}
		ip = a
		return nil
	})
	return ip
}

// curl asks target (host:port) over HTTP from the world and returns who
// answered and the client address the backend saw.
func (w *lbWorld) curl(target string) (pod, client string, err error) {
	out, err := exec.Command("nsenter", "--net="+w.worldNS(), "curl", "-s", "--max-time", "2", "http://"+target+"/").CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("curl %s from the world: %w %q", target, err, out)
	}
	pod, client, ok := testserver.ParseReply(string(out))
	if !ok {
		return "", "", fmt.Errorf("curl %s from the world: %q", target, out)
	}
	return pod, client, nil
}

// answeredBy waits until target answers from the world with a pod whose
// name starts with podPrefix, and returns the client address it saw.
func (w *lbWorld) answeredBy(t *testing.T, target, podPrefix string) string {
	t.Helper()
	var client string
	eventually(t, 30*time.Second, target+" answers from the world", func() error {
		pod, c, err := w.curl(target)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(pod, podPrefix) {
			return fmt.Errorf("answered by %q, want %s*", pod, podPrefix)
		}
		client = c
		return nil
	})
	return client
}

// announcedBy is the ANNOUNCED BY column of `podnet status loadbalancers`
// for vip: the nodes whose agents say they answer for it.
func (w *lbWorld) announcedBy(t *testing.T, vip netip.Addr) ([]string, error) {
	t.Helper()
	out, err := w.c.podnet("status", "loadbalancers")
	if err != nil {
		return nil, fmt.Errorf("podnet status loadbalancers: %w\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == vip.String() {
			if f[2] == "NONE" {
				return nil, nil
			}
			return strings.Split(f[2], ","), nil
		}
	}
	return nil, fmt.Errorf("%s is not in podnet status loadbalancers:\n%s", vip, out)
}

// owner waits until exactly one node announces vip and returns its index.
func (w *lbWorld) owner(t *testing.T, vip netip.Addr) int {
	t.Helper()
	var owner int
	eventually(t, 30*time.Second, "one node announces "+vip.String(), func() error {
		by, err := w.announcedBy(t, vip)
		if err != nil {
			return err
		}
		if len(by) != 1 {
			return fmt.Errorf("announced by %v", by)
		}
		for i := 1; i <= w.cfg.Nodes; i++ {
			if by[0] == w.node(i) {
				owner = i
				return nil
			}
		}
		return fmt.Errorf("announced by %v, not a node of this cluster", by)
	})
	return owner
}

// nodeMAC is the address of node i's eth0 on the node network.
func (w *lbWorld) nodeMAC(t *testing.T, i int) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", w.cfg.NodeNSName(i), "-o", "link", "show", "eth0").CombinedOutput()
	if err != nil {
		t.Fatalf("eth0 of node %d: %v %s", i, err, out)
	}
	if _, rest, ok := strings.Cut(string(out), "link/ether "); ok {
		return strings.Fields(rest)[0]
	}
	t.Fatalf("eth0 of node %d has no MAC: %s", i, out)
	return ""
}

// worldNeighbour is the MAC the world's neighbour table holds for vip, ""
// when it has none (or an entry that failed).
func (w *lbWorld) worldNeighbour(vip netip.Addr) string {
	out, err := exec.Command("ip", "-n", w.cfg.WorldNSName(), "neigh", "show", vip.String()).CombinedOutput()
	if err != nil {
		return ""
	}
	if _, rest, ok := strings.Cut(string(out), "lladdr "); ok {
		return strings.Fields(rest)[0]
	}
	return ""
}

// agentView reads node i's agent's own /lb/announcements.
func (w *lbWorld) agentView(i int) (announce.NodeView, error) {
	var v announce.NodeView
	out, err := exec.Command("nsenter", "--net=/run/netns/"+w.cfg.NodeNSName(i), "curl", "-s", "--max-time", "2",
		"http://127.0.0.1:10249/lb/announcements").CombinedOutput()
	if err != nil {
		return v, fmt.Errorf("node %d /lb/announcements: %w %q", i, err, out)
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return v, fmt.Errorf("node %d /lb/announcements: %w %q", i, err, out)
	}
	return v, nil
}

// settled waits until every agent sees every node alive and vip is
// announced by one node, which it returns.
func (w *lbWorld) settled(t *testing.T, vip netip.Addr) int {
	t.Helper()
	eventually(t, 60*time.Second, "every agent sees every node alive", func() error {
		for i := 1; i <= w.cfg.Nodes; i++ {
			v, err := w.agentView(i)
			if err != nil {
				return err
			}
			if len(v.Alive) != w.cfg.Nodes {
				return fmt.Errorf("node %d sees %v alive", i, v.Alive)
			}
		}
		return nil
	})
	return w.owner(t, vip)
}

// vipClient sends a UDP datagram to a LoadBalancer IP every 10 ms from
// one socket in the world namespace (one client, its retries on one flow)
// and records when replies come back and who sent them.
type vipClient struct {
	conn *net.UDPConn
	wg   sync.WaitGroup
	stop chan struct{}

	mu      sync.Mutex // guards the fields below
	sent    int
	replies []vipReply
}

type vipReply struct {
	at  time.Time
	pod string
}

func startVIPClient(t *testing.T, worldNS string, target netip.AddrPort) *vipClient {
	t.Helper()
	c := &vipClient{stop: make(chan struct{})}
	if err := netns.Do(worldNS, func() (err error) {
		c.conn, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(target))
		return err
	}); err != nil {
		t.Fatalf("UDP client in the world: %v", err)
	}
	c.wg.Add(2)
	go c.send()
	go c.receive()
	t.Cleanup(c.close)
	return c
}

func (c *vipClient) send() {
	defer c.wg.Done()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
			_, _ = c.conn.Write([]byte("ping\n"))
			c.mu.Lock()
			c.sent++
			c.mu.Unlock()
		}
	}
}

func (c *vipClient) receive() {
	defer c.wg.Done()
	buf := make([]byte, 512)
	for {
		n, err := c.conn.Read(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // ICMP errors while no node answers: keep trying
			continue
		}
		pod, _, _ := testserver.ParseReply(string(buf[:n]))
		c.mu.Lock()
		c.replies = append(c.replies, vipReply{time.Now(), pod})
		c.mu.Unlock()
	}
}

func (c *vipClient) close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	time.Sleep(200 * time.Millisecond) // the replies still on their way
	_ = c.conn.Close()
	c.wg.Wait()
}

// counts returns how many requests were sent and answered so far.
func (c *vipClient) counts() (sent, answered int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent, len(c.replies)
}

// lastPod is the pod that sent the last reply, "" before any.
func (c *vipClient) lastPod() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.replies) == 0 {
		return ""
	}
	return c.replies[len(c.replies)-1].pod
}

// repliesAfter counts the replies received after t.
func (c *vipClient) repliesAfter(t time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.IndexFunc(c.replies, func(r vipReply) bool { return r.at.After(t) })
	if i < 0 {
		return 0
	}
	return len(c.replies) - i
}

// gap is the longest time between two consecutive replies that ends after
// from: the last reply before the failure to the first one after it, or
// a longer silence later.
func (c *vipClient) gap(from time.Time) (gap time.Duration, last, first time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 1; i < len(c.replies); i++ {
		a, b := c.replies[i-1].at, c.replies[i].at
		if b.After(from) && b.Sub(a) > gap {
			gap, last, first = b.Sub(a), a, b
		}
	}
	return gap, last, first
}
