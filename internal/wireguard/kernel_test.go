//go:build linux

package wireguard

// Kernel fixture for the user-space device (root only): two "node"
// namespaces pnt-wga-XXXXXXXX and pnt-wgb-XXXXXXXX joined by a veth pair
// eth0 <-> eth0 (172.31.R.11/24 and 172.31.R.12/24, R random in 50-99),
// each with a stand-in pod address 10.R.N.5/32 on lo inside its pod CIDR
// 10.R.N.0/24, both removed in t.Cleanup. Nothing is routed out of them.
//
// A user-space device lives in the process that opened it: its TUN and
// UDP sockets belong to the namespace of the thread that made them, and
// Go moves goroutines between threads, so each node's device runs in a
// child process started inside the node's namespace (the test binary run
// again with deviceChildEnv set, the way package proc starts an agent
// there). The test configures the devices from outside, through their
// control sockets, exactly as Manager.configure does (wgctrl + configDiff
// of DeviceConfig of PlanPeers of the Nodes).

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podnet/podnet/internal/netns"
)

// deviceChildEnv, when set, makes the test binary a device child: it opens
// the user-space device with the control socket the variable names, says
// "ready <ifindex>" on stdout, and closes the device when stdin ends.
const deviceChildEnv = "PODNET_WIREGUARD_TEST_DEVICE"

func TestMain(m *testing.M) {
	if name := os.Getenv(deviceChildEnv); name != "" {
		os.Exit(runDeviceChild(name))
	}
	os.Exit(m.Run())
}

func runDeviceChild(name string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	t, err := openTunnel(ImplUserspace, name, 1500-Overhead, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 1
	}
	fmt.Printf("ready %d\n", t.index())
	_, _ = io.Copy(io.Discard, os.Stdin)
	t.close()
	return 0
}

// deviceChild is one running device child.
type deviceChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   string // its stderr
	index int    // the device's interface index it reported
	// exited is closed once the child is reaped; err is then how it ended.
	exited chan struct{}
	err    error
}

// startDevice starts a device child inside the namespace ns with control
// socket name and waits until its device is up.
func startDevice(t *testing.T, ns, name string) *deviceChild {
	t.Helper()
	c := &deviceChild{log: filepath.Join(t.TempDir(), "device.log"), exited: make(chan struct{})}
	logf, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), deviceChildEnv+"="+name)
	c.cmd.Stderr = logf
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// The child is cloned from the thread Do moved into ns, so the whole
	// process starts there.
	if err := netns.Do(ns, c.cmd.Start); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.kill() })
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		_, _ = io.Copy(io.Discard, stdout)
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	select {
	case line := <-ready:
		idx, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "ready ")))
		if !strings.HasPrefix(line, "ready ") || err != nil {
			t.Fatalf("device child in %s said %q; its log:\n%s", ns, line, c.output())
		}
		c.index = idx
	case <-time.After(20 * time.Second):
		t.Fatalf("device child in %s is not ready after 20s; its log:\n%s", ns, c.output())
	}
	return c
}

func (c *deviceChild) output() string {
	b, _ := os.ReadFile(c.log)
	return string(b)
}

// kill ends the child at once (SIGKILL, by its pid) and reaps it: an agent
// that crashed.
// Until it is reaped its pid cannot be reused; after, Kill does nothing.
func (c *deviceChild) kill() {
	_ = c.cmd.Process.Kill()
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
	}
}

// stop closes stdin, so the child closes its device and exits: an agent
// that stopped.
func (c *deviceChild) stop(t *testing.T) {
	t.Helper()
	c.stdin.Close()
	select {
	case <-c.exited:
		if c.err != nil {
			t.Errorf("device child: %v; its log:\n%s", c.err, c.output())
		}
	case <-time.After(10 * time.Second):
		t.Errorf("device child did not stop within 10s")
	}
}

// tunFix is the two-node fixture.
type tunFix struct {
	ns      [2]string // namespace paths
	sockets [2]string // control socket names
	keys    [2]wgtypes.Key
	nodes   []*v1.Node
	podIPs  [2]netip.Addr
	cidrs   [2]netip.Prefix
	wg      *wgctrl.Client
}

