package topology

// Kernel tests of the topology; see helpers_test.go for the
// fixture conventions (random names, test-only address plan, cleanup).

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/localcluster/internal/lctest"
	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/localcluster/safety"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/nldump"
)

func TestTopologyConnectivityAndContainment(t *testing.T) {
	c := testConfig(t, 2)
	podAddr := c.PodCIDR.Addr().Next()
	svcAddr := c.KubernetesServiceIP()
	worldAddr := c.WorldDNSIP
	outside := netip.MustParseAddr("192.0.2.99") // only asked about, never sent to
	for _, a := range []netip.Addr{podAddr, svcAddr, worldAddr} {
		if v, err := routeVerdict(a); err != nil || v == "blackhole" {
			t.Fatalf("before the topology exists, %s is routed as %q (%v); want an ordinary route", a, v, err)
		}
	}
	forwardBefore, _ := readSysctl("net/ipv4/ip_forward")
	routesBefore, err := safety.KernelRoutes()
	if err != nil {
		t.Fatal(err)
	}

	createTopology(t, c)

	t.Run("the root namespace reaches every node through the bridge", func(t *testing.T) {
		for i := 1; i <= c.Nodes; i++ {
			pingFromRoot(t, c, c.NodeIP(i))
		}
		pingFromRoot(t, c, c.WorldIP)
	})
	t.Run("node 1 reaches node 2, the world and the world's internet", func(t *testing.T) {
		for _, a := range []netip.Addr{c.NodeIP(2), c.WorldIP, c.WorldLoopbackPrefix().Addr(), c.WorldDNSIP} {
			pingFromNamespace(t, c, c.NodeNSName(1), a)
		}
	})
	t.Run("the world has no default route in any table", func(t *testing.T) {
		lctest.InNamespace(t, c.WorldNSName(), func() error {
			routes, err := safety.KernelRoutes()
			if err != nil {
				return err
			}
			for _, r := range routes {
				if r.Dst.Bits() == 0 {
					t.Errorf("the world has a default route: %s", r)
				}
			}
			// Asking the kernel sends nothing.
			if _, err := netlink.RouteGet(outside.AsSlice()); !errors.Is(err, unix.ENETUNREACH) {
				t.Errorf("the world routes %s: %v, want network unreachable", outside, err)
			}
			if got, err := readSysctl("net/ipv4/ip_forward"); got != "1" {
				t.Errorf("world ip_forward = %q (%v), want 1", got, err)
			}
			return nil
		})
	})
	t.Run("nodes route by default via the world and forward without reverse-path filtering", func(t *testing.T) {
		for i := 1; i <= c.Nodes; i++ {
			lctest.InNamespace(t, c.NodeNSName(i), func() error {
				routes, err := nldump.Do(func() ([]netlink.Route, error) { return netlink.RouteList(nil, netlink.FAMILY_V4) })
				if err != nil {
					return err
				}
				var defaults []string
				for _, r := range routes {
					if r.Dst == nil || r.Dst.IP.IsUnspecified() {
						defaults = append(defaults, r.Gw.String())
					}
				}
				if !slices.Equal(defaults, []string{c.WorldIP.String()}) {
					t.Errorf("node %d default routes via %v, want only via %s", i, defaults, c.WorldIP)
				}
				if rs, err := netlink.RouteGet(outside.AsSlice()); err != nil || !rs[0].Gw.Equal(c.WorldIP.AsSlice()) {
					t.Errorf("node %d routes %s: %v %v, want via the world %s", i, outside, rs, err, c.WorldIP)
				}
				for key, want := range map[string]string{
					"net/ipv4/ip_forward":              "1",
					"net/ipv4/conf/all/rp_filter":      "0",
					"net/ipv4/conf/eth0/rp_filter":     "0",
					"net/ipv4/conf/default/rp_filter":  "0",
					"net/ipv4/conf/eth0/forwarding":    "1",
					"net/ipv4/conf/default/forwarding": "1",
				} {
					if got, err := readSysctl(key); got != want {
						t.Errorf("node %d: %s = %q (%v), want %s", i, key, got, err, want)
					}
				}
				return nil
			})
		}
	})
	t.Run("the root namespace blackholes the pod, service and world ranges", func(t *testing.T) {
		for _, a := range []netip.Addr{podAddr, svcAddr, worldAddr} {
			if v, err := routeVerdict(a); err != nil || v != "blackhole" {
				t.Errorf("%s is routed as %q (%v), want blackhole", a, v, err)
			}
		}
		out, err := exec.Command("ip", "route", "get", podAddr.String()).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Invalid argument") {
			t.Errorf("ip route get %s: %v %s; want the kernel's blackhole answer (Invalid argument)", podAddr, err, out)
		}
		out, err = exec.Command("ip", "route", "show", "table", "main", "match", podAddr.String()).CombinedOutput()
		want := fmt.Sprintf("blackhole %s metric %d", c.PodCIDR, c.BlackholeMetric())
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("ip route show match %s: %v\n%s\nwant %q", podAddr, err, out, want)
		}
	})
	t.Run("the root namespace gained only the blackholes and the bridge's routes", func(t *testing.T) {
		after, err := safety.KernelRoutes()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range after {
			if slices.Contains(routesBefore, r) {
				continue
			}
			own := r.Link != "" && c.OwnsLink(r.Link)
			blackhole := r.Type == unix.RTN_BLACKHOLE && r.Metric == c.BlackholeMetric() && slices.Contains(c.BlackholePrefixes(), r.Dst)
			if !own && !blackhole && !ofAnotherCluster(c, r) {
				t.Errorf("new root route not on the cluster's links and not one of its blackholes: %s", r)
			}
		}
		if got, _ := readSysctl("net/ipv4/ip_forward"); got != forwardBefore {
			t.Errorf("root ip_forward changed from %s to %s", forwardBefore, got)
		}
		for key, want := range map[string]string{
			"net/ipv4/conf/" + c.BridgeName() + "/forwarding":   "0",
			"net/ipv6/conf/" + c.BridgeName() + "/disable_ipv6": "1",
		} {
			if got, err := readSysctl(key); got != want {
				t.Errorf("root %s = %q (%v), want %s: the root must not route for the cluster", key, got, err, want)
			}
		}
	})
	t.Run("the cluster's own objects do not trip the host check", func(t *testing.T) {
		if err := safety.CheckHostConflicts(c); err != nil {
			t.Errorf("safety.CheckHostConflicts of the running cluster: %v", err)
		}
	})
}

