package topology

// Fixture conventions for the kernel tests (root only; they skip otherwise):
//   - every cluster has a random name and a test-only random address plan
//     (lctest.RandomConfig, whose doc lists the ranges), which
//     safety.CheckHostConflicts must accept before it is used (else another
//     random plan is tried);
//   - Delete runs in t.Cleanup, registered before anything is created, and
//     the cleanup then checks that nothing was left behind;
//   - pings go only to addresses of the cluster's node or world network,
//     and from the root namespace only after checking that the kernel
//     routes them through the cluster's bridge.

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/localcluster/internal/lctest"
	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/localcluster/safety"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/nldump"
)

// testConfig returns a test-only Config that safety.CheckHostConflicts
// accepts, and registers Delete plus a leftover check in t.Cleanup.
func testConfig(t testing.TB, nodes int) *plan.Config {
	t.Helper()
	lctest.NeedRoot(t)
	var c *plan.Config
	var err error
	for range 20 {
		c = lctest.RandomConfig(nodes)
		if err = c.Validate(); err != nil {
			t.Fatalf("test config is invalid: %v", err)
		}
		if err = safety.CheckHostConflicts(c); err == nil {
			break
		}
		var ce *safety.ConflictError
		if !errors.As(err, &ce) {
			t.Fatalf("check host conflicts: %v", err)
		}
	}
	if err != nil {
		t.Fatalf("no conflict-free test address plan in 20 tries; last: %v", err)
	}
	t.Cleanup(func() {
		if err := Delete(c); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if left := leftovers(t, c); len(left) > 0 {
			t.Errorf("cleanup left behind:\n%s", strings.Join(left, "\n"))
		}
	})
	return c
}

// leftovers lists what of the cluster exists in the root namespace and in
// /run/netns: namespaces and links whose names start with the cluster's
// name or contain its ID, and routes of any table through such a link,
// carrying its blackhole metric, or blackholing part of its ranges. It is
// deliberately looser than the ownership rules of Delete.
func leftovers(t testing.TB, c *plan.Config) []string {
	t.Helper()
	var out []string
	entries, err := os.ReadDir(netns.RunDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), c.Name+"-") {
			out = append(out, "namespace "+e.Name())
		}
	}
	links, err := nldump.Do(netlink.LinkList)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if strings.Contains(l.Attrs().Name, c.ID()) {
			out = append(out, "link "+l.Attrs().Name)
		}
	}
	routes, err := safety.KernelRoutes()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Metric == c.BlackholeMetric() || strings.Contains(r.Link, c.ID()) ||
			(r.Type == unix.RTN_BLACKHOLE && r.Dst.Bits() > 0 && overlapsCluster(c, r.Dst)) {
			out = append(out, "route "+r.String())
		}
	}
	return out
}

func overlapsCluster(c *plan.Config, p netip.Prefix) bool {
	for _, q := range []netip.Prefix{c.PodCIDR, c.ServiceCIDR, c.NodeNetwork, c.WorldNetwork} {
		if q.Overlaps(p) {
			return true
		}
	}
	return false
}

// createTopology creates the cluster's topology or fails the test.
func createTopology(t testing.TB, c *plan.Config) {
	t.Helper()
	if err := Create(c); err != nil {
		t.Fatalf("Create: %v", err)
	}
}

// pingFromRoot pings a node or world underlay address from the root
// namespace, after checking that the kernel sends it through the bridge.
func pingFromRoot(t *testing.T, c *plan.Config, addr netip.Addr) {
	t.Helper()
	if !c.NodeNetwork.Contains(addr) {
		t.Fatalf("refusing to ping %s from the root namespace: outside the node network %s", addr, c.NodeNetwork)
	}
	routes, err := netlink.RouteGet(addr.AsSlice())
	if err != nil || len(routes) == 0 {
		t.Fatalf("route to %s: %v", addr, err)
	}
	br, err := netlink.LinkByName(c.BridgeName())
	if err != nil {
		t.Fatal(err)
	}
	if routes[0].LinkIndex != br.Attrs().Index {
		t.Fatalf("refusing to ping %s: the kernel routes it through link %d, not the bridge %s", addr, routes[0].LinkIndex, c.BridgeName())
	}
	ping(t, "", addr)
}

// pingFromNamespace pings an address of the cluster's node or world
// network from inside one of its namespaces.
func pingFromNamespace(t *testing.T, c *plan.Config, ns string, addr netip.Addr) {
	t.Helper()
	if !c.OwnsNamespace(ns) {
		t.Fatalf("refusing to ping from namespace %s: not one of cluster %s", ns, c.Name)
	}
	if !c.NodeNetwork.Contains(addr) && !c.WorldNetwork.Contains(addr) {
		t.Fatalf("refusing to ping %s: outside the node network %s and the world %s", addr, c.NodeNetwork, c.WorldNetwork)
	}
	ping(t, ns, addr)
}

func ping(t *testing.T, ns string, addr netip.Addr) {
	t.Helper()
	args := []string{"ping", "-c1", "-W2", addr.String()}
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		where := "the root namespace"
		if ns != "" {
			where = ns
		}
		t.Errorf("ping %s from %s: %v\n%s", addr, where, err, out)
	}
}

// readSysctl reads a setting of the calling thread's namespace.
func readSysctl(key string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + key)
	return strings.TrimSpace(string(b)), err
}

// routeVerdict asks the kernel how it would route a packet from the root
// namespace to addr, without sending one: "blackhole" when the FIB says
// blackhole (the kernel answers EINVAL), else the output link.
func routeVerdict(addr netip.Addr) (string, error) {
	routes, err := netlink.RouteGet(addr.AsSlice())
	switch {
	case errors.Is(err, unix.EINVAL):
		return "blackhole", nil
	case err != nil:
		return "", err
	case len(routes) == 0:
		return "", errors.New("no route")
	}
	l, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return "", err
	}
	return "dev " + l.Attrs().Name, nil
}
