package e2e

// The end of a containerd cluster's life: podnet uninstalled as
// docs/install.md tells a user, then every kubelet and
// containerd killed with SIGKILL and the cluster taken down.
//
// Fixture conventions: a containerd cluster of its own (the test destroys
// what it installs), named crl-<random>, in VXLAN routing mode (so that
// there is a VXLAN device to remove), address plan nodes 172.26.0.0/24,
// pods 10.174.0.0/16, services 10.175.0.0/16, world 198.51.103.0/24.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/cni"
	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/localcluster/crinode"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/nldump"
	"github.com/podnet/podnet/internal/proc"
	"github.com/podnet/podnet/internal/routing"
	"github.com/podnet/podnet/internal/wireguard"
)

const lifecycleNode1IP = "172.26.0.11"

// lifecycleService puts spreadDeployment's pods on both nodes (host
// veths, routes, IPAM files) behind a NodePort Service (Service rules).
const lifecycleService = `
apiVersion: v1
kind: Service
metadata: {name: spread}
spec:
  type: NodePort
  selector: {app: spread}
  ports: [{port: 80}]
`

// uninstallDocTest is how docs/install.md marks its Uninstall
// commands as run here rather than by the doc test.
const uninstallDocTest = "TestContainerdLifecycle runs these commands"

func TestContainerdLifecycle(t *testing.T) {
	needContainerd(t)
	hostDirsBefore := existing(crinode.HostCNIConfDir, crinode.HostCNIBinDir, crinode.HostCNILibDir,
		filepath.Dir(crinode.HostCNIConfDir), filepath.Dir(crinode.HostCNIBinDir), crinode.HostWireGuardDir)
	c, cfg := upOwn(t, "crl-"+randHex(3), "--node-runtime containerd",
		"--node-runtime", "containerd", "--service-proxy", "podnet", "--routing-mode", "vxlan",
		"--pod-cidr", "10.174.0.0/16", "--service-cidr", "10.175.0.0/16", "--node-network", "172.26.0.0/24",
		"--world-network", "198.51.103.0/24")
	c.apply(t, spreadDeployment+"---"+lifecycleService)
	c.runningPods(t, "default", "app=spread", 4, false)
	nodePort := c.kubectl(t, "get", "svc", "spread", "-o", "jsonpath={.spec.ports[0].nodePort}")
	(&lbWorld{c: c, cfg: cfg}).answeredBy(t, lifecycleNode1IP+":"+nodePort, "spread-")
	for i := 1; i <= cfg.Nodes; i++ {
		// What the checks below look for must be there to begin with.
		left := podnetOnNode(t, cfg, i)
		for _, kind := range []string{"table", "vxlan", "veth", "route", "file"} {
			if len(left[kind]) == 0 {
				t.Fatalf("%s: no podnet %s before the uninstall (found %v): the checks are blind", cfg.NodeName(i), kind, left)
			}
		}
	}

	t.Run("the documented uninstall leaves nothing of podnet on the nodes", func(t *testing.T) {
		start := time.Now()
		out := runUninstallDoc(t, c)
		t.Logf("uninstall as documented: %s", time.Since(start).Round(100*time.Millisecond))
		if n := strings.Count(out, "removed nftables table inet "+routing.Table); n != cfg.Nodes {
			t.Errorf("the commands' output (the cleanup pods' logs) names table %s %d times, want once per node", routing.Table, n)
		}
		for i := 1; i <= cfg.Nodes; i++ {
			for kind, what := range podnetOnNode(t, cfg, i) {
				t.Errorf("%s: podnet %s left after the uninstall: %s", cfg.NodeName(i), kind, strings.Join(what, "; "))
			}
		}
	})

	t.Run("podnet down after kill -9 of every kubelet and containerd leaves nothing", func(t *testing.T) {
		killNodeRuntimes(t, c, cfg)
		start := time.Now()
		if out, err := c.podnet("down"); err != nil {
			t.Errorf("podnet down after kill -9: %v\n%s", err, out)
		}
		t.Logf("podnet down after kill -9: %s", time.Since(start).Round(100*time.Millisecond))
		for _, problem := range hostLeftovers(c, cfg) {
			t.Error(problem)
		}
		assertNothingOf(t, c.name)
		checkHostCNIDirs(t, hostDirsBefore)
	})
}

