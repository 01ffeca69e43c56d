package localcluster

// Fixture conventions for the kernel tests (root only; they skip otherwise):
//   - every cluster is named "t" + 6 random hex digits, so its namespaces
//     (t??????-node-<i>, t??????-world) and interfaces (pnbr<id>, pnu<id>*)
//     are its own;
//   - the address plan is test-only and random, so it never collides with a
//     real cluster (10.244/16, 10.96/16, 172.30.0/24, 203.0.113/24) nor with
//     another test run at the same time:
//       node network  172.31.<200-250>.0/24 (root .1, nodes .11.., world .254,
//                     LB pool .200/29)
//       pod CIDR      10.<200-250, not 244>.0.0/16
//       service CIDR  10.<100-150>.0.0/16
//       world         198.<18-19>.<0-255>.<16k>/28 (the benchmarking block
//                     198.18.0.0/15; other tests use TEST-NET-2)
//     and CheckHostConflicts must accept it before it is used (else another
//     random plan is tried);
//   - DeleteTopology runs in t.Cleanup, registered before anything is
//     created, and the cleanup then checks that nothing was left behind;
//   - pings go only to addresses of the cluster's node or world network,
//     and from the root namespace only after checking that the kernel
//     routes them through the cluster's bridge.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/nldump"
)

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: creating network namespaces, links and routes needs root")
	}
}

// randomTestConfig returns a test-only Config with a random name and plan
// (see the conventions above); it does not check the host.
func randomTestConfig(nodes int) *Config {
	c := DefaultConfig(fmt.Sprintf("t%06x", rand.Uint32N(1<<24)))
	c.Nodes = nodes
	c.StateDir = "/nonexistent/podnet-test/" + c.Name
	pod := 200 + rand.IntN(51)
	for pod == 244 {
		pod = 200 + rand.IntN(51)
	}
	underlay := 200 + rand.IntN(51)
	worldNet := fmt.Sprintf("198.%d.%d", 18+rand.IntN(2), rand.IntN(256))
	world := 16 * rand.IntN(16)
	c.PodCIDR = netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", pod))
	c.ServiceCIDR = netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", 100+rand.IntN(51)))
	c.NodeNetwork = netip.MustParsePrefix(fmt.Sprintf("172.31.%d.0/24", underlay))
	c.RootIP = netip.MustParseAddr(fmt.Sprintf("172.31.%d.1", underlay))
	c.FirstNodeIP = netip.MustParseAddr(fmt.Sprintf("172.31.%d.11", underlay))
	c.WorldIP = netip.MustParseAddr(fmt.Sprintf("172.31.%d.254", underlay))
	c.LBPool = netip.MustParsePrefix(fmt.Sprintf("172.31.%d.200/29", underlay))
	c.WorldNetwork = netip.MustParsePrefix(fmt.Sprintf("%s.%d/28", worldNet, world))
	c.WorldDNSIP = netip.MustParseAddr(fmt.Sprintf("%s.%d", worldNet, world+5))
	return c
}

// testConfig returns a test-only Config that CheckHostConflicts accepts,
// and registers DeleteTopology plus a leftover check in t.Cleanup.
func testConfig(t testing.TB, nodes int) *Config {
	t.Helper()
	needRoot(t)
	var c *Config
	var err error
	for range 20 {
		c = randomTestConfig(nodes)
		if err = c.Validate(); err != nil {
			t.Fatalf("test config is invalid: %v", err)
		}
		if err = CheckHostConflicts(c); err == nil {
			break
		}
		var ce *ConflictError
		if !errors.As(err, &ce) {
			t.Fatalf("check host conflicts: %v", err)
		}
	}
	if err != nil {
		t.Fatalf("no conflict-free test address plan in 20 tries; last: %v", err)
	}
	t.Cleanup(func() {
		if err := DeleteTopology(c); err != nil {
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
// carrying its blackhole metric, or blackholing part of its ranges. It is deliberately looser than the
// ownership rules of DeleteTopology.
func leftovers(t testing.TB, c *Config) []string {
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
	routes, err := kernelRoutes()
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

func overlapsCluster(c *Config, p netip.Prefix) bool {
	for _, q := range []netip.Prefix{c.PodCIDR, c.ServiceCIDR, c.NodeNetwork, c.WorldNetwork} {
		if q.Overlaps(p) {
			return true
		}
	}
	return false
}

// createTopology creates the cluster's topology or fails the test.
func createTopology(t testing.TB, c *Config) {
	t.Helper()
	if err := CreateTopology(c); err != nil {
		t.Fatalf("CreateTopology: %v", err)
	}
}

// pingFromRoot pings a node or world underlay address from the root
// namespace, after checking that the kernel sends it through the bridge.
func pingFromRoot(t *testing.T, c *Config, addr netip.Addr) {
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
func pingFromNamespace(t *testing.T, c *Config, ns string, addr netip.Addr) {
	t.Helper()
	if !c.ownsNamespace(ns) {
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

// inNamespace runs fn inside the cluster namespace ns.
func inNamespace(t *testing.T, ns string, fn func() error) {
	t.Helper()
	if err := netns.Do(netns.Path(ns), fn); err != nil {
		t.Fatalf("in namespace %s: %v", ns, err)
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
