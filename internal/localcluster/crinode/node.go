package crinode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/podnet/podnet/internal/proc"
)

// Process names (package proc) of a node's containerd and kubelet.
func ContainerdProcName(node string) string { return "containerd-" + node }
func KubeletProcName(node string) string    { return "kubelet-" + node }

// createdFile records, in the node's directory, the host directories
// Start made as mount points, for Delete.
const createdFile = "host-mount-points.json"

// Start prepares node n (mount namespace, cgroups, configuration files)
// and starts its containerd; StartKubelet starts its kubelet once the
// images the node needs are in its containerd.
func Start(ctx context.Context, n *Node) error {
	for _, d := range []string{n.ContainerdDir(), n.KubeletDir(), n.PodLogsDir(), filepath.Join(n.hostsDir(), "_default")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	files := map[string][]byte{
		filepath.Join(n.ContainerdDir(), "config.toml"):       ContainerdConfig(n),
		filepath.Join(n.hostsDir(), "_default", "hosts.toml"): RegistryHosts(n),
		filepath.Join(n.Dir, "kubelet.yaml"):                  KubeletConfig(n),
	}
	for _, path := range slices.Sorted(maps.Keys(files)) {
		if err := os.WriteFile(path, files[path], 0o644); err != nil {
			return err
		}
	}
	created, err := createMountNS(n)
	if werr := writeCreated(n.Dir, created); werr != nil {
		err = errors.Join(err, werr)
	}
	if err != nil {
		return err
	}
	if err := createCgroups(n.CgroupRoot()); err != nil {
		return err
	}
	argv := []string{n.ContainerdBin, "--config", filepath.Join(n.ContainerdDir(), "config.toml")}
	if err := n.start(ContainerdProcName(n.Name), argv); err != nil {
		return err
	}
	return waitSocket(ctx, n.ContainerdSocket(), 30*time.Second)
}

// StartKubelet starts the node's kubelet.
func StartKubelet(n *Node) error {
	return n.start(KubeletProcName(n.Name), KubeletArgs(n))
}

// start starts argv inside the node: its mount and network namespaces
// (nsenter), its cgroup root's runtime group, with the shim's directory
// first on PATH (containerd finds containerd-shim-runc-v2 there).
func (n *Node) start(name string, argv []string) error {
	script, err := joinCgroupsScript(n.CgroupRoot())
	if err != nil {
		return err
	}
	full := append([]string{"nsenter", "--mount=" + n.MountNSPath, "--net=" + n.NetnsPath, "--",
		"/bin/sh", "-c", script, "sh"}, argv...)
	env := []string{}
	for _, kv := range n.ProcessEnviron {
		if !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+n.ShimDir+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	_, err = proc.Start(n.ProcsDir, proc.Spec{Name: name, Argv: full, Env: env,
		LogFile: filepath.Join(n.LogsDir, name+".log")})
	return err
}

// waitSocket waits until a unix socket accepts connections.
func waitSocket(ctx context.Context, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s does not accept connections after %s: %w", path, timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ImportImages imports OCI archives into the node's containerd, in the
// namespace the CRI uses (k8s.io), with ctr.
func ImportImages(ctx context.Context, n *Node, ctr string, archives ...string) error {
	for _, a := range archives {
		cmd := exec.CommandContext(ctx, ctr, "--address", n.ContainerdSocket(), "--namespace", "k8s.io",
			"images", "import", "--local", "--no-unpack=false", a)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("import %s into %s's containerd: %v: %s", filepath.Base(a), n.Name, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

func writeCreated(dir string, created []string) error {
	if len(created) == 0 {
		return nil
	}
	data, err := json.Marshal(created)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, createdFile), data, 0o600)
}

// Delete removes node n of a cluster that may be half made or killed:
// every process in its cgroup tree (after proc.StopAll had its chance to
// stop the recorded ones gently), its cgroups, its mount namespace, and,
// once no node of any cluster is left, the host mount points any node's
// Start created (marked with createdMark, or in this node's record). It
// leaves the node's directory to the caller.
func Delete(dir, mountNSPath, cgroupRoot string) error {
	var errs []error
	if err := killCgroups(cgroupRoot, 10*time.Second); err != nil {
		errs = append(errs, err)
	}
	if err := deleteCgroups(cgroupRoot); err != nil {
		errs = append(errs, err)
	}
	if err := deleteMountNS(mountNSPath); err != nil {
		errs = append(errs, err)
	}
	var created []string
	if data, err := os.ReadFile(filepath.Join(dir, createdFile)); err == nil {
		if err := json.Unmarshal(data, &created); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", createdFile, err))
		}
	}
	if !otherMountNamespaces() {
		if err := removeCreatedDirs(append(created, markedDirs(hostMountPoints())...)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// LabelsArg is labels as a --node-labels value (the kubelet's and podnet
// runtime's): key=value pairs, sorted, joined by commas.
func LabelsArg(labels map[string]string) string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		kv = append(kv, k+"="+labels[k])
	}
	return strings.Join(kv, ",")
}

// RestartContainerd stops the node's containerd gently (SIGTERM: its
// shims and containers keep running, as on a real node) and starts it
// again, and waits for its socket.
func RestartContainerd(ctx context.Context, n *Node) error {
	name := ContainerdProcName(n.Name)
	rec, err := proc.Read(n.ProcsDir, name)
	if err != nil {
		return err
	}
	if err := proc.Stop(rec, 10*time.Second); err != nil {
		return err
	}
	argv := []string{n.ContainerdBin, "--config", filepath.Join(n.ContainerdDir(), "config.toml")}
	if err := n.start(name, argv); err != nil {
		return err
	}
	return waitSocket(ctx, n.ContainerdSocket(), 30*time.Second)
}
