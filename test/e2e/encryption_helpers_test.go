package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/lb/announce"
	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/wireguard"
)

// The encryption tests' fixture: a cluster, its pods, and servers that the
// test process runs inside the pods' network namespaces (an echo on
// encEchoPort, TCP and UDP, and a stream sink on encStreamPort), so every
// byte a test sends crosses the real datapath: pod veth, node routes, the
// WireGuard device, the node network.

const (
	encEchoPort   = 7070
	encStreamPort = 7071
	// agentMetricsPort is where the local cluster's agents serve /metrics
	// and /encryption inside their node's namespace.
	agentMetricsPort = 10249
)

// encEnv is a cluster the encryption tests send through.
type encEnv struct {
	// owner is the test that made the cluster: the pods' servers live
	// until it ends, also when a subtest started them.
	owner  *testing.T
	c      *cluster
	cfg    *localcluster.Config
	cs     kubernetes.Interface
	ns     string // namespace of the test's pods
	marker string // never to be seen on the node network of an encrypted cluster
}

// encPod is a pod with the test's servers running inside it.
type encPod struct {
	name, node, ip, netns string
	echo                  *echoServer
}

func newEncEnv(t *testing.T, c *cluster, ns string) *encEnv {
	t.Helper()
	cfg, err := localcluster.Load(c.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	return &encEnv{owner: t, c: c, cfg: cfg, cs: c.client(t), ns: ns, marker: "pnmk-" + randHex(12)}
}

// reload reads the cluster's config again (after add-node).
func (e *encEnv) reload(t *testing.T) {
	t.Helper()
	cfg, err := localcluster.Load(e.c.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
}

// pod starts a pod on node i running the built-in server on 80 (its
// readiness), waits until it is Ready and starts the echo in it. The
// echo ends with e.owner.
func (e *encEnv) pod(t *testing.T, name string, i int) *encPod {
	t.Helper()
	node := e.cfg.NodeName(i)
	spec := npPodSpec(name, node, map[string]string{"app": name}, []v1.ContainerPort{{ContainerPort: 80, Protocol: v1.ProtocolTCP}})
	if _, err := e.cs.CoreV1().Pods(e.ns).Create(context.Background(), spec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := e.c.runningPods(t, e.ns, "app="+name, 1, true)[0]
	ep := &encPod{name: name, node: node, ip: p.Status.PodIP, netns: netns.Path(e.cfg.PodNSName(string(p.UID)))}
	ep.echo = startEcho(t, e.owner, ep)
	return ep
}

// view is what the capture needs to know: the pod range, the node
// addresses (extra nodes beyond the config's count included, for a node
// about to be added) and the marker.
func (e *encEnv) view(extra int) *underlayView {
	v := &underlayView{podCIDR: e.cfg.PodCIDR, nodeIPs: map[netip.Addr]string{}, wgPort: wireguard.DefaultPort, marker: []byte(e.marker),
		// The agents' LoadBalancer heartbeats (authenticated, not
		// encrypted: node-to-node traffic is not the pods').
		control: map[uint16]string{announce.DefaultPort: "LoadBalancer heartbeat"}}
	for i := 1; i <= e.cfg.Nodes+extra; i++ {
		v.nodeIPs[e.cfg.NodeIP(i)] = e.cfg.NodeName(i)
	}
	return v
}

func (e *encEnv) capture(t *testing.T, extra int) *capture {
	t.Helper()
	return startCapture(t, e.cfg.BridgeName(), e.view(extra))
}

// msg is what a carries to b: the marker and who sends it.
func (e *encEnv) msg(a, b *encPod, proto string) []byte {
	return fmt.Appendf(nil, "podnet e2e %s %s %s->%s", e.marker, proto, a.name, b.name)
}

// exchanges sends the marker from each pair's first pod to its second's
// echo, over TCP and over UDP, until it comes back (or timeout passes);
// it returns how many exchanges it made.
func (e *encEnv) exchanges(t *testing.T, timeout time.Duration, pairs ...[2]*encPod) int {
	t.Helper()
	n := 0
	for _, p := range pairs {
		for _, proto := range []string{"tcp", "udp"} {
			eventually(t, timeout, fmt.Sprintf("%s echo %s -> %s", proto, p[0].name, p[1].name), func() error {
				return exchange(p[0], p[1], proto, e.msg(p[0], p[1], proto), 2*time.Second)
			})
			n++
		}
	}
	return n
}

// assertEncrypted fails unless the capture saw no leak, nothing but
// WireGuard (and the nodes' control traffic) between nodes, and at least
// minData WireGuard data messages and minBytes bytes of WireGuard (so that
// the traffic was there and the capture saw it).
func assertEncrypted(t *testing.T, what string, rep captureReport, err error, minData, minBytes int64) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: capture: %v", what, err)
	}
	t.Logf("%s: node network: %s", what, rep)
	if rep.LeakFrames > 0 {
		t.Errorf("%s: %d frames on the node network show what encryption must hide:\n%s", what, rep.LeakFrames, strings.Join(rep.Leaks, "\n"))
	}
	if rep.NodeToNodeOther > 0 {
		t.Errorf("%s: %d frames between nodes are not WireGuard:\n%s", what, rep.NodeToNodeOther, strings.Join(rep.NodeToNodeSamples, "\n"))
	}
	if rep.WireGuardType[4] < minData || rep.WireGuardBytes < minBytes {
		t.Errorf("%s: %d WireGuard data messages (%d bytes) seen, want at least %d (%d bytes): the traffic did not pass the node network, or the capture missed it",
			what, rep.WireGuardType[4], rep.WireGuardBytes, minData, minBytes)
	}
	if rep.Drops > 0 {
		t.Errorf("%s: the capture lost %d frames, so it cannot vouch that none leaked", what, rep.Drops)
	}
}

// echoServer echoes what it gets, on TCP and UDP, in a pod's namespace.
type echoServer struct {
	received atomic.Int64 // reads (TCP) and datagrams (UDP) served
	tcp      net.Listener
	udp      net.PacketConn
}

// startEcho fails t if it cannot listen; the servers end with owner.
func startEcho(t, owner *testing.T, p *encPod) *echoServer {
	t.Helper()
	s := &echoServer{}
	addr := net.JoinHostPort(p.ip, strconv.Itoa(encEchoPort))
	err := netns.Do(p.netns, func() (err error) {
		if s.tcp, err = net.Listen("tcp", addr); err != nil {
			return err
		}
		s.udp, err = net.ListenPacket("udp", addr)
		return err
	})
	owner.Cleanup(func() {
		if s.tcp != nil {
			s.tcp.Close()
		}
		if s.udp != nil {
			s.udp.Close()
		}
	})
	if err != nil {
		t.Fatalf("echo in pod %s: %v", p.name, err)
	}
	go func() {
		for {
			c, err := s.tcp.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						s.received.Add(1)
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := s.udp.ReadFrom(buf)
			if err != nil {
				return
			}
			s.received.Add(1)
			_, _ = s.udp.WriteTo(buf[:n], from)
		}
	}()
	return s
}

// exchange sends msg from inside pod a to b's echo over proto ("tcp" or
// "udp") and waits for it to come back.
func exchange(a, b *encPod, proto string, msg []byte, timeout time.Duration) error {
	var conn net.Conn
	if err := netns.Do(a.netns, func() (err error) {
		conn, err = (&net.Dialer{Timeout: timeout}).Dial(proto, net.JoinHostPort(b.ip, strconv.Itoa(encEchoPort)))
		return err
	}); err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil {
		return fmt.Errorf("%s %s -> %s: %w", proto, a.name, b.name, err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("%s %s -> %s: got back %q, sent %q", proto, a.name, b.name, got, msg)
	}
	return nil
}

// streamResult is one paced TCP transfer, seen from both ends.
type streamResult struct {
	sent, received   int64
	sentSum, gotSum  [sha256.Size]byte
	maxGap, maxWrite time.Duration // the receiver's longest wait for data; the sender's longest write
	elapsed          time.Duration
	err              error
}

// stream is a transfer running in the background.
type stream struct {
	done chan struct{}
	res  streamResult
}

// startStream sends size bytes from pod a to a sink in pod b over one TCP
// connection, paced at rate bytes per second, in 64 KiB chunks that each
// begin with the marker; the sink answers with the SHA-256 of what it got.
func (e *encEnv) startStream(t *testing.T, a, b *encPod, size, rate int64) *stream {
	t.Helper()
	var ln net.Listener
	if err := netns.Do(b.netns, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(b.ip, strconv.Itoa(encStreamPort)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var conn net.Conn
	if err := netns.Do(a.netns, func() (err error) {
		conn, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		return err
	}); err != nil {
		ln.Close()
		t.Fatal(err)
	}
	budget := time.Duration(size/rate)*time.Second + 90*time.Second
	s := &stream{done: make(chan struct{})}
	var mu sync.Mutex // guards the sink's half of s.res until wg is done
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the sink
		defer wg.Done()
		defer ln.Close()
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
		c, err := ln.Accept()
		if err != nil {
			mu.Lock()
			s.res.err = errors.Join(s.res.err, fmt.Errorf("sink: %w", err))
			mu.Unlock()
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(budget))
		h := sha256.New()
		buf := make([]byte, 64<<10)
		var n int64
		var last time.Time
		var maxGap time.Duration
		var rerr error
		for {
			k, err := c.Read(buf)
			now := time.Now()
			if k > 0 {
				if !last.IsZero() && now.Sub(last) > maxGap {
					maxGap = now.Sub(last)
				}
				last = now
				h.Write(buf[:k])
				n += int64(k)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				rerr = fmt.Errorf("sink read after %d bytes: %w", n, err)
				break
			}
		}
		var sum [sha256.Size]byte
		copy(sum[:], h.Sum(nil))
		if rerr == nil {
			_, rerr = c.Write(sum[:])
		}
		mu.Lock()
		s.res.received, s.res.gotSum, s.res.maxGap = n, sum, maxGap
		s.res.err = errors.Join(s.res.err, rerr)
		mu.Unlock()
	}()
	go func() { // the source
		defer close(s.done)
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(budget))
		rng := rand.NewChaCha8(sha256.Sum256([]byte("podnet e2e encryption stream")))
		h := sha256.New()
		chunk := make([]byte, 64<<10)
		start := time.Now()
		var sent int64
		var maxWrite time.Duration
		var werr error
		for sent < size {
			k := min(int64(len(chunk)), size-sent)
			_, _ = rng.Read(chunk[:k])
			copy(chunk[:k], e.marker)
			if due := start.Add(time.Duration(float64(sent) / float64(rate) * float64(time.Second))); time.Until(due) > 0 {
				time.Sleep(time.Until(due))
			}
			w0 := time.Now()
			if _, err := conn.Write(chunk[:k]); err != nil {
				werr = fmt.Errorf("source write after %d bytes: %w", sent, err)
				break
			}
			maxWrite = max(maxWrite, time.Since(w0))
			h.Write(chunk[:k])
			sent += k
		}
		var answer [sha256.Size]byte
		if werr == nil {
			werr = conn.(*net.TCPConn).CloseWrite()
		}
		if werr == nil {
			if _, err := io.ReadFull(conn, answer[:]); err != nil {
				werr = fmt.Errorf("source: the sink's checksum: %w", err)
			}
		}
		wg.Wait()
		s.res.sent, s.res.maxWrite, s.res.elapsed = sent, maxWrite, time.Since(start)
		copy(s.res.sentSum[:], h.Sum(nil))
		s.res.err = errors.Join(s.res.err, werr)
		if werr == nil && answer != s.res.gotSum {
			s.res.err = errors.Join(s.res.err, errors.New("the checksum the sink sent differs from the one it computed"))
		}
	}()
	return s
}

func (s *stream) wait(t *testing.T, timeout time.Duration) streamResult {
	t.Helper()
	select {
	case <-s.done:
		return s.res
	case <-time.After(timeout):
		t.Fatalf("the transfer did not end within %s", timeout)
		return streamResult{}
	}
}

// agentGet fetches path from node's agent on its metrics port, inside the
// node's namespace.
func (e *encEnv) agentGet(node, path string) ([]byte, error) {
	out, err := exec.Command("nsenter", "--net="+netns.Path(node), "curl", "-sS", "-f", "-m", "3",
		fmt.Sprintf("http://127.0.0.1:%d%s", agentMetricsPort, path)).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("GET %s on %s: %v: %s", path, node, err, out)
	}
	return out, nil
}

// status is node's agent's /encryption.
func (e *encEnv) status(node string) (wireguard.Status, error) {
	var st wireguard.Status
	out, err := e.agentGet(node, wireguard.StatusPath)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("%s: %w: %s", node, err, out)
	}
	return st, nil
}

