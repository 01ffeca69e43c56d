package guard

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Group is a net_cls group of a mounted cgroup v1 hierarchy: every socket
// made by a process in it carries ClassID, which nftables matches as
// `meta cgroup`.
type Group struct {
	// Mount is where the net_cls hierarchy's root is mounted.
	Mount string
	// Name is the group's directory under Mount.
	Name string
	// ClassID is the group's net_cls.classid.
	ClassID uint32
}

// Dir is the group's directory.
func (g *Group) Dir() string { return filepath.Join(g.Mount, g.Name) }

// CreateGroup mounts the net_cls hierarchy at mount (unless a cgroup is
// mounted there already), makes the group name in it (or reuses it) and
// sets its classid.
func CreateGroup(mount, name string, classid uint32) (*Group, error) {
	if name == "" || filepath.Base(name) != name || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("guard: invalid group name %q", name)
	}
	if err := mountNetCls(mount); err != nil {
		return nil, err
	}
	g := &Group{Mount: mount, Name: name, ClassID: classid}
	if err := os.Mkdir(g.Dir(), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("guard: make group %s: %w", g.Dir(), err)
	}
	file := filepath.Join(g.Dir(), "net_cls.classid")
	if err := os.WriteFile(file, []byte(strconv.FormatUint(uint64(classid), 10)), 0); err != nil {
		return nil, fmt.Errorf("guard: set %s: %w", file, err)
	}
	got, err := os.ReadFile(file)
	if err != nil || strings.TrimSpace(string(got)) != strconv.FormatUint(uint64(classid), 10) {
		return nil, fmt.Errorf("guard: %s holds %q, want %d (%v)", file, bytes.TrimSpace(got), classid, err)
	}
	return g, nil
}

// netClsOptions are tried in order: net_cls alone, then with net_prio, the
// way systemd used to mount them together (a controller already in a
// hierarchy can only be mounted with that hierarchy's exact set).
var netClsOptions = []string{"net_cls", "net_cls,net_prio"}

// mountNetCls mounts the net_cls hierarchy at dir, a private mount, unless
// a cgroup file system is mounted there already.
func mountNetCls(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("guard: %w", err)
	}
	if isCgroupMount(dir) {
		return nil
	}
	var errs []error
	for _, opts := range netClsOptions {
		err := unix.Mount("cgroup", dir, "cgroup", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts)
		if err == nil {
			// Private: pod mount namespaces made later get no copy that
			// outlives the unmount.
			if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
				_ = unix.Unmount(dir, unix.MNT_DETACH)
				return fmt.Errorf("guard: make %s a private mount: %w", dir, err)
			}
			return nil
		}
		errs = append(errs, fmt.Errorf("-o %s: %w", opts, err))
	}
	return fmt.Errorf("guard: mount a cgroup v1 net_cls hierarchy at %s: %w", dir, errors.Join(errs...))
}

// isCgroupMount reports whether a cgroup (v1) file system is mounted at dir.
func isCgroupMount(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.CGROUP_SUPER_MAGIC
}

// Do runs fn on an OS thread of its own that is in the group while fn
// runs: a process fn starts (os/exec forks from the calling thread) begins
// its life in the group, before it runs a single instruction of its own,
// and its children inherit the group. The thread goes back to its former
// group afterwards; if that fails it is never unlocked, so the Go runtime
// ends it instead of reusing it.
//
// Moving a thread also re-tags every socket open in this process (the
// kernel updates the sockets of the moved task's file table), so while fn
// runs this process's own packets are confined too.
func (g *Group) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- g.do(fn) }()
	return <-errc
}

func (g *Group) do(fn func() error) error {
	runtime.LockOSThread()
	back, err := threadGroup()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	tid := unix.Gettid()
	if err := writeTask(g.Dir(), tid); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := fn()
	if err := writeTask(filepath.Join(g.Mount, back), tid); err != nil {
		return errors.Join(ferr, err) // the thread ends with this goroutine, still locked
	}
	runtime.UnlockOSThread()
	return ferr
}

// writeTask moves the thread tid into the group at dir.
func writeTask(dir string, tid int) error {
	if err := os.WriteFile(filepath.Join(dir, "tasks"), []byte(strconv.Itoa(tid)), 0); err != nil {
		return fmt.Errorf("guard: move thread %d to %s: %w", tid, dir, err)
	}
	return nil
}

// threadGroup is the calling thread's group in the net_cls hierarchy
// (relative to its root), from /proc/thread-self/cgroup.
func threadGroup() (string, error) {
	data, err := os.ReadFile("/proc/thread-self/cgroup")
	if err != nil {
		return "", fmt.Errorf("guard: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// hierarchy-ID:controller-list:path
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) == 3 && slices.Contains(strings.Split(f[1], ","), "net_cls") {
			return f[2], nil
		}
	}
	return "", fmt.Errorf("guard: no net_cls hierarchy in /proc/thread-self/cgroup")
}

// Procs are the pids in the group.
func (g *Group) Procs() ([]int, error) {
	data, err := os.ReadFile(filepath.Join(g.Dir(), "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("guard: %w", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Holds returns an error unless pid is in the group.
func (g *Group) Holds(pid int) error {
	pids, err := g.Procs()
	if err != nil {
		return err
	}
	if !slices.Contains(pids, pid) {
		return fmt.Errorf("guard: pid %d is not in group %s", pid, g.Dir())
	}
	return nil
}

// rmdirWait removes the group directory dir (a missing one is success),
// retrying while the kernel still counts processes that have just exited.
func rmdirWait(dir string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("guard: remove group %s: %w", dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unmountAll unmounts every cgroup file system stacked at dir and removes
// the directory; a missing or unmounted dir is success.
func unmountAll(dir string) error {
	for isCgroupMount(dir) {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("guard: unmount %s: %w", dir, err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("guard: %w", err)
	}
	return nil
}
