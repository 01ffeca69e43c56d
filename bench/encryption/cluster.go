package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/bench/internal/localbench"
	"github.com/podnet/podnet/bench/internal/netperf"
	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/wireguard"
)

const (
	benchNS   = "encbench" // the pods' namespace in each cluster
	probePort = 8080       // the built-in test server's TCP (readiness) and UDP (probe) port
	iperfPort = 5201
	rrPort    = 7000 // persistent ping-pong
	connPort  = 7001 // connect + request + close
)

// arm is one side of the comparison: a 2-node local cluster of its own,
// with or without encryption, a client pod on node 1 and a server pod on
// node 2, and the servers the benchmark runs in the server pod.
type arm struct {
	label       string
	name        string   // cluster name
	upArgs      []string // podnet up's flags besides --cluster
	encrypted   bool
	routingMode string

	// Set by bringUp and setup.
	started            bool // this run started the cluster (so takes it down)
	upTook             time.Duration
	cfg                *localcluster.Config
	cs                 kubernetes.Interface
	clientNS, serverNS string // pod network namespace paths
	clientIP, serverIP netip.Addr
	podMTU             int
	iperfPid           int
	stops              []func() error // the servers in the server pod
}

// podnet runs bin/podnet for this arm's cluster and returns its output.
func (a *arm) podnet(ctx context.Context, o options, args ...string) (string, error) {
	argv := append([]string{"--cluster", a.name, "--tools-bin", o.toolsBin}, args...)
	out, err := exec.CommandContext(ctx, o.podnet, argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("podnet %s: %w\n%s", strings.Join(argv, " "), err, tail(string(out), 15))
	}
	return string(out), nil
}

// bringUp starts the arm's cluster, first taking down a leftover of the
// same name (a killed earlier run); with reuse, a running cluster of that
// name is used as it is and left running.
func (a *arm) bringUp(ctx context.Context, o options) error {
	if o.reuse {
		err := a.connect(ctx)
		if err == nil {
			fmt.Fprintf(logw, "%s: using the running cluster %s\n", a.label, a.name)
			return nil
		}
		if errors.Is(err, errMismatch) {
			return err // running, but not what this arm needs: not ours to replace
		}
	}
	if _, err := a.podnet(ctx, o, "down"); err != nil {
		return fmt.Errorf("clean up a leftover cluster %s: %w", a.name, err)
	}
	t0 := time.Now()
	a.started = true
	if _, err := a.podnet(ctx, o, append([]string{"up", "--nodes", "2"}, a.upArgs...)...); err != nil {
		return err
	}
	a.upTook = time.Since(t0)
	fmt.Fprintf(logw, "%s: cluster %s up in %s\n", a.label, a.name, a.upTook.Round(100*time.Millisecond))
	return a.connect(ctx)
}

// errMismatch is returned (wrapped) by connect for a running cluster whose
// settings are not the arm's.
var errMismatch = errors.New("settings differ")

// connect loads the cluster's config and checks that its API server
// answers and that it is what the arm needs.
func (a *arm) connect(ctx context.Context) error {
	cfg, rc, err := localbench.Connect(a.name, "", 50)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		return fmt.Errorf("cluster %s: API server: %w", a.name, err)
	}
	if cfg.Nodes < 2 {
		return fmt.Errorf("cluster %s has %d node(s), want 2: %w", a.name, cfg.Nodes, errMismatch)
	}
	if enc := cfg.Encryption == plan.EncryptionWireGuard; enc != a.encrypted {
		return fmt.Errorf("cluster %s: encryption %q, want encrypted=%v: %w", a.name, cfg.Encryption, a.encrypted, errMismatch)
	}
	if m := cfg.AgentRoutingMode(); m != a.routingMode {
		return fmt.Errorf("cluster %s: routing mode %s, want %s: %w", a.name, m, a.routingMode, errMismatch)
	}
	a.cfg, a.cs = cfg, cs
	return nil
}

