package guard

// Kernel tests. Fixture conventions: three network namespaces of the
// test's own, pnt-guard-<8 hex>-{host,in,out}, removed in t.Cleanup:
//
//	host  plays the root namespace: the guard table is installed there and
//	      the senders run there
//	in    198.18.1.2/24 behind a veth (host side 198.18.1.1): inside the
//	      test model's allowed set
//	out   198.18.2.2/24 behind a veth (host side 198.18.2.1): outside the
//	      allowed set, by the test model alone
//
// Every address is local to these namespaces; nothing is sent anywhere
// else. The net_cls hierarchy is mounted at a t.TempDir(); the group is
// pnt-guard-<8 hex> with a classid 0x7fxxxxxx, which no cluster uses
// (theirs are 0x70xxxxxx). The senders are this test binary run again
// with guardSendEnv set (TestMain): each sends one UDP datagram and exits.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"sigs.k8s.io/knftables"

	"github.com/podnet/podnet/internal/localcluster/internal/lctest"
	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/netns"
)

// guardSendEnv makes the test binary send one datagram to its value
// (ip:port) and exit: 0 when the write succeeded, 3 when it failed.
const guardSendEnv = "PODNET_GUARD_TEST_SEND"

func TestMain(m *testing.M) {
	if to := os.Getenv(guardSendEnv); to != "" {
		os.Exit(sendOne(to))
	}
	os.Exit(m.Run())
}

func sendOne(to string) int {
	c, err := net.Dial("udp", to)
	if err == nil {
		_, err = c.Write([]byte("guard test"))
		c.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	return 0
}

// guardLab is the fixture of the package comment.
type guardLab struct {
	host, in, out string // namespace paths
	group         *Group
	model         Model
	nft           knftables.Interface // for model.Table, used inside host
}

var (
	labIn  = netip.MustParseAddr("198.18.1.2")
	labOut = netip.MustParseAddr("198.18.2.2")
)

func newGuardLab(t *testing.T) *guardLab {
	t.Helper()
	lctest.NeedRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("kernel test: the nft binary is missing (Debian package nftables)")
	}
	if err := Supported(); err != nil {
		t.Skipf("kernel test: %v", err) // typed: ErrUnsupported names the missing feature
	}
	lab := &guardLab{host: testNamespace(t, "pnt-guard-host-"), in: testNamespace(t, "pnt-guard-in-"),
		out: testNamespace(t, "pnt-guard-out-")}
	base := filepath.Base(lab.host)
	suffix := base[len(base)-4:]
	lab.link(t, "pgi"+suffix, lab.in, "198.18.1.1/24", labIn.String()+"/24")
	lab.link(t, "pgo"+suffix, lab.out, "198.18.2.1/24", labOut.String()+"/24")

	lab.model = Model{
		Table:     "pnt-guard-" + suffix,
		ClassID:   0x7f000000 | rand.Uint32N(1<<24),
		Allowed:   append([]netip.Prefix{netip.MustParsePrefix("198.18.1.0/24")}, Loopback...),
		LogPrefix: "pnt-guard-" + suffix + " drop: ",
	}
	mount := filepath.Join(t.TempDir(), "net_cls")
	g, err := CreateGroup(mount, strings.TrimPrefix(base, "pnt-guard-host-")+"-pnt-guard", lab.model.ClassID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := deleteGroup(mount, g.Name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	lab.group = g
	lab.inHost(t, func() (err error) { lab.nft, err = NewNFT(lab.model.Table); return err })
	return lab
}

// link joins host and the namespace at peer with a veth pair: hostSide on
// host's end, peerSide on peer's (peer's default route is host).
func (lab *guardLab) link(t *testing.T, name, peer, hostSide, peerSide string) {
	t.Helper()
	peerNS, err := os.Open(peer)
	if err != nil {
		t.Fatal(err)
	}
	defer peerNS.Close()
	lab.inHost(t, func() error {
		la := netlink.NewLinkAttrs()
		la.Name = name
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(peerNS.Fd())}); err != nil {
			return err
		}
		return upWithAddr(name, hostSide)
	})
	if err := netns.Do(peer, func() error { return upWithAddr("eth0", peerSide) }); err != nil {
		t.Fatal(err)
	}
}

func upWithAddr(name, prefix string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	addr, err := netlink.ParseAddr(prefix)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(l, addr); err != nil {
		return err
	}
	return netlink.LinkSetUp(l)
}

// testNamespace creates a network namespace named prefix + 8 random hex
// digits, removed in t.Cleanup, and returns its path.
func testNamespace(t *testing.T, prefix string) string {
	t.Helper()
	name := netns.UniqueName(prefix)
	path, err := netns.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Delete(name) })
	return path
}

func (lab *guardLab) inHost(t *testing.T, fn func() error) {
	t.Helper()
	if err := netns.Do(lab.host, fn); err != nil {
		t.Fatal(err)
	}
}