// runUninstallDoc runs the commands of docs/install.md marked
// for this test, as typed, in one shell whose kubectl is the cluster's;
// it returns their output.
func runUninstallDoc(t *testing.T, c *cluster) string {
	t.Helper()
	const doc = "docs/install.md"
	b, err := os.ReadFile(filepath.Join(repoRoot, doc))
	if err != nil {
		t.Fatal(err)
	}
	all, errs := parseDoc(doc, string(b))
	for _, err := range errs { // TestDocsFollowTheConvention fails on them
		t.Logf("reading %s: %v", doc, err)
	}
	tmp := t.TempDir()
	sh := startShell(t, append(docEnv(t, c, tmp), "KUBECONFIG="+localcluster.AdminKubeconfigPath(c.stateDir)), tmp)
	defer sh.close()
	var out strings.Builder
	n := 0
	for _, dc := range all {
		if !strings.Contains(dc.skip, uninstallDocTest) {
			continue
		}
		o, code, err := sh.run(dc.text, 4*time.Minute)
		if err == nil && code != dc.exit {
			err = fmt.Errorf("exit status %d, the doc says %d", code, dc.exit)
		}
		if err == nil {
			err = matchOutput(dc.want, o)
		}
		if err != nil {
			pods, _ := c.podnet("kubectl", "--", "get", "pods", "-A", "-o", "wide")
			events, _ := c.podnet("kubectl", "--", "-n", "kube-system", "get", "events", "--field-selector", "type=Warning")
			t.Fatalf("%s: %s: %v\n%s\npods:\n%s\nkube-system's warnings:\n%s", dc.where(), dc.firstLine(), err, indent(o), indent(pods), indent(events))
		}
		t.Logf("%s: %s\n%s", dc.where(), dc.firstLine(), indent(o))
		out.WriteString(o)
		n++
	}
	if n < 4 {
		t.Fatalf("%s: %d commands marked %q, want the whole uninstall", doc, n, uninstallDocTest)
	}
	return out.String()
}

// podnetOnNode lists, by kind, what of podnet node i has: nftables tables
// named podnet*, the VXLAN device, the WireGuard device, pods' host veths
// (podnet-cni's name prefix or ifalias), routes of podnet's protocol in any
// table, files named *podnet* in the node's CNI directories and any file
// in its WireGuard key directory.
func podnetOnNode(t *testing.T, cfg *localcluster.Config, i int) map[string][]string {
	t.Helper()
	found := map[string][]string{}
	nsPath := netns.Path(cfg.NodeNSName(i))
	tables, err := exec.Command("nsenter", "--net="+nsPath, "nft", "list", "tables").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list tables in %s: %v\n%s", nsPath, err, tables)
	}
	for _, l := range strings.Split(string(tables), "\n") {
		if strings.Contains(l, "podnet") {
			found["table"] = append(found["table"], strings.TrimSpace(l))
		}
	}
	err = netns.Do(nsPath, func() error {
		links, err := nldump.Do(netlink.LinkList)
		if err != nil {
			return err
		}
		for _, l := range links {
			a := l.Attrs()
			switch {
			case a.Name == routing.VXLANDevice:
				found["vxlan"] = append(found["vxlan"], a.Name)
			case a.Name == wireguard.Device:
				found["wireguard"] = append(found["wireguard"], a.Name+" ("+l.Type()+")")
			case strings.HasPrefix(a.Name, cni.HostIfPrefix) || strings.HasPrefix(a.Alias, "podnet:"):
				found["veth"] = append(found["veth"], a.Name+" "+a.Alias)
			}
		}
		routes, err := nldump.Do(func() ([]netlink.Route, error) {
			return netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: routing.RouteProtocol, Table: unix.RT_TABLE_UNSPEC},
				netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
		})
		for _, r := range routes {
			found["route"] = append(found["route"], r.String())
		}
		return err
	})
	if err != nil {
		t.Fatalf("links and routes of %s: %v", nsPath, err)
	}
	for _, d := range []string{"net.d", "bin", "lib"} {
		_ = filepath.WalkDir(filepath.Join(cfg.NodeDir(i), "cni", d), func(path string, e fs.DirEntry, err error) error {
			if err == nil && strings.Contains(e.Name(), "podnet") {
				found["file"] = append(found["file"], path)
			}
			return nil
		})
	}
	// The WireGuard key, in the node's own /var/lib/podnet/wireguard.
	if keys, _ := os.ReadDir(filepath.Dir(cfg.WireGuardKeyFile(i))); len(keys) > 0 {
		for _, k := range keys {
			found["key"] = append(found["key"], filepath.Join(filepath.Dir(cfg.WireGuardKeyFile(i)), k.Name()))
		}
	}
	return found
}

