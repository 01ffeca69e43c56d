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

// Run performs the self-check and returns nil when the pods reached each other.
func Run(ctx context.Context, o Options) (err error) {
	if o.PodCIDR == "" {
		o.PodCIDR = "10.244.0.0/24"
	}
	say := func(format string, args ...any) { fmt.Fprintf(o.Out, format+"\n", args...) }
	if _, err := os.Stat(filepath.Join(o.PluginDir, "podnet-cni")); err != nil {
		return fmt.Errorf("podnet-cni not found in %s (run make build): %w", o.PluginDir, err)
	}
	work, err := os.MkdirTemp("", "podnet-selfcheck-")
	if err != nil {
		return err
	}
	var cleanups []func() error
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			err = errors.Join(err, cleanups[i]())
		}
		err = errors.Join(err, os.RemoveAll(work))
		if err == nil {
			say("cleaned up: namespaces, interfaces and IPAM state removed")
		}
	}()
	mkns := func(prefix string) (string, error) {
		name := netns.UniqueName(prefix)
		path, err := netns.Create(name)
		if err == nil {
			cleanups = append(cleanups, func() error { return netns.Delete(name) })
		}
		return path, err
	}
	node, err := mkns("podnet-sc-node-")
	if err != nil {
		return err
	}
	say("created node namespace %s", node)

	list, err := libcni.NetworkConfFromBytes(fmt.Appendf(nil,
		`{"cniVersion":"1.1.0","name":%q,"plugins":[{"type":"podnet-cni","dataDir":%q,"ranges":[[{"subnet":%q}]]}]}`,
		network, filepath.Join(work, "ipam"), o.PodCIDR))
	if err != nil {
		return err
	}
	cn := libcni.NewCNIConfigWithCacheDir([]string{o.PluginDir}, filepath.Join(work, "cache"), nil)

	type pod struct {
		path string
		rt   *libcni.RuntimeConf
		ip   netip.Addr
	}
	var pods []*pod
	for i := range 2 {
		path, err := mkns("podnet-sc-pod-")
		if err != nil {
			return err
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
			return fmt.Errorf("CNI ADD for pod %d: %w", i, err)
		}
		cleanups = append(cleanups, func() error {
			return netns.Do(node, func() error { return cn.DelNetworkList(context.Background(), list, p.rt) })
		})
		p.ip, _ = netip.AddrFromSlice(res.IPs[0].Address.IP)
		p.ip = p.ip.Unmap()
		say("pod %d: %s eth0 %s via %s (host side %s), ADD took %s", i, path, res.IPs[0].Address.String(),
			res.IPs[0].Gateway, res.Interfaces[0].Name, time.Since(start).Round(10*time.Microsecond))
		pods = append(pods, p)
	}
	if ping, err := exec.LookPath("ping"); err == nil {
		out, err := exec.CommandContext(ctx, "nsenter", "--net="+pods[0].path, ping, "-c", "1", "-W", "2", pods[1].ip.String()).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ping pod 0 -> pod 1 failed: %v\n%s", err, out)
		}
		say("ping pod 0 -> pod 1 (%s): ok", pods[1].ip)
	}
	seen, err := netns.TCPSeen(pods[1].path, pods[0].path, pods[1].ip, netip.Addr{}, 3*time.Second)
	if err != nil {
		return fmt.Errorf("TCP pod 0 -> pod 1: %w", err)
	}
	if seen != pods[0].ip {
		return fmt.Errorf("TCP pod 0 -> pod 1: server saw %s, want pod 0's IP %s (no NAT)", seen, pods[0].ip)
	}
	say("TCP pod 0 -> pod 1 (%s): ok, server saw client %s (no NAT)", pods[1].ip, seen)
	return nil
}