// listen opens a UDP socket at addr:0 in the namespace at path.
func listen(t *testing.T, path string, addr string) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	if err := netns.Do(path, func() (err error) { pc, err = net.ListenPacket("udp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// received reports whether a datagram arrives on pc within d.
func received(pc net.PacketConn, d time.Duration) bool {
	_ = pc.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 64)
	n, _, err := pc.ReadFrom(buf)
	return err == nil && string(buf[:n]) == "guard test"
}

// send runs the sender in host, confined in the group or not; it returns
// the sender's exit error (nil: the write succeeded).
func (lab *guardLab) send(t *testing.T, confined bool, to net.Addr) error {
	t.Helper()
	// nsenter, not netns.Do: netns.Do runs its function on another
	// thread, which is not in the group. The group is inherited through
	// nsenter's setns and exec.
	cmd := exec.Command("nsenter", "--net="+lab.host, os.Args[0])
	cmd.Env = append(os.Environ(), guardSendEnv+"="+to.String())
	if !confined {
		return cmd.Run()
	}
	var runErr error
	if err := lab.group.Do(func() error { runErr = cmd.Run(); return nil }); err != nil {
		t.Fatal(err)
	}
	return runErr
}

func (lab *guardLab) dropped(t *testing.T) uint64 {
	t.Helper()
	var p uint64
	var ok bool
	lab.inHost(t, func() (err error) { p, _, ok, err = Dropped(context.Background(), lab.nft); return err })
	if !ok {
		t.Fatal("the guard table is missing")
	}
	return p
}

// TestKernelGuardDropsOnlyConfinedPacketsOutsideTheAllowedSet: with the
// table installed, a confined process reaches the allowed namespace and
// loopback, while its datagram to the other namespace and its DNS query to
// loopback are counted and dropped; an unconfined process still reaches
// the other namespace.
func TestKernelGuardDropsOnlyConfinedPacketsOutsideTheAllowedSet(t *testing.T) {
	lab := newGuardLab(t)
	ctx := context.Background()
	lab.inHost(t, func() error {
		_, _, ok, err := Dropped(ctx, lab.nft)
		if ok || err != nil {
			return fmt.Errorf("Dropped before Install: installed %v, %v; want false, nil", ok, err)
		}
		return Install(ctx, lab.nft, lab.model)
	})
	t.Cleanup(func() { _ = netns.Do(lab.host, func() error { return Remove(ctx, lab.nft) }) })

	in := listen(t, lab.in, labIn.String()+":0")
	out := listen(t, lab.out, labOut.String()+":0")
	loop := listen(t, lab.host, "127.0.0.1:0")
	dns := listen(t, lab.host, "127.0.0.1:53")
	for _, tc := range []struct {
		name      string
		confined  bool
		to        net.PacketConn
		delivered bool
	}{
		{"a confined process reaches an allowed namespace", true, in, true},
		{"a confined process reaches loopback", true, loop, true},
		{"a confined process does not reach a namespace outside the allowed set", true, out, false},
		{"a confined process sends no DNS query, not even to loopback", true, dns, false},
		{"an unconfined process reaches the namespace outside the allowed set", false, out, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := lab.dropped(t)
			err := lab.send(t, tc.confined, tc.to.LocalAddr())
			got := received(tc.to, 500*time.Millisecond)
			if got != tc.delivered {
				t.Errorf("delivered %v, want %v (sender: %v)", got, tc.delivered, err)
			}
			if tc.delivered && err != nil {
				t.Errorf("sender failed: %v", err)
			}
			want := before
			if !tc.delivered {
				want++
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 3 {
					t.Errorf("sender's write did not fail (%v): the drop should refuse it", err)
				}
			}
			if after := lab.dropped(t); after != want {
				t.Errorf("counter %s went from %d to %d, want %d", CounterDropped, before, after, want)
			}
		})
	}
	if tasks, err := os.ReadFile(filepath.Join(lab.group.Dir(), "tasks")); err != nil || len(strings.TrimSpace(string(tasks))) != 0 {
		t.Errorf("threads left in the group after the senders exited: %q %v", tasks, err)
	}
}

// TestKernelDoStartsTheProcessInTheGroup: the process started inside Do
// is in the group from its start (its /proc/<pid>/cgroup says so), and the
// calling process is not.
func TestKernelDoStartsTheProcessInTheGroup(t *testing.T) {
	lab := newGuardLab(t)
	cmd := exec.Command("sleep", "30")
	if err := lab.group.Do(cmd.Start); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pids, err := lab.group.Procs()
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 1 || pids[0] != cmd.Process.Pid {
		t.Errorf("group holds %v, want only the child %d", pids, cmd.Process.Pid)
	}
	if err := lab.group.Holds(cmd.Process.Pid); err != nil {
		t.Error(err)
	}
	if err := lab.group.Holds(os.Getpid()); err == nil {
		t.Error("Holds says the test process is in the group")
	}
	self, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(os.Getpid()) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(self), lab.group.Name) {
		t.Errorf("the test process's main thread is in the group:\n%s", self)
	}
}