func (e *encEnv) mustStatus(t *testing.T, node string) wireguard.Status {
	t.Helper()
	st, err := e.status(node)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// metric is the value of the sample named name (with its labels, if any)
// in node's agent's /metrics.
func (e *encEnv) metric(t *testing.T, node, name string) float64 {
	t.Helper()
	out, err := e.agentGet(node, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s on %s: %q", name, node, sc.Text())
			}
			return f
		}
	}
	t.Fatalf("%s: no sample %s", node, name)
	return 0
}

// peerOf is node's peer named peer in st, or nil.
func peerOf(st wireguard.Status, peer string) *wireguard.PeerStatus {
	for i := range st.Peers {
		if st.Peers[i].Node == peer {
			return &st.Peers[i]
		}
	}
	return nil
}

// peersExactly checks that st's device has exactly the named peers (a
// peer the agent no longer plans for, such as a rotated-out key, has no
// name).
func peersExactly(st wireguard.Status, names ...string) error {
	var got []string
	for _, p := range st.Peers {
		got = append(got, p.Node)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(names))
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s has peers %q, want %q", st.Node, got, want)
	}
	return nil
}

// handshaken checks that node's agent lists each of peers as a peer that
// has handshaken after since (and with the key key[peer], where given).
func (e *encEnv) handshaken(node string, peers []string, since time.Time, key map[string]string) error {
	st, err := e.status(node)
	if err != nil {
		return err
	}
	for _, p := range peers {
		ps := peerOf(st, p)
		switch {
		case ps == nil:
			return fmt.Errorf("%s has no peer %s: %+v", node, p, st.Peers)
		case key[p] != "" && ps.PublicKey != key[p]:
			return fmt.Errorf("%s knows %s by key %s, want %s", node, p, ps.PublicKey, key[p])
		case ps.LastHandshake.IsZero() || !ps.LastHandshake.After(since):
			return fmt.Errorf("%s: no handshake with %s since %s (last %s)", node, p, since.Format(time.RFC3339Nano), ps.LastHandshake)
		}
	}
	return nil
}