func newTunFix(t *testing.T) *tunFix {
	t.Helper()
	needRoot(t)
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("kernel test: no TUN device to open (%v)", err)
	}
	r := 50 + rand.IntN(50)
	f := &tunFix{}
	base := netns.UniqueName("pnt-wg-")
	for i, side := range []string{"a", "b"} {
		f.ns[i] = newNS(t, "pnt-wg"+side+"-")
		f.sockets[i] = base + "-" + side
		sock := SocketPath(f.sockets[i])
		t.Cleanup(func() { _ = os.Remove(sock) }) // left by a killed child
		k, err := wgtypes.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		f.keys[i] = k
		nodeIP := netip.MustParseAddr(fmt.Sprintf("172.31.%d.%d", r, 11+i))
		f.podIPs[i] = netip.MustParseAddr(fmt.Sprintf("10.%d.%d.5", r, i+1))
		f.cidrs[i] = netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", r, i+1))
		n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-" + side,
			Annotations: SelfAnnotations(k.PublicKey(), netip.AddrPortFrom(nodeIP, DefaultPort), time.Now())}}
		n.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: nodeIP.String()}}
		n.Spec.PodCIDR, n.Spec.PodCIDRs = f.cidrs[i].String(), []string{f.cidrs[i].String()}
		f.nodes = append(f.nodes, n)
	}
	err := netns.Do(f.ns[0], func() error {
		peerNS, err := os.Open(f.ns[1])
		if err != nil {
			return err
		}
		defer peerNS.Close()
		la := netlink.NewLinkAttrs()
		la.Name = "eth0"
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(peerNS.Fd())})
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		nodeIP, _ := netip.ParseAddr(f.nodes[i].Status.Addresses[0].Address)
		err := netns.Do(f.ns[i], func() error {
			eth, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			if err := netlink.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(nodeIP, 24))}); err != nil {
				return err
			}
			if err := netlink.LinkSetUp(eth); err != nil {
				return err
			}
			lo, err := netlink.LinkByName("lo")
			if err != nil {
				return err
			}
			return netlink.AddrAdd(lo, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(f.podIPs[i], 32))})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	wg, err := wgctrl.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wg.Close() })
	f.wg = wg
	return f
}

// route routes the other node's pod CIDR into node i's device, as package
// routing does (scope link, no gateway).
func (f *tunFix) route(t *testing.T, i int) {
	t.Helper()
	err := netns.Do(f.ns[i], func() error {
		dev, err := netlink.LinkByName(Device)
		if err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: dev.Attrs().Index, Dst: ipNet(f.cidrs[1-i]), Scope: netlink.SCOPE_LINK})
	})
	if err != nil {
		t.Fatalf("route into %s of node %d: %v", Device, i, err)
	}
}

// configure gives node i's device its key and the other node as its peer,
// the way Manager.configure does, and returns what it changed.
func (f *tunFix) configure(t *testing.T, i int) []string {
	t.Helper()
	name := f.nodes[i].Name
	plan := PlanPeers(name, f.keys[i].PublicKey(), f.nodes)
	if len(plan.Peers) != 1 {
		t.Fatalf("fixture: plan of %s is %+v, want one peer", name, plan)
	}
	dev, err := f.wg.Device(f.sockets[i])
	if err != nil {
		t.Fatalf("wgctrl: device %s: %v", f.sockets[i], err)
	}
	cfg, changed := configDiff(dev, DeviceConfig(f.keys[i], DefaultPort, plan.Peers))
	if changed {
		if err := f.wg.ConfigureDevice(f.sockets[i], cfg); err != nil {
			t.Fatalf("wgctrl: configure %s: %v", f.sockets[i], err)
		}
	}
	return describe(cfg)
}

// tcpFromAToB connects from node a's pod address to node b's and returns
// the client address b saw.
func (f *tunFix) tcpFromAToB(timeout time.Duration) (netip.Addr, error) {
	return netns.TCPSeen(f.ns[1], f.ns[0], f.podIPs[1], f.podIPs[0], timeout)
}