func TestTopologyDeleteLeavesNothingAndIsIdempotent(t *testing.T) {
	c := testConfig(t, 3)
	createTopology(t, c)
	if left := leftovers(t, c); len(left) == 0 {
		t.Fatal("leftovers() found nothing of a created topology; the check is blind")
	}
	for round := 1; round <= 2; round++ {
		if err := Delete(c); err != nil {
			t.Fatalf("Delete, round %d: %v", round, err)
		}
		if left := leftovers(t, c); len(left) > 0 {
			t.Fatalf("after Delete, round %d:\n%s", round, strings.Join(left, "\n"))
		}
	}
}

func TestTopologyDeleteRemovesPodNamespacesButNoOtherClusters(t *testing.T) {
	c := testConfig(t, 1)
	createTopology(t, c)
	pod := c.PodNSName("0123abcd-0000-4000-8000-000000000000")
	if _, err := netns.Create(pod); err != nil {
		t.Fatal(err)
	}
	// A namespace of another cluster whose name starts with this one's.
	foreign := c.Name + "-b-node-1"
	if _, err := netns.Create(foreign); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Delete(foreign) })
	if err := Delete(c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(netns.Path(pod)); !os.IsNotExist(err) {
		t.Errorf("pod namespace %s survived Delete: %v", pod, err)
	}
	if _, err := os.Stat(netns.Path(foreign)); err != nil {
		t.Errorf("Delete removed %s, which is not its cluster's: %v", foreign, err)
	}
	if err := netns.Delete(foreign); err != nil {
		t.Fatal(err)
	}
}

func TestTopologyDeleteWithAProcessStillInANode(t *testing.T) {
	c := testConfig(t, 1)
	createTopology(t, c)
	// The process keeps node 1's namespace alive after it is unmounted, so
	// the kernel does not remove its veth: Delete must.
	holder := exec.Command("ip", "netns", "exec", c.NodeNSName(1), "sh", "-c", "echo ready; exec sleep 60")
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = holder.Process.Kill()
		_ = holder.Wait()
	})
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("the process did not enter node 1: %q %v", line, err)
	}
	if err := Delete(c); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, c); len(left) > 0 {
		t.Errorf("after Delete with a process in node 1:\n%s", strings.Join(left, "\n"))
	}
	createTopology(t, c)
	pingFromRoot(t, c, c.NodeIP(1))
}

