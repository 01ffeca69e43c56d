package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/localcluster/controlplane"
	"github.com/podnet/podnet/internal/localcluster/guard"
	"github.com/podnet/podnet/internal/proc"
)

// guardPlan is the address plan of TestGuardCountsNothingWhileKubectlExecAndLogsRun's
// own cluster (main_test.go: own clusters use 172.28.x).
var guardPlan = []string{"--node-network", "172.28.143.0/24", "--pod-cidr", "10.186.0.0/16",
	"--service-cidr", "10.187.0.0/16", "--world-network", "198.18.143.0/24"}

// TestGuardCountsNothingWhileKubectlExecAndLogsRun: in a cluster of its
// own, the control plane runs confined by the cluster's guard, and `kubectl
// exec` and `kubectl logs` (which make kube-apiserver dial the node's
// kubelet API) leave the guard's counter at 0: nothing of the control plane
// tried to send a packet outside the cluster (with kube-apiserver's default
// --kubelet-preferred-address-types it resolves the node's name through the
// machine's resolver, and the counter moves). A confined DNS query to
// loopback then moves it, so a 0 is not a counter that never counts. Down
// removes the table, the group and the mount.
func TestGuardCountsNothingWhileKubectlExecAndLogsRun(t *testing.T) {
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	c, err := up("e2e-guard-"+randHex(2), guardPlan...)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	downed := false
	t.Cleanup(func() {
		if !downed {
			c.down()
		}
	})
	cfg, err := localcluster.Load(c.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	st := c.status(t)
	checkConfined(t, cfg, st)

	c.apply(t, `
apiVersion: v1
kind: Pod
metadata: {name: talker, labels: {app: talker}}
spec:
  containers: [{name: c, image: podnet/test, command: [sh, -c, "echo hello from talker; exec sleep 3600"]}]
`)
	pod := c.runningPods(t, "default", "app=talker", 1, false)[0]
	nodeIP := ""
	for i := 1; i <= cfg.Nodes; i++ {
		if cfg.NodeName(i) == pod.Spec.NodeName {
			nodeIP = cfg.NodeIP(i).String()
		}
	}
	for _, args := range [][]string{
		{"exec", "talker", "--", "true"},
		{"logs", "talker"},
		{"exec", "talker", "--", "cat", "/etc/hostname"},
	} {
		out, err := c.podnet(append([]string{"kubectl", "--", "--request-timeout=20s"}, args...)...)
		// Until the runtime serves the kubelet API the API server's dial
		// is refused; what matters is where it dialled.
		if err != nil && !strings.Contains(out, nodeIP+":") {
			t.Errorf("kubectl %s failed without dialling the node's InternalIP %s: %v\n%s", strings.Join(args, " "), nodeIP, err, out)
		}
		t.Logf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	if st := c.status(t); st.Guard.DroppedPackets != 0 {
		t.Errorf("the guard dropped %d packets (%d bytes) of the control plane during kubectl exec/logs; see `dmesg | grep %s`",
			st.Guard.DroppedPackets, st.Guard.DroppedBytes, guard.TableName(cfg))
	}

	// A confined process's DNS query to loopback is counted (and dropped).
	g := &guard.Group{Mount: guard.MountPoint(cfg), Name: guard.GroupName(cfg)}
	send := exec.Command("bash", "-c", "exec 3>/dev/udp/127.0.0.1/53 && printf x >&3")
	out := &strings.Builder{}
	send.Stdout, send.Stderr = out, out
	if err := g.Do(func() error { _ = send.Run(); return nil }); err != nil {
		t.Fatal(err)
	}
	if st := c.status(t); st.Guard.DroppedPackets == 0 {
		t.Errorf("a confined DNS query to 127.0.0.1:53 was not counted (sender: %s)", out)
	}

	downed = true
	c.down()
	checkGuardRemoved(t, cfg)
}

// status runs `podnet status -o json`.
func (c *cluster) status(t *testing.T) localcluster.Status {
	t.Helper()
	out, err := c.podnet("status", "-o", "json")
	var st localcluster.Status
	if jerr := json.Unmarshal([]byte(out), &st); err != nil || jerr != nil {
		t.Fatalf("podnet status -o json: %v %v\n%s", err, jerr, out)
	}
	return st
}

// checkConfined: the guard is installed, with its counter at 0, and
// exactly the processes the cluster started in the root namespace (those
// recorded without a namespace: the control plane) are in its group.
func checkConfined(t *testing.T, cfg *localcluster.Config, st localcluster.Status) {
	t.Helper()
	if g := st.Guard; !g.Installed || g.Error != "" || g.DroppedPackets != 0 || g.Processes < len(controlplane.Binaries)-1 {
		t.Errorf("guard after up: %+v; want installed, the control plane confined, nothing dropped", g)
	}
	data, err := os.ReadFile(filepath.Join(guard.MountPoint(cfg), guard.GroupName(cfg), "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	confined := strings.Fields(string(data))
	recs, err := proc.ReadAll(cfg.ProcsDir())
	if err != nil || len(recs) == 0 {
		t.Fatalf("process records: %d, %v", len(recs), err)
	}
	for _, r := range recs {
		root := r.Netns == ""
		if in := slices.Contains(confined, strconv.Itoa(r.PID)); in != root {
			t.Errorf("%s (pid %d, namespace %q): confined %v, want %v", r.Name, r.PID, r.Netns, in, root)
		}
	}
}

// checkGuardRemoved: after down, no table, no mount and no group of cfg's
// guard is left.
func checkGuardRemoved(t *testing.T, cfg *localcluster.Config) {
	t.Helper()
	if out, err := exec.Command("nft", "list", "table", "inet", guard.TableName(cfg)).CombinedOutput(); err == nil {
		t.Errorf("table inet %s left after down:\n%s", guard.TableName(cfg), out)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), guard.MountPoint(cfg)) {
		t.Errorf("mount %s left after down", guard.MountPoint(cfg))
	}
	look := t.TempDir()
	if err := unix.Mount("cgroup", look, "cgroup", 0, "net_cls"); err != nil {
		t.Fatalf("mount the net_cls hierarchy to look for the group: %v", err)
	}
	defer func() { _ = unix.Unmount(look, unix.MNT_DETACH) }()
	if _, err := os.Stat(filepath.Join(look, guard.GroupName(cfg))); !os.IsNotExist(err) {
		t.Errorf("group %s left after down: %v", guard.GroupName(cfg), err)
	}
}
