package crinode

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupMount is where the cgroup v1 hierarchies are mounted.
const cgroupMount = "/sys/fs/cgroup"

// hierarchies are the cgroup v1 hierarchies mounted under cgroupMount
// (cpu, memory, pids, name=systemd's "systemd", ...), as directory names:
// those the node's processes join.
func hierarchies() ([]string, error) { return mountedHierarchies("cgroup") }

// allHierarchies adds the cgroup2 hierarchy a hybrid machine mounts under
// cgroupMount ("unified"). No process of podnet's joins it, but runc makes
// every container's cgroup there too, under the kubelet's --cgroup-root.
func allHierarchies() ([]string, error) { return mountedHierarchies("cgroup", "cgroup2") }

func mountedHierarchies(fstypes ...string) ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	out := parseHierarchies(string(data), fstypes...)
	if len(out) == 0 {
		return nil, errors.New("no cgroup v1 hierarchy is mounted under " + cgroupMount)
	}
	return out, nil
}

// parseHierarchies lists the directories directly under cgroupMount on
// which mountinfo has a file system of one of fstypes, sorted.
func parseHierarchies(mountinfo string, fstypes ...string) []string {
	var out []string
	for _, line := range strings.Split(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 1 || !slices.Contains(fstypes, g[0]) {
			continue
		}
		if dir := unescapeMountinfo(f[4]); filepath.Dir(dir) == cgroupMount {
			out = append(out, filepath.Base(dir))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// createCgroups makes root and root/runtime in every hierarchy (cpuset's
// with its parent's cpus and mems, which a new cpuset lacks).
func createCgroups(root string) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		for _, g := range []string{root, root + "/runtime"} {
			dir := filepath.Join(cgroupMount, h, g)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("cgroup %s: %w", dir, err)
			}
			if h != "cpuset" {
				continue
			}
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return fmt.Errorf("cgroup %s: %w", filepath.Join(dir, f), err)
				}
			}
		}
	}
	return nil
}

// joinCgroupsScript is the shell that moves itself into root/runtime in
// every hierarchy before it execs the program it is given.
func joinCgroupsScript(root string) (string, error) {
	hs, err := hierarchies()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("set -e\n")
	for _, h := range hs {
		fmt.Fprintf(&b, "echo $$ > %s\n", shellQuote(filepath.Join(cgroupMount, h, root, "runtime", "cgroup.procs")))
	}
	b.WriteString(`exec "$@"` + "\n")
	return b.String(), nil
}

// cgroupPIDs lists the processes in root's tree of the pids hierarchy
// (every process of the node: containerd, its shims, the kubelet, the
// containers).
func cgroupPIDs(root string) ([]int, error) {
	var pids []int
	top := filepath.Join(cgroupMount, "pids", root)
	err := filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil // gone meanwhile
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids, err
}

// killCgroups ends every process in root's tree with SIGKILL until none
// is left (the pids hierarchy lists a process until it is reaped: by its
// parent in the tree, or by init once that parent died).
func killCgroups(root string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids, err := cgroupPIDs(root)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: processes %v still running after %s", root, pids, timeout)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// deleteCgroups removes root's tree from every hierarchy, cgroup2's
// included, innermost first. A cgroup with a process cannot go:
// killCgroups comes first.
func deleteCgroups(root string) error {
	hs, err := allHierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hs {
		top := filepath.Join(cgroupMount, h, root)
		var dirs []string
		_ = filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// PodPID returns a process of the pod with uid on the node whose cgroup
// root is root (any of its containers' or its sandbox's: they share the
// pod's network namespace). The kubelet's cgroupfs driver names a pod's
// cgroup pod<uid> under root/kubepods[/<qos class>].
func PodPID(root, uid string) (int, error) {
	top := filepath.Join(cgroupMount, "pids", root, "kubepods")
	var podDir string
	_ = filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "pod"+uid {
			podDir = path
			return filepath.SkipAll
		}
		return nil
	})
	if podDir == "" {
		return 0, fmt.Errorf("no cgroup of pod %s under %s", uid, top)
	}
	var pid int
	_ = filepath.WalkDir(podDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		data, _ := os.ReadFile(path)
		if f := strings.Fields(string(data)); len(f) > 0 {
			pid, _ = strconv.Atoi(f[0])
			return filepath.SkipAll
		}
		return nil
	})
	if pid == 0 {
		return 0, fmt.Errorf("no process in pod %s's cgroup %s", uid, podDir)
	}
	return pid, nil
}