// killNodeRuntimes kills every node's kubelet and containerd with SIGKILL,
// by their process records, once their shims and containers are known to
// run.
func killNodeRuntimes(t *testing.T, c *cluster, cfg *localcluster.Config) {
	t.Helper()
	if shims := shimsOf(c.stateDir); len(shims) == 0 {
		t.Fatalf("no containerd shim of the cluster runs before the kill: nothing for down to clean up")
	}
	for i := 1; i <= cfg.Nodes; i++ {
		node := cfg.NodeName(i)
		for _, name := range []string{crinode.KubeletProcName(node), crinode.ContainerdProcName(node)} {
			rec, err := proc.Read(cfg.ProcsDir(), name)
			if err != nil {
				t.Fatal(err)
			}
			if !proc.Alive(rec) {
				t.Fatalf("%s (pid %d) is not running before the kill", name, rec.PID)
			}
			if err := syscall.Kill(rec.PID, syscall.SIGKILL); err != nil {
				t.Fatalf("kill -9 %s (pid %d): %v", name, rec.PID, err)
			}
			eventually(t, 10*time.Second, name+" dead", func() error {
				if proc.Alive(rec) {
					return fmt.Errorf("pid %d alive", rec.PID)
				}
				return nil
			})
		}
	}
	if shims := shimsOf(c.stateDir); len(shims) == 0 {
		t.Fatalf("the shims died with containerd: the test kills nothing down must find")
	}
}

// shimsOf lists the containerd shims whose command line names dir.
func shimsOf(dir string) []string {
	var out []string
	for pid, cmdline := range processes() {
		if strings.Contains(cmdline, "containerd-shim") && strings.Contains(cmdline, dir) {
			out = append(out, strconv.Itoa(pid)+": "+cmdline)
		}
	}
	return out
}

// processes are the command lines of the machine's processes by pid.
func processes() map[int]string {
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && len(b) > 0 {
			out[pid] = string(bytes.ReplaceAll(bytes.TrimRight(b, "\x00"), []byte{0}, []byte{' '}))
		}
	}
	return out
}

// hostLeftovers says what of the cluster's nodes is left on the host:
// cgroups, processes and mounts (in any mount namespace a process is in)
// that name the state directory, shims, and the state directory itself.
func hostLeftovers(c *cluster, cfg *localcluster.Config) []string {
	var problems []string
	hs, _ := filepath.Glob("/sys/fs/cgroup/*")
	for i := 1; i <= cfg.Nodes; i++ {
		root := (&crinode.Node{Name: cfg.NodeName(i)}).CgroupRoot()
		for _, h := range hs {
			if _, err := os.Stat(filepath.Join(h, root)); err == nil {
				problems = append(problems, "cgroup left: "+filepath.Join(h, root))
			}
		}
	}
	for _, s := range shimsOf(c.stateDir) {
		problems = append(problems, "shim left: "+s)
	}
	problems = append(problems, mountsNaming(c.stateDir)...)
	if _, err := os.Stat(c.stateDir); !errors.Is(err, fs.ErrNotExist) {
		problems = append(problems, "state directory left: "+c.stateDir)
	}
	return problems
}

// mountsNaming lists the mounts, in the mount namespace of any process,
// whose line in mountinfo names dir (the nodes' overlays, their kept
// mount namespaces, the kubelet's volumes).
func mountsNaming(dir string) []string {
	var out []string
	seen := map[string]bool{}
	for pid := range processes() {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if err != nil || seen[ns] {
			continue
		}
		seen[ns] = true
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
		for _, l := range strings.Split(string(data), "\n") {
			if strings.Contains(l, dir) {
				out = append(out, fmt.Sprintf("mount left in %s (pid %d): %s", ns, pid, l))
			}
		}
	}
	return out
}

// existing reports which of paths exist.
func existing(paths ...string) map[string]bool {
	out := map[string]bool{}
	for _, p := range paths {
		_, err := os.Stat(p)
		out[p] = err == nil
	}
	return out
}

// checkHostCNIDirs checks that the host's CNI directories that crinode
// made as mount points are gone again, unless another cluster's node
// (a mount namespace kept by a file) still needs them.
func checkHostCNIDirs(t *testing.T, before map[string]bool) {
	t.Helper()
	if other := keptMountNamespaces(); len(other) > 0 {
		t.Logf("not checking %v: another cluster's node mount namespaces are kept (%s)", before, strings.Join(other, "; "))
		return
	}
	for p, existed := range before {
		_, err := os.Stat(p)
		switch {
		case existed:
			t.Logf("%s existed before the test: not checked", p)
		case err == nil:
			t.Errorf("%s did not exist before the test and is left", p)
		}
	}
}

// keptMountNamespaces lists the nsfs mounts of mount namespaces in this
// mount namespace.
func keptMountNamespaces() []string {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if pre, post, ok := strings.Cut(l, " - "); ok && strings.HasPrefix(post, "nsfs ") {
			if f := strings.Fields(pre); len(f) > 4 && strings.HasPrefix(f[3], "mnt:") {
				out = append(out, f[4])
			}
		}
	}
	return out
}
