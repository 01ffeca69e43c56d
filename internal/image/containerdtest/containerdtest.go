// Package containerdtest starts a private containerd for tests: the
// containerd and ctr that tools/ builds, with their own root, state and
// socket in a new temporary directory, the CRI plugins off, stopped and
// removed when the test ends (also when it fails). Containers that tests
// run with ctr get containerd's default spec: a new network namespace with
// only loopback, so nothing they do leaves them.
package containerdtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Containerd is a running private containerd.
type Containerd struct {
	Address string // its gRPC socket
	ctr     string
}

// config turns off what a test does not need: the CRI plugins (no kubelet
// here) and every TCP listener.
const config = `version = 3
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images", "io.containerd.podsandbox.controller.v1.podsandbox"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`

// Start runs containerd from toolsBin. It skips the test, saying why,
// without root or without tools/bin/containerd and ctr (make tools).
func Start(t testing.TB, toolsBin string) *Containerd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("containerd test: needs root (containerd mounts snapshots and runs runc)")
	}
	bin, ctr := filepath.Join(toolsBin, "containerd"), filepath.Join(toolsBin, "ctr")
	for _, p := range []string{bin, ctr} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("containerd test: %v (make tools builds it)", err)
		}
	}
	// A short directory: the socket's path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "ctd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{Address: filepath.Join(dir, "c.sock"), ctr: ctr}
	cfg := filepath.Join(dir, "config.toml")
	body := fmt.Sprintf(config, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Address, c.Address+".ttrpc")
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, cmd, dir) })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := c.run("", "version"); err == nil {
			return c
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("containerd did not answer on %s within 30s:\n%s", c.Address, log)
		}
	}
}

// stop ends containerd (SIGTERM, then SIGKILL), unmounts whatever it left
// under dir and removes dir.
func stop(t testing.TB, cmd *exec.Cmd, dir string) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	var under []string
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			under = append(under, f[1])
		}
	}
	for i := len(under) - 1; i >= 0; i-- {
		if err := syscall.Unmount(under[i], syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", under[i], err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("remove containerd's directory: %v", err)
	}
}

func (c *Containerd) run(ns string, args ...string) (string, error) {
	argv := []string{"--address", c.Address}
	if ns != "" {
		argv = append(argv, "--namespace", ns)
	}
	out, err := exec.Command(c.ctr, append(argv, args...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s%s", err, out, ee.Stderr)
		}
		return "", fmt.Errorf("ctr %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// Ctr runs ctr in the containerd namespace ns and returns its standard
// output (a container's, for ctr run; its standard error goes to ctr's,
// with containerd's warnings); it fails the test if ctr fails.
func (c *Containerd) Ctr(t testing.TB, ns string, args ...string) string {
	t.Helper()
	out, err := c.run(ns, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Images lists the names of the images in namespace ns.
func (c *Containerd) Images(t testing.TB, ns string) []string {
	t.Helper()
	return strings.Fields(c.Ctr(t, ns, "images", "ls", "-q"))
}