// TestKernelDeleteGroupAfterACrash: a group whose mount is gone (a crash
// between unmount and rmdir, or a state directory removed by hand) is
// still found and removed by its name; removing twice is success.
func TestKernelDeleteGroupAfterACrash(t *testing.T) {
	lctest.NeedRoot(t)
	if err := Supported(); err != nil {
		t.Skipf("kernel test: %v", err)
	}
	mount := filepath.Join(t.TempDir(), "net_cls")
	name := netns.UniqueName("pnt-guard-crash-")
	g, err := CreateGroup(mount, name, 0x7f000000|rand.Uint32N(1<<24))
	if err != nil {
		t.Fatal(err)
	}
	if err := unmountAll(mount); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := deleteGroup(mount, name); err != nil {
			t.Fatalf("deleteGroup #%d: %v", i+1, err)
		}
	}
	look := filepath.Join(t.TempDir(), "look")
	if err := mountNetCls(look); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unmountAll(look) }()
	if _, err := os.Stat(filepath.Join(look, g.Name)); !errors.Is(err, os.ErrNotExist) {
		_ = rmdirWait(filepath.Join(look, g.Name), 0)
		t.Errorf("group %s still in the hierarchy: %v", g.Name, err)
	}
	if isCgroupMount(mount) {
		t.Errorf("%s still mounted", mount)
	}
}

// TestKernelLoadsTheClusterTable: the kernel accepts the table of a
// cluster with the default plan (in a namespace of the test's own), a
// second Install over it, and Remove takes it away, twice.
func TestKernelLoadsTheClusterTable(t *testing.T) {
	lctest.NeedRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("kernel test: the nft binary is missing (Debian package nftables)")
	}
	path := testNamespace(t, "pnt-guard-load-")
	m := ForCluster(plan.DefaultConfig("podnet"))
	ctx := context.Background()
	err := netns.Do(path, func() error {
		nft, err := NewNFT(m.Table)
		if err != nil {
			return err
		}
		for i := range 2 {
			if err := Install(ctx, nft, m); err != nil {
				return fmt.Errorf("install #%d: %w", i+1, err)
			}
		}
		if _, _, ok, err := Dropped(ctx, nft); !ok || err != nil {
			return fmt.Errorf("after Install: installed %v, %v", ok, err)
		}
		for i := range 2 {
			if err := Remove(ctx, nft); err != nil {
				return fmt.Errorf("remove #%d: %w", i+1, err)
			}
		}
		if _, _, ok, err := Dropped(ctx, nft); ok || err != nil {
			return fmt.Errorf("after Remove: installed %v, %v", ok, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestKernelDeleteRemovesOnlyItsOwnGuard: Create then Delete of two
// clusters (tables in a namespace of the test's own, groups in the
// machine's net_cls hierarchy): Delete removes exactly its cluster's
// table, group and mount, also when the mount and the state directory are
// already gone (a crash, a directory removed by hand), and a second Delete
// is success.
func TestKernelDeleteRemovesOnlyItsOwnGuard(t *testing.T) {
	lctest.NeedRoot(t)
	if err := Supported(); err != nil {
		t.Skipf("kernel test: %v", err)
	}
	path := testNamespace(t, "pnt-guard-del-")
	a, b := lctest.RandomConfig(1), lctest.RandomConfig(1)
	for a.ID() == b.ID() {
		b = lctest.RandomConfig(1)
	}
	a.StateDir, b.StateDir = filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	ctx := context.Background()
	in := func(fn func() error) {
		t.Helper()
		if err := netns.Do(path, fn); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*plan.Config{a, b} {
		in(func() error { _, err := Create(ctx, c); return err })
		t.Cleanup(func() { _ = netns.Do(path, func() error { return Delete(c) }) })
	}
	// a crashed and its state directory was removed by hand.
	if err := unmountAll(MountPoint(a)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(a.StateDir); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		in(func() error { return Delete(a) })
	}
	installed := func(c *plan.Config) (ok bool) {
		in(func() error {
			nft, err := NewNFT(TableName(c))
			if err == nil {
				_, _, ok, err = Dropped(ctx, nft)
			}
			return err
		})
		return ok
	}
	if installed(a) {
		t.Errorf("table %s left by Delete", TableName(a))
	}
	if !installed(b) || !isCgroupMount(MountPoint(b)) {
		t.Fatalf("Delete of %s removed the table or the mount of %s", a.Name, b.Name)
	}
	if _, err := os.Stat(filepath.Join(MountPoint(b), GroupName(a))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("group %s left by Delete: %v", GroupName(a), err)
	}
	if _, err := os.Stat(filepath.Join(MountPoint(b), GroupName(b))); err != nil {
		t.Errorf("group %s removed by the Delete of another cluster: %v", GroupName(b), err)
	}
	in(func() error { return Delete(b) })
	if installed(b) || isCgroupMount(MountPoint(b)) {
		t.Errorf("Delete left the table or the mount of %s", b.Name)
	}
}
