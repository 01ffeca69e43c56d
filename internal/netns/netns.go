// Package netns creates, enters and removes named network namespaces, the
// way `ip netns add/exec/del` do: a namespace is kept alive by a bind mount
// at /run/netns/<name>, so it outlives the process that made it and every
// tool (ip -n, nsenter, CNI runtimes) can find it by path.
//
// Entering a namespace changes the calling OS thread only. Do runs a
// function on a thread locked for the duration and switches it back; if
// switching back fails the thread is never unlocked, so the Go runtime
// discards it instead of reusing a thread stuck in the wrong namespace.
// Goroutines started inside Do run on other threads, in the root namespace.
//
// Dangerous: Delete unmounts and removes the named namespace; processes still
// inside it keep it alive, but it can no longer be found by name.
package netns

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// RunDir is where named namespaces are mounted, as with iproute2.
const RunDir = "/run/netns"

// Path returns the mount path of the named namespace.
func Path(name string) string { return filepath.Join(RunDir, name) }

// UniqueName returns prefix followed by 8 random hex digits.
func UniqueName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

var runDirOnce sync.Once
var runDirErr error

// prepareRunDir makes RunDir a shared mount point, as iproute2 does, so that
// namespaces mounted later also appear in mount namespaces made after.
func prepareRunDir() error {
	runDirOnce.Do(func() {
		if err := os.MkdirAll(RunDir, 0o755); err != nil {
			runDirErr = err
			return
		}
		err := unix.Mount("", RunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if errors.Is(err, unix.EINVAL) {
			if err = unix.Mount(RunDir, RunDir, "none", unix.MS_BIND|unix.MS_REC, ""); err == nil {
				err = unix.Mount("", RunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
			}
		}
		if err != nil {
			runDirErr = fmt.Errorf("make %s a shared mount: %w", RunDir, err)
		}
	})
	return runDirErr
}

// Create makes a new network namespace mounted at Path(name) with its
// loopback up, and returns the path. It fails if the name is taken.
func Create(name string) (string, error) {
	if name == "" || filepath.Base(name) != name {
		return "", fmt.Errorf("netns: invalid name %q", name)
	}
	if err := prepareRunDir(); err != nil {
		return "", fmt.Errorf("netns: %w", err)
	}
	path := Path(name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return "", fmt.Errorf("netns: create %s: %w", path, err)
	}
	f.Close()

	errc := make(chan error, 1)
	go func() {
		// A fresh thread, locked; if restoring the original namespace
		// fails it stays locked and dies with this goroutine.
		runtime.LockOSThread()
		orig, err := ns.GetCurrentNS()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		err = unix.Mount(self, path, "none", unix.MS_BIND, "")
		if err == nil {
			err = setLoopbackUp()
		}
		if serr := orig.Set(); serr != nil {
			errc <- errors.Join(err, fmt.Errorf("restore namespace: %w", serr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	if err := <-errc; err != nil {
		_ = unix.Unmount(path, unix.MNT_DETACH)
		_ = os.Remove(path)
		return "", fmt.Errorf("netns: create %s: %w", name, err)
	}
	return path, nil
}

// setLoopbackUp brings lo up in the calling thread's namespace.
func setLoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// Delete unmounts and removes the named namespace; a missing one is success.
func Delete(name string) error {
	path := Path(name)
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("netns: unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("netns: remove %s: %w", path, err)
	}
	return nil
}

// Do runs fn with the calling goroutine's thread inside the namespace at
// path, and switches back afterwards.
func Do(path string, fn func() error) error {
	return ns.WithNetNSPath(path, func(ns.NetNS) error { return fn() })
}