// linkAndRoute says whether node i has the device and the route into it.
func (f *tunFix) linkAndRoute(t *testing.T, i int) (linkType string, index int, routed bool) {
	t.Helper()
	err := netns.Do(f.ns[i], func() error {
		dev, err := netlink.LinkByName(Device)
		if err != nil {
			return err
		}
		linkType, index = dev.Type(), dev.Attrs().Index
		routes, err := netlink.RouteList(dev, unix.AF_INET)
		if err != nil {
			return err
		}
		for _, r := range routes {
			routed = routed || (r.Dst != nil && r.Dst.String() == f.cidrs[1-i].String())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("node %d: %v", i, err)
	}
	return linkType, index, routed
}

func TestKernelUserspaceTunnelCarriesPodTrafficAndSurvivesAnAgentCrash(t *testing.T) {
	f := newTunFix(t)
	var devs [2]*deviceChild
	for i := range 2 {
		devs[i] = startDevice(t, f.ns[i], f.sockets[i])
		f.route(t, i)
	}

	// Routed into devices that know no peer, nothing gets through (and
	// nothing takes another path).
	if seen, err := f.tcpFromAToB(time.Second); err == nil {
		t.Fatalf("before any peer is configured a connection went through (the server saw %s)", seen)
	}

	for i := range 2 {
		if got := f.configure(t, i); len(got) != 3 { // key, port, one peer
			t.Errorf("first configuration of node %d: %q, want key, port and the peer", i, got)
		}
		if again := f.configure(t, i); len(again) != 0 {
			t.Errorf("configuring node %d again changed %q, want nothing", i, again)
		}
	}
	if seen, err := f.tcpFromAToB(10 * time.Second); err != nil || seen != f.podIPs[0] {
		t.Fatalf("through the tunnel: server saw %s (%v), want the pod IP %s", seen, err, f.podIPs[0])
	}
	dev, err := f.wg.Device(f.sockets[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(dev.Peers) != 1 || dev.Peers[0].LastHandshakeTime.IsZero() || dev.Peers[0].TransmitBytes == 0 || dev.Peers[0].ReceiveBytes == 0 {
		t.Fatalf("node a's device after the connection: %+v, want one peer with a handshake and bytes both ways", dev.Peers)
	}

	// The agent of node a crashes: the persistent TUN and its route stay.
	devs[0].kill()
	typ, index, routed := f.linkAndRoute(t, 0)
	if typ != "tuntap" || index != devs[0].index || !routed {
		t.Fatalf("after the crash node a has %s %s (index %d, was %d), routed %v; want the same TUN with its route",
			Device, typ, index, devs[0].index, routed)
	}
	if seen, err := f.tcpFromAToB(time.Second); err == nil {
		t.Errorf("with no device behind the TUN a connection went through (the server saw %s)", seen)
	}
	// The killed device left its control socket, which nobody answers.
	if removed, err := RemoveStaleSocket(f.sockets[0]); !removed || err != nil {
		t.Errorf("RemoveStaleSocket of the killed device's socket = %v, %v; want true, nil", removed, err)
	}
	if removed, err := RemoveStaleSocket(f.sockets[1]); removed || err == nil {
		t.Errorf("RemoveStaleSocket of node b's live device = %v, %v; want false and an error", removed, err)
	}

	// A new agent takes the TUN over (the same interface), is configured
	// from scratch, and the traffic flows again.
	devs[0] = startDevice(t, f.ns[0], f.sockets[0])
	if devs[0].index != index {
		t.Errorf("the new device is interface %d, want the old TUN %d taken over", devs[0].index, index)
	}
	if got := f.configure(t, 0); len(got) != 3 {
		t.Errorf("configuration of the new device: %q, want key, port and the peer", got)
	}
	if _, _, routed := f.linkAndRoute(t, 0); !routed {
		t.Error("the route into the device is gone after the takeover")
	}
	if seen, err := f.tcpFromAToB(10 * time.Second); err != nil || seen != f.podIPs[0] {
		t.Errorf("after the takeover: server saw %s (%v), want the pod IP %s", seen, err, f.podIPs[0])
	}

	// A device that is closed (the agent stopped) removes its control
	// socket; the TUN stays.
	devs[0].stop(t)
	if _, err := os.Stat(SocketPath(f.sockets[0])); !os.IsNotExist(err) {
		t.Errorf("control socket after a clean stop: %v, want it removed", err)
	}
	if typ, _, _ := f.linkAndRoute(t, 0); typ != "tuntap" {
		t.Errorf("after a clean stop %s is %q, want the TUN kept", Device, typ)
	}
}
