// Package selfcheck proves that this machine can run podnet's pod network:
// it makes a throwaway node namespace with two pod namespaces, wires them
// with podnet-cni through libcni exactly as a container runtime would, shows
// them reaching each other over ICMP and TCP (the receiver seeing the
// sender's pod IP), and removes everything again, also on failure.
//
// Everything happens inside namespaces it creates: the node namespace has no
// route out, so no packet can leave the machine.
package selfcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/podnet/podnet/internal/netns"
)

// Options configure a run.
type Options struct {
	// PluginDir holds the podnet-cni binary.
	PluginDir string
	// PodCIDR is the range the two pods get addresses from.
	PodCIDR string
	Out     io.Writer
}

const network = "podnet-selfcheck"

// check is one run's state: what it made, to be undone in reverse order.
type check struct {
	say      func(format string, args ...any)
	work     string
	cleanups []func() error
}

// pod is one of the two throwaway pods.
type pod struct {
	path string
	rt   *libcni.RuntimeConf
	ip   netip.Addr
}

// Run performs the self-check and returns nil when the pods reached each other.
func Run(ctx context.Context, o Options) (err error) {
	if o.PodCIDR == "" {
		o.PodCIDR = "10.244.0.0/24"
	}
	if _, err := os.Stat(filepath.Join(o.PluginDir, "podnet-cni")); err != nil {
		return fmt.Errorf("podnet-cni not found in %s (run make build): %w", o.PluginDir, err)
	}
	c := &check{say: func(format string, args ...any) { fmt.Fprintf(o.Out, format+"\n", args...) }}
	if c.work, err = os.MkdirTemp("", "podnet-selfcheck-"); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.cleanup()) }()
	node, err := c.mkns("podnet-sc-node-")
	if err != nil {
		return err
	}
	c.say("created node namespace %s", node)
	list, err := libcni.NetworkConfFromBytes(fmt.Appendf(nil,
		`{"cniVersion":"1.1.0","name":%q,"plugins":[{"type":"podnet-cni","dataDir":%q,"ranges":[[{"subnet":%q}]]}]}`,
		network, filepath.Join(c.work, "ipam"), o.PodCIDR))
	if err != nil {
		return err
	}
	cn := libcni.NewCNIConfigWithCacheDir([]string{o.PluginDir}, filepath.Join(c.work, "cache"), nil)
	var pods []*pod
	for i := range 2 {
		p, err := c.addPod(ctx, cn, list, node, i)
		if err != nil {
			return err
		}
		pods = append(pods, p)
	}
	return c.reach(ctx, pods[0], pods[1])
}

// cleanup undoes everything in reverse order and removes the work
// directory, joining the errors.
func (c *check) cleanup() error {
	var err error
	for i := len(c.cleanups) - 1; i >= 0; i-- {
		err = errors.Join(err, c.cleanups[i]())
	}
	err = errors.Join(err, os.RemoveAll(c.work))
	if err == nil {
		c.say("cleaned up: namespaces, interfaces and IPAM state removed")
	}
	return err
}

// mkns creates a uniquely named namespace and registers its removal.
func (c *check) mkns(prefix string) (string, error) {
	name := netns.UniqueName(prefix)
	path, err := netns.Create(name)
	if err == nil {
		c.cleanups = append(c.cleanups, func() error { return netns.Delete(name) })
	}
	return path, err
}

// addPod creates pod i's namespace and adds it to the network from the
// node namespace, as a container runtime would.
func (c *check) addPod(ctx context.Context, cn *libcni.CNIConfig, list *libcni.NetworkConfigList, node string, i int) (*pod, error) {
	path, err := c.mkns("podnet-sc-pod-")
	if err != nil {
		return nil, err
	}
	p := &pod{path: path, rt: &libcni.RuntimeConf{ContainerID: fmt.Sprintf("selfcheck-%d", i), NetNS: path, IfName: "eth0"}}
	start := time.Now()
	var res *types100.Result
	err = netns.Do(node, func() error {
		// The plugin process inherits this thread's namespace.
		r, err := cn.AddNetworkList(ctx, list, p.rt)
		if err != nil {
			return err
		}
		res, err = types100.NewResultFromResult(r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("CNI ADD for pod %d: %w", i, err)
	}
	c.cleanups = append(c.cleanups, func() error {
		return netns.Do(node, func() error { return cn.DelNetworkList(context.Background(), list, p.rt) })
	})
	p.ip, _ = netip.AddrFromSlice(res.IPs[0].Address.IP)
	p.ip = p.ip.Unmap()
	c.say("pod %d: %s eth0 %s via %s (host side %s), ADD took %s", i, path, res.IPs[0].Address.String(),
		res.IPs[0].Gateway, res.Interfaces[0].Name, time.Since(start).Round(10*time.Microsecond))
	return p, nil
}

// reach pings (when ping is installed) and connects over TCP from a to b,
// and checks that b saw a's own address.
func (c *check) reach(ctx context.Context, a, b *pod) error {
	if ping, err := exec.LookPath("ping"); err == nil {
		// One reply within 3 s, asked for once a second: a veth just set
		// up can drop packets until the kernel's link watcher activates
		// its queue (up to a second later when both ends have the same
		// ifindex in their namespaces, as the first pod of a fresh node
		// namespace does). One lost echo failed this check once under load.
		out, err := exec.CommandContext(ctx, "nsenter", "--net="+a.path, ping, "-c", "1", "-w", "3", b.ip.String()).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ping pod 0 -> pod 1 failed: %w\n%s", err, out)
		}
		c.say("ping pod 0 -> pod 1 (%s): ok", b.ip)
	}
	seen, err := netns.TCPSeen(b.path, a.path, b.ip, netip.Addr{}, 3*time.Second)
	if err != nil {
		return fmt.Errorf("TCP pod 0 -> pod 1: %w", err)
	}
	if seen != a.ip {
		return fmt.Errorf("TCP pod 0 -> pod 1: server saw %s, want pod 0's IP %s (no NAT)", seen, a.ip)
	}
	c.say("TCP pod 0 -> pod 1 (%s): ok, server saw client %s (no NAT)", b.ip, seen)
	return nil
}
