// Package podexec runs a program inside a pod of the local cluster: in the
// pod's network namespace and in a new mount and UTS namespace where
// /etc/resolv.conf and /etc/hosts are the pod's own files and the hostname is
// the pod's name — what `ip netns exec` does, plus the pod's identity.
//
// A Go program cannot switch the namespaces of all its threads, so the
// switch happens in a small re-executed step: the podnet binary is started
// as `podnet pod-exec --netns PATH ... -- PROGRAM ARGS`, and that process
// locks its main thread, enters the namespaces on it and replaces itself with
// the program (execve keeps the calling thread's namespaces).
//
// Dangerous: the new mount namespace is made private before the bind mounts,
// so nothing mounted inside it leaks back to the node.
package podexec

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Options describe the pod to enter.
type Options struct {
	// NetNS is the pod's network namespace path; empty stays in the
	// caller's (host network pods).
	NetNS string
	// ResolvConf and Hosts are bind-mounted over /etc/resolv.conf and
	// /etc/hosts when set.
	ResolvConf string
	Hosts      string
	// Hostname is set in a new UTS namespace when not empty.
	Hostname string
	// Dir is the working directory; empty keeps the caller's.
	Dir string
}

// Args returns the argument list of `podnet pod-exec` for o and argv.
func (o Options) Args(argv []string) []string {
	args := []string{"pod-exec"}
	for _, f := range []struct{ flag, v string }{
		{"--netns", o.NetNS}, {"--resolv-conf", o.ResolvConf}, {"--hosts", o.Hosts},
		{"--hostname", o.Hostname}, {"--dir", o.Dir},
	} {
		if f.v != "" {
			args = append(args, f.flag, f.v)
		}
	}
	return append(append(args, "--"), argv...)
}

// Command returns an exec.Cmd that runs argv in the pod through the podnet
// binary at self.
func Command(self string, o Options, argv []string) *exec.Cmd {
	return exec.Command(self, o.Args(argv)...)
}

// Exec enters the pod's namespaces on the calling thread and replaces the
// process with argv. It returns only on error.
func Exec(o Options, argv []string) error {
	if len(argv) == 0 {
		return errors.New("pod-exec: no program given")
	}
	runtime.LockOSThread() // never unlocked: the process is replaced
	if o.NetNS != "" {
		fd, err := unix.Open(o.NetNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("pod-exec: open %s: %w", o.NetNS, err)
		}
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("pod-exec: enter %s: %w", o.NetNS, err)
		}
		unix.Close(fd)
	}
	flags := unix.CLONE_NEWNS
	if o.Hostname != "" {
		flags |= unix.CLONE_NEWUTS
	}
	if err := unix.Unshare(flags); err != nil {
		return fmt.Errorf("pod-exec: unshare: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("pod-exec: make / private: %w", err)
	}
	// /sys shows the network namespace it was mounted in; remount it so
	// that /sys/class/net lists the pod's interfaces, as ip netns exec does.
	if o.NetNS != "" {
		if err := unix.Unmount("/sys", unix.MNT_DETACH); err == nil {
			_ = unix.Mount("sysfs", "/sys", "sysfs", 0, "")
		}
	}
	for _, b := range []struct{ src, dst string }{{o.ResolvConf, "/etc/resolv.conf"}, {o.Hosts, "/etc/hosts"}} {
		if b.src == "" {
			continue
		}
		if err := unix.Mount(b.src, b.dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("pod-exec: bind %s over %s: %w", b.src, b.dst, err)
		}
	}
	if o.Hostname != "" {
		if err := unix.Sethostname([]byte(o.Hostname)); err != nil {
			return fmt.Errorf("pod-exec: hostname: %w", err)
		}
	}
	if o.Dir != "" {
		if err := os.Chdir(o.Dir); err != nil {
			return fmt.Errorf("pod-exec: %w", err)
		}
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("pod-exec: %w", err)
	}
	return syscall.Exec(path, argv, os.Environ())
}