func TestTopologyRecreateAfterCrash(t *testing.T) {
	c := testConfig(t, 2)
	createTopology(t, c)
	// A crash: the topology stays, nothing in memory. Creating over it
	// fails and must not damage what is there.
	err := Create(c)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("Create over a leftover: %v, want an 'already exists' error", err)
	}
	pingFromRoot(t, c, c.NodeIP(1))
	pingFromNamespace(t, c, c.NodeNSName(2), c.WorldLoopbackPrefix().Addr())

	if err := Delete(c); err != nil {
		t.Fatal(err)
	}
	createTopology(t, c)
	pingFromRoot(t, c, c.NodeIP(2))
	pingFromNamespace(t, c, c.NodeNSName(1), c.NodeIP(2))
}

func TestTopologyFailureUndoesEverything(t *testing.T) {
	for _, tc := range []struct {
		name  string
		block func(t *testing.T, c *plan.Config) // makes node 2 fail
		want  string
	}{
		{
			name: "node 2's namespace already exists",
			block: func(t *testing.T, c *plan.Config) {
				if _, err := netns.Create(c.NodeNSName(2)); err != nil {
					t.Fatal(err)
				}
			},
			want: "node 2: create namespace %s-node-2:",
		},
		{
			name: "node 2's root-side veth name is taken",
			block: func(t *testing.T, c *plan.Config) {
				scratch := netns.UniqueName("pnt-lc-scratch-")
				path, err := netns.Create(scratch)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = netns.Delete(scratch) })
				ns, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer ns.Close()
				attrs := netlink.NewLinkAttrs()
				attrs.Name = c.NodeVethName(2)
				veth := &netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns.Fd()))}
				if err := netlink.LinkAdd(veth); err != nil {
					t.Fatal(err)
				}
			},
			want: "node 2: create veth %s:",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(t, 3)
			tc.block(t, c)
			before := leftovers(t, c)
			err := Create(c)
			if err == nil {
				t.Fatal("Create succeeded")
			}
			t.Logf("Create: %v", err)
			want := fmt.Sprintf(tc.want, c.Name)
			if strings.Contains(tc.want, "veth") {
				want = fmt.Sprintf(tc.want, c.NodeVethName(2))
			}
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "already exists") {
				t.Errorf("error %q does not say %q ... already exists", err, want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines:\n%v", err)
			}
			if strings.Contains(err.Error(), "undo failed") {
				t.Errorf("undo failed: %v", err)
			}
			if after := leftovers(t, c); !slices.Equal(after, before) {
				t.Errorf("after the failure, the cluster has\n%s\nwant only what the test made:\n%s",
					strings.Join(after, "\n"), strings.Join(before, "\n"))
			}
		})
	}
}

func TestTopologyAddNodeChecksItsInput(t *testing.T) {
	c := plan.DefaultConfig("x")
	if err := AddNode(c, 3); err == nil || !strings.Contains(err.Error(), "want 1 to 2") {
		t.Errorf("AddNode(3) of a 2-node cluster: %v", err)
	}
	c.Nodes = 0
	if err := AddNode(c, 1); err == nil {
		t.Error("AddNode accepted an invalid config")
	}
	if err := Delete(&plan.Config{Name: "../x"}); err == nil {
		t.Error("Delete accepted an invalid cluster name")
	}
}

func TestTopologyAddNodeToARunningCluster(t *testing.T) {
	c := testConfig(t, 1)
	createTopology(t, c)
	c.Nodes = 2
	if err := AddNode(c, 2); err != nil {
		t.Fatal(err)
	}
	pingFromNamespace(t, c, c.NodeNSName(1), c.NodeIP(2))
	if err := AddNode(c, 2); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("adding node 2 twice: %v", err)
	}
	pingFromNamespace(t, c, c.NodeNSName(2), c.WorldIP) // the failed retry undid nothing of node 2
}

