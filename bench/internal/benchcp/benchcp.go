// Package benchcp gives the side-by-side benchmarks (podnet against
// kube-proxy, against CoreDNS) their private world: a fresh network
// namespace with a control plane from tools/bin inside it, a scratch
// directory, and a client that may create objects fast. Close removes all
// of it, processes included.
package benchcp

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/localcluster/controlplane"
	"github.com/podnet/podnet/internal/netns"
)

// Env is a running private control plane.
type Env struct {
	// Work is the scratch directory (state, logs, process records).
	Work string
	// NSPath is the network namespace everything runs in.
	NSPath string
	CP     *controlplane.ControlPlane
	Client kubernetes.Interface

	nsName string
}

// Start makes the namespace and starts the control plane of the
// checkout at root, named name (also the prefix of the namespace and the
// scratch directory).
func Start(ctx context.Context, root, name string) (_ *Env, err error) {
	e := &Env{nsName: netns.UniqueName(name + "-")}
	if e.Work, err = os.MkdirTemp("", name+"-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.NSPath, err = netns.Create(e.nsName); err != nil {
		return nil, err
	}
	e.CP, err = controlplane.Start(ctx, controlplane.Config{
		ClusterName: name, StateDir: filepath.Join(e.Work, "state"), BinDir: filepath.Join(root, "tools", "bin"),
		APIAddress: netip.MustParseAddr("127.0.0.1"), ServiceCIDR: netip.MustParsePrefix("10.96.0.0/12"),
		PodCIDR: netip.MustParsePrefix("10.128.0.0/9"), APIPort: 6443, Netns: e.NSPath,
	})
	if err != nil {
		return nil, err
	}
	rc, err := e.CP.RESTConfig()
	if err != nil {
		return nil, err
	}
	rc.QPS, rc.Burst = 2000, 4000
	if e.Client, err = kubernetes.NewForConfig(rc); err != nil {
		return nil, err
	}
	return e, nil
}

// Close stops the control plane and removes the namespace and the scratch
// directory.
func (e *Env) Close() {
	if e.CP != nil {
		e.CP.Stop()
	}
	if e.NSPath != "" {
		_ = netns.Delete(e.nsName)
	}
	_ = os.RemoveAll(e.Work)
}

// RSS is a process's resident memory in bytes (0 when it cannot be read).
func RSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