func (e *encEnv) node(t *testing.T, name string) *v1.Node {
	t.Helper()
	n, err := e.cs.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// annotate sets one annotation on a Node, as kubectl annotate does.
func (e *encEnv) annotate(t *testing.T, node, key, value string) {
	t.Helper()
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
	if _, err := e.cs.CoreV1().Nodes().Patch(context.Background(), node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// events are the Events of reason on the Node node.
func (e *encEnv) events(t *testing.T, node, reason string) []v1.Event {
	t.Helper()
	sel := fields.Set{"involvedObject.kind": "Node", "involvedObject.name": node, "reason": reason}.String()
	l, err := e.cs.CoreV1().Events("").List(context.Background(), metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// routeDev is the device node routes ip through.
func routeDev(node, ip string) (string, error) {
	out, err := exec.Command("nsenter", "--net="+netns.Path(node), "ip", "route", "get", ip).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ip route get %s on %s: %v: %s", ip, node, err, out)
	}
	f := strings.Fields(string(out))
	for i := range f {
		if f[i] == "dev" && i+1 < len(f) {
			return f[i+1], nil
		}
	}
	return "", fmt.Errorf("ip route get %s on %s: no dev in %q", ip, node, out)
}

// waitRouteDev waits until node routes ip through dev.
func waitRouteDev(t *testing.T, node, ip, dev string) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%s routes %s through %s", node, ip, dev), func() error {
		got, err := routeDev(node, ip)
		if err == nil && got != dev {
			err = fmt.Errorf("through %s", got)
		}
		return err
	})
}