func TestTopologyRefusesAHostConflictBeforeCreatingAnything(t *testing.T) {
	a := testConfig(t, 1)
	createTopology(t, a)

	b := testConfig(t, 1)
	b.NodeNetwork, b.RootIP, b.FirstNodeIP, b.WorldIP, b.LBPool = a.NodeNetwork, a.RootIP, a.FirstNodeIP, a.WorldIP, a.LBPool
	err := Create(b)
	var ce *safety.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("Create over another cluster's node network: %v, want a *safety.ConflictError", err)
	}
	if !strings.Contains(err.Error(), "on "+a.BridgeName()) {
		t.Errorf("the refusal does not name %s:\n%v", a.BridgeName(), err)
	}
	if left := leftovers(t, b); len(left) > 0 {
		t.Errorf("a refused Create created:\n%s", strings.Join(left, "\n"))
	}
}

// TestSafetyRefusesOverlapWithAnotherCluster runs the host check in the
// root namespace against a real test cluster: a second cluster (another
// name) on the same ranges is refused, the first one itself is not, and a
// fake route injected into the kernel's listing is refused too.
func TestSafetyRefusesOverlapWithAnotherCluster(t *testing.T) {
	a := testConfig(t, 1)
	createTopology(t, a)
	if err := safety.CheckHostConflicts(a); err != nil {
		t.Errorf("the cluster refuses its own leftovers: %v", err)
	}

	b := *a
	b.Name = a.Name + "b"
	err := safety.CheckHostConflicts(&b)
	for _, want := range []string{
		"node network " + a.NodeNetwork.String() + " overlaps address " + netip.PrefixFrom(a.RootIP, 24).String() + " on " + a.BridgeName(),
		"node network " + a.NodeNetwork.String() + " overlaps route " + a.NodeNetwork.String() + " dev " + a.BridgeName(),
		"pod CIDR " + a.PodCIDR.String() + " overlaps route blackhole " + a.PodCIDR.String(),
		"service CIDR " + a.ServiceCIDR.String() + " overlaps route blackhole " + a.ServiceCIDR.String(),
		"world network " + a.WorldNetwork.String() + " overlaps route blackhole " + a.WorldNetwork.String(),
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("refusal of %s lacks %q:\n%v", b.Name, want, err)
		}
	}

	c := lctest.RandomConfig(1)
	src := safety.KernelHostSources()
	kernel := src.Routes
	fake := safety.HostRoute{Dst: netip.PrefixFrom(c.ServiceCIDR.Addr(), 20), Type: unix.RTN_UNICAST, Table: 7, Link: "fake0"}
	src.Routes = func() ([]safety.HostRoute, error) {
		r, err := kernel()
		return append(r, fake), err
	}
	err = safety.CheckHostConflictsWith(c, src)
	want := fmt.Sprintf("service CIDR %s overlaps route %s", c.ServiceCIDR, fake)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("with a fake route: %v, want %q", err, want)
	}
}

// BenchmarkTopology reports how long Create and Delete take
// for 2 and 10 nodes (create-ms and delete-ms per cycle).
func BenchmarkTopology(b *testing.B) {
	for _, nodes := range []int{2, 10} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			c := testConfig(b, nodes)
			var create, del time.Duration
			n := 0
			for b.Loop() {
				start := time.Now()
				if err := Create(c); err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				if err := Delete(c); err != nil {
					b.Fatal(err)
				}
				create += mid.Sub(start)
				del += time.Since(mid)
				n++
			}
			b.ReportMetric(float64(create.Microseconds())/1000/float64(n), "create-ms")
			b.ReportMetric(float64(del.Microseconds())/1000/float64(n), "delete-ms")
		})
	}
}

// ofAnotherCluster reports whether a root route belongs to another local
// cluster made meanwhile (other tests run at the same time): one through a
// podnet interface that is not c's, or a blackhole with another podnet
// cluster's metric.
func ofAnotherCluster(c *plan.Config, r safety.HostRoute) bool {
	if r.Link != "" {
		return (strings.HasPrefix(r.Link, "pnbr") || strings.HasPrefix(r.Link, "pnu")) && !c.OwnsLink(r.Link)
	}
	return r.Type == unix.RTN_BLACKHOLE && r.Metric != c.BlackholeMetric() &&
		r.Metric >= plan.BlackholeMetricBase && r.Metric < plan.BlackholeMetricBase+1<<24
}