// tearDown stops the servers and takes the cluster down if this run
// started it and keep is off.
func (a *arm) tearDown(o options) error {
	var errs []error
	for i := len(a.stops) - 1; i >= 0; i-- {
		errs = append(errs, a.stops[i]())
	}
	a.stops = nil
	if a.started && !o.keep {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if _, err := a.podnet(ctx, o, "down"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// setup places the client pod on node 1 and the server pod on node 2,
// waits until both are Ready, finds their namespaces, starts the echo
// threads and iperf3 in the server pod, and checks the path.
func (a *arm) setup(ctx context.Context, o options, serverCPU int) error {
	if _, err := a.cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNS}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("%s: create namespace: %w", a.label, err)
	}
	for _, p := range []*v1.Pod{localbench.TestServerPod("client", a.cfg.NodeName(1), "encbench", probePort), localbench.TestServerPod("server", a.cfg.NodeName(2), "encbench", probePort)} {
		if _, err := a.cs.CoreV1().Pods(benchNS).Create(ctx, p, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("%s: create pod %s: %w", a.label, p.Name, err)
		}
	}
	var err error
	if a.clientNS, a.clientIP, err = a.waitPod(ctx, "client", 1); err != nil {
		return err
	}
	if a.serverNS, a.serverIP, err = a.waitPod(ctx, "server", 2); err != nil {
		return err
	}
	if err := netns.Do(a.clientNS, func() error {
		l, err := netlink.LinkByName("eth0")
		if err == nil {
			a.podMTU = l.Attrs().MTU
		}
		return err
	}); err != nil {
		return fmt.Errorf("%s: client pod's eth0: %w", a.label, err)
	}
	stopEcho, err := netperf.StartEcho(a.serverNS, a.serverIP, serverCPU,
		netperf.EchoPort{Port: rrPort}, netperf.EchoPort{Port: connPort, Once: true})
	if err != nil {
		return fmt.Errorf("%s: echo server: %w", a.label, err)
	}
	a.stops = append(a.stops, stopEcho)
	pid, stopIperf, err := netperf.StartIperfServer(ctx, o.iperf3, a.serverNS, a.serverIP, iperfPort)
	if err != nil {
		return fmt.Errorf("%s: %w", a.label, err)
	}
	a.iperfPid = pid
	a.stops = append(a.stops, stopIperf)
	return a.checkPath(ctx)
}

// waitPod waits until pod name is Ready on node i and returns its network
// namespace and address.
func (a *arm) waitPod(ctx context.Context, name string, i int) (string, netip.Addr, error) {
	deadline := time.Now().Add(90 * time.Second)
	for {
		p, err := a.cs.CoreV1().Pods(benchNS).Get(ctx, name, metav1.GetOptions{})
		if err == nil && p.Status.PodIP != "" && podReady(p) {
			if p.Spec.NodeName != a.cfg.NodeName(i) {
				return "", netip.Addr{}, fmt.Errorf("%s: pod %s runs on %s, want %s (a leftover? delete namespace %s)", a.label, name, p.Spec.NodeName, a.cfg.NodeName(i), benchNS)
			}
			loc, err := localcluster.FindPod(ctx, a.cs, a.cfg, benchNS, name)
			if err != nil {
				return "", netip.Addr{}, err
			}
			ip, err := netip.ParseAddr(loc.PodIP)
			if err != nil || !ip.Is4() {
				return "", netip.Addr{}, fmt.Errorf("%s: pod %s has address %q, want IPv4", a.label, name, loc.PodIP)
			}
			return loc.NetNS, ip, nil
		}
		if time.Now().After(deadline) {
			return "", netip.Addr{}, fmt.Errorf("%s: pod %s/%s not Ready after 90 s (err %v)", a.label, benchNS, name, err)
		}
		select {
		case <-ctx.Done():
			return "", netip.Addr{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func podReady(p *v1.Pod) bool {
	for _, cd := range p.Status.Conditions {
		if cd.Type == v1.PodReady {
			return cd.Status == v1.ConditionTrue
		}
	}
	return false
}

// checkPath checks what the comparison rests on: node 1 routes the server
// pod's address into the WireGuard device exactly when the arm is
// encrypted, the server sees the client's own pod address (no NAT), and,
// encrypted, both nodes have completed a handshake with each other.
func (a *arm) checkPath(ctx context.Context) error {
	dev, err := routeDevice(netns.Path(a.cfg.NodeNSName(1)), a.serverIP)
	if err != nil {
		return fmt.Errorf("%s: route from %s to the server pod: %w", a.label, a.cfg.NodeName(1), err)
	}
	if (dev == wireguard.Device) != a.encrypted {
		return fmt.Errorf("%s: %s routes the server pod %s through %s (encrypted arm: %v)", a.label, a.cfg.NodeName(1), a.serverIP, dev, a.encrypted)
	}
	dst := netip.AddrPortFrom(a.serverIP, rrPort)
	peer, local, err := netperf.Seen(a.clientNS, dst, 5*time.Second)
	if err != nil {
		return fmt.Errorf("%s: client pod → %s: %w", a.label, dst, err)
	}
	if !strings.HasPrefix(peer, a.clientIP.String()+":") || local != dst.String() {
		return fmt.Errorf("%s: the server saw %s → %s, want %s → %s", a.label, peer, local, a.clientIP, dst)
	}
	if !a.encrypted {
		return nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := 1; i <= 2; i++ {
		for {
			st, err := a.encryption(ctx, i)
			if err == nil && len(st.Peers) == 1 && !st.Peers[0].LastHandshake.IsZero() {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %s has no handshake with its peer after 30 s (status %+v, err %v)", a.label, a.cfg.NodeName(i), st, err)
			}
			if _, err := netperf.PingPong(ctx, a.clientNS, -1, dst, 100*time.Millisecond); err != nil {
				return fmt.Errorf("%s: waiting for the handshake: %w", a.label, err)
			}
		}
	}
	return nil
}

// routeDevice is the name of the device the namespace at nsPath routes
// dst through.
func routeDevice(nsPath string, dst netip.Addr) (string, error) {
	var name string
	err := netns.Do(nsPath, func() error {
		rs, err := netlink.RouteGet(dst.AsSlice())
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			return fmt.Errorf("no route to %s", dst)
		}
		l, err := netlink.LinkByIndex(rs[0].LinkIndex)
		if err != nil {
			return err
		}
		name = l.Attrs().Name
		return nil
	})
	return name, err
}

// encryption is node i's encryption status as its agent serves it on its
// metrics port, read from inside the node's namespace.
func (a *arm) encryption(ctx context.Context, i int) (wireguard.Status, error) {
	var st wireguard.Status
	nodeNS := netns.Path(a.cfg.NodeNSName(i))
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = netns.Do(nodeNS, func() error {
				c, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(metricsPort)+wireguard.StatusPath, nil)
	if err != nil {
		return st, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET %s on %s: %s", wireguard.StatusPath, a.cfg.NodeName(i), resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// transmitted is what node i's WireGuard device has sent to its peers
// (bytes, encrypted and framed).
func (a *arm) transmitted(ctx context.Context, i int) (int64, error) {
	st, err := a.encryption(ctx, i)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range st.Peers {
		n += p.TransmitBytes
	}
	return n, nil
}

// agentPIDs are the running agents of the arm's nodes, by their records.
func (a *arm) agentPIDs() ([]int, error) {
	var pids []int
	for i := 1; i <= 2; i++ {
		rec, err := localbench.AgentRecord(a.cfg, i)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.label, err)
		}
		pids = append(pids, rec.PID)
	}
	return pids, nil
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
