package crinode

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// createMountNS makes the node's mount namespace, kept at n.MountNSPath:
// a private copy of the host's mounts with n.Binds() and a fresh /run.
// The directory holding the namespace files is itself a private bind
// mount, as a persistent mount namespace's file must be (unshare(1)).
// It returns the host directories it had to create as mount points.
func createMountNS(n *Node) (created []string, err error) {
	if err := privateMountDir(filepath.Dir(n.MountNSPath)); err != nil {
		return nil, err
	}
	var script strings.Builder
	script.WriteString("set -e\nmount -t tmpfs -o mode=0755 podnet-node-run /run\n")
	for _, b := range n.Binds() {
		host, own := b.Host, b.Own
		if err := os.MkdirAll(own, b.Mode); err != nil {
			return created, err
		}
		if err := os.Chmod(own, b.Mode); err != nil {
			return created, err
		}
		if _, err := os.Stat(host); errors.Is(err, fs.ErrNotExist) {
			made, err := mkdirAllNew(host)
			created = append(created, made...)
			markCreated(made)
			if err != nil {
				return created, err
			}
		}
		fmt.Fprintf(&script, "mount --bind %s %s\n", shellQuote(own), shellQuote(host))
	}
	if err := os.WriteFile(n.MountNSPath, nil, 0o600); err != nil {
		return created, err
	}
	out, err := exec.Command("unshare", "--mount="+n.MountNSPath, "--propagation=private", "--",
		"/bin/sh", "-c", script.String()).CombinedOutput()
	if err != nil {
		return created, fmt.Errorf("mount namespace of %s: %v: %s", n.Name, err, strings.TrimSpace(string(out)))
	}
	return created, nil
}

// privateMountDir makes dir a mount point with private propagation (a
// bind mount of itself), unless it is one already.
func privateMountDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if isMountPoint(dir) {
		return nil
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", dir, err)
	}
	return nil
}

// isMountPoint reports whether path is a mount point of this mount
// namespace (/proc/self/mountinfo's fifth field).
func isMountPoint(path string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && unescapeMountinfo(f[4]) == path {
			return true
		}
	}
	return false
}

func unescapeMountinfo(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// deleteMountNS unmounts the node's mount namespace file (the namespace
// goes once its last process has) and, when no node's is left, the
// private directory that held it.
func deleteMountNS(mountNSPath string) error {
	var errs []error
	if isMountPoint(mountNSPath) {
		if err := unix.Unmount(mountNSPath, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mountNSPath, err))
		}
	}
	_ = os.Remove(mountNSPath)
	dir := filepath.Dir(mountNSPath)
	if entries, err := os.ReadDir(dir); err == nil && len(entries) == 0 && isMountPoint(dir) {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// mkdirAllNew is os.MkdirAll that returns the directories it created,
// outermost first.
func mkdirAllNew(path string) ([]string, error) {
	var missing []string
	for p := path; p != "/" && p != "."; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		}
		missing = append([]string{p}, missing...)
	}
	for i, p := range missing {
		if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return missing[:i], err
		}
	}
	return missing, nil
}

// createdMark is the extended attribute createMountNS sets on each host
// directory it creates. The last node of any cluster to go removes the
// marked ones, whichever node made them: that node's cluster may have
// gone first, and within a cluster the first node makes them but the
// last one removes them.
const createdMark = "trusted.podnet.crinode-mount-point"

// markCreated marks dirs as made by crinode. A file system without
// extended attributes leaves only the node's own record (createdFile).
func markCreated(dirs []string) {
	for _, d := range dirs {
		_ = unix.Setxattr(d, createdMark, []byte("1"), 0)
	}
}

// markedDirs are paths and their ancestors that carry createdMark, up to
// the first that does not.
func markedDirs(paths []string) []string {
	var out []string
	for _, p := range paths {
		for d := filepath.Clean(p); d != "/" && d != "."; d = filepath.Dir(d) {
			if _, err := unix.Getxattr(d, createdMark, nil); err != nil {
				break
			}
			out = append(out, d)
		}
	}
	return out
}

// removeCreatedDirs removes the mount points createMountNS made on the
// host, innermost first, each only while it is empty: nothing of the
// host's is ever removed, and a directory something else has put files
// into since (/var/lib/podnet holds the podnet runtime's clusters) stays. Its caller makes sure that no persistent mount
// namespace is left on the machine (otherMountNamespaces): removing a
// directory that is a mount point in another mount namespace would
// unmount it there.
func removeCreatedDirs(dirs []string) error {
	dirs = slices.Clone(dirs)
	slices.SortFunc(dirs, func(a, b string) int { // deepest first
		return cmp.Or(strings.Count(b, "/")-strings.Count(a, "/"), strings.Compare(a, b))
	})
	var errs []error
	for _, d := range slices.Compact(dirs) {
		if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("remove %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// otherMountNamespaces reports whether a mount namespace is kept by a
// file (an nsfs mount of mnt:[...]) in this mount namespace.
func otherMountNamespaces() bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return true // unknown: keep the directories
	}
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if ok && len(f) > 3 && len(g) > 0 && g[0] == "nsfs" && strings.HasPrefix(f[3], "mnt:") {
			return true
		}
	}
	return false
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
