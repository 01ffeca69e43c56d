package crinode

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podnet/podnet/internal/localcluster/internal/lctest"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/proc"
)

// testNode is a node in a throwaway network namespace and state
// directory, removed at the end of the test whatever happens.
func testNode(t *testing.T) *Node {
	t.Helper()
	lctest.NeedRoot(t)
	bin, err := filepath.Abs(lctest.ToolsBin())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"containerd", "containerd-shim-runc-v2"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Fatalf("%s: run make tools", err)
		}
	}
	name := netns.UniqueName("pncri-")
	nsPath, err := netns.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	n := &Node{Cluster: "t", Name: name, IP: netip.MustParseAddr("127.0.0.1"), Dir: filepath.Join(state, "node"),
		NetnsPath: nsPath, MountNSPath: filepath.Join(state, "mntns", name),
		Registry: netip.MustParseAddrPort("127.0.0.1:5000"), ContainerdBin: filepath.Join(bin, "containerd"),
		ShimDir: bin, RuncBin: "/usr/sbin/runc", LogsDir: filepath.Join(state, "logs"), ProcsDir: filepath.Join(state, "procs")}
	t.Cleanup(func() {
		_ = proc.StopAll(n.ProcsDir, time.Second)
		if err := Delete(n.Dir, n.MountNSPath, n.CgroupRoot()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		_ = netns.Delete(name)
	})
	return n
}

func TestContainerdNodeStartsInItsNamespacesAndGoesWholeAfterKill9(t *testing.T) {
	n := testNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := Start(ctx, n); err != nil {
		t.Fatalf("start: %v\n%s", err, proc.TailFile(filepath.Join(n.LogsDir, ContainerdProcName(n.Name)+".log"), 30))
	}
	rec, err := proc.Read(n.ProcsDir, ContainerdProcName(n.Name))
	if err != nil {
		t.Fatal(err)
	}
	// containerd runs in the node's namespaces and cgroup.
	for ns, want := range map[string]string{"net": n.NetnsPath, "mnt": n.MountNSPath} {
		got, err := os.Readlink("/proc/" + itoa(rec.PID) + "/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(want, &st); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(got, "["+itoa(int(st.Ino))+"]") {
			t.Errorf("containerd's %s namespace is %s, want the node's (inode %d)", ns, got, st.Ino)
		}
	}
	pids, err := cgroupPIDs(n.CgroupRoot())
	if err != nil || len(pids) != 1 || pids[0] != rec.PID {
		t.Errorf("cgroup %s holds %v (%v), want containerd's pid %d", n.CgroupRoot(), pids, err, rec.PID)
	}
	// The node sees its own CNI and WireGuard key directories and /run;
	// the host does not.
	if len(n.Binds()) != 4 {
		t.Fatalf("binds %v: the checks below expect the 3 CNI directories and the key's", n.Binds())
	}
	marker := "marker-" + filepath.Base(n.Dir) + "-" + itoa(os.Getpid())
	for _, b := range n.Binds() {
		if err := os.WriteFile(filepath.Join(b.Own, marker), []byte(b.Own), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("nsenter", "--mount="+n.MountNSPath, "--", "cat", filepath.Join(b.Host, marker)).CombinedOutput()
		if err != nil || string(out) != b.Own {
			t.Errorf("the node's %s: %q, %v; want its own directory's marker", b.Host, out, err)
		}
		if _, err := os.Stat(filepath.Join(b.Host, marker)); err == nil {
			t.Errorf("the host's %s has the node's marker", b.Host)
		}
		if st, err := os.Stat(b.Own); err != nil {
			t.Error(err)
		} else if st.Mode().Perm() != b.Mode {
			t.Errorf("%s: mode %v, want %v", b.Own, st.Mode().Perm(), b.Mode)
		}
	}
	if st, err := os.Stat(n.WireGuardDir()); err != nil {
		t.Error(err)
	} else if st.Mode().Perm() != 0o700 {
		t.Errorf("the node's key directory %s: mode %v, want 0700 (the key is its own)", n.WireGuardDir(), st.Mode().Perm())
	}
	if _, err := os.Stat("/run/containerd/containerd.sock.ttrpc"); err == nil {
		t.Errorf("containerd's state is in the host's /run")
	}

	// kill -9, then Delete: no process, cgroup or mount is left.
	if err := syscall.Kill(rec.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := Delete(n.Dir, n.MountNSPath, n.CgroupRoot()); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cgroupMount, "pids", n.CgroupRoot())); err == nil {
		t.Errorf("cgroup %s is still there", n.CgroupRoot())
	}
	if isMountPoint(n.MountNSPath) || isMountPoint(filepath.Dir(n.MountNSPath)) {
		t.Errorf("the mount namespace is still kept at %s", n.MountNSPath)
	}
	if proc.Alive(rec) {
		t.Errorf("containerd (pid %d) still runs", rec.PID)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
