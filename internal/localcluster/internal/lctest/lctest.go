// Package lctest holds the test fixtures the local cluster's packages
// share: a root check, a test-only address plan, entering a namespace, and
// where the control-plane binaries are. Only tests import it.
//
// The address plan of RandomConfig is test-only and random, so that it
// never collides with a real cluster (10.244/16, 10.96/16, 172.30.0/24,
// 203.0.113/24) nor with another test run at the same time:
//
//	cluster name  "t" + 6 random hex digits: its namespaces
//	              (t??????-node-<i>, t??????-world) and interfaces
//	              (pnbr<id>, pnu<id>*) are its own
//	node network  172.31.<200-250>.0/24 (root .1, nodes .11.., world .254,
//	              LB pool .200/29)
//	pod CIDR      10.<200-250, not 244>.0.0/16
//	service CIDR  10.<100-150>.0.0/16
//	world         198.<18-19>.<0-255>.<16k>/28 (the benchmarking block
//	              198.18.0.0/15; other tests use TEST-NET-2), its DNS
//	              server at .<16k+5>
//
// A caller must still check the plan against the host
// (safety.CheckHostConflicts) before it creates anything with it.
package lctest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/netns"
)

// NeedRoot skips a kernel test when not run as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: creating network namespaces, links and routes needs root")
	}
}

// RandomConfig returns a test-only Config with a random name and address
// plan (see the package doc) and a state directory that does not exist; it
// does not check the host.
func RandomConfig(nodes int) *plan.Config {
	c := plan.DefaultConfig(fmt.Sprintf("t%06x", rand.Uint32N(1<<24)))
	c.Nodes = nodes
	c.StateDir = "/nonexistent/podnet-test/" + c.Name
	pod := 200 + rand.IntN(51)
	for pod == 244 {
		pod = 200 + rand.IntN(51)
	}
	worldNet := fmt.Sprintf("198.%d.%d", 18+rand.IntN(2), rand.IntN(256))
	world := 16 * rand.IntN(16)
	c.PodCIDR = netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", pod))
	c.ServiceCIDR = netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", 100+rand.IntN(51)))
	if err := c.SetNodeNetwork(netip.MustParsePrefix(fmt.Sprintf("172.31.%d.0/24", 200+rand.IntN(51)))); err != nil {
		panic(err)
	}
	// A /28 is too small for SetWorldNetwork's .53: set by hand.
	c.WorldNetwork = netip.MustParsePrefix(fmt.Sprintf("%s.%d/28", worldNet, world))
	c.WorldDNSIP = netip.MustParseAddr(fmt.Sprintf("%s.%d", worldNet, world+5))
	return c
}

// InNamespace runs fn inside the named namespace, failing the test on an
// error.
func InNamespace(t testing.TB, ns string, fn func() error) {
	t.Helper()
	if err := netns.Do(netns.Path(ns), fn); err != nil {
		t.Fatalf("in namespace %s: %v", ns, err)
	}
}

// IPNet converts a prefix for netlink.
func IPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// ToolsBin is tools/bin of this repository (make tools).
func ToolsBin() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("lctest: cannot locate the source")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "tools", "bin")
}

// Eventually polls fn every 100ms until it returns nil, failing with its
// last error after d.
func Eventually(t testing.TB, d time.Duration, what string, fn func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = fn(); err == nil {
			return
		}
	}
	t.Fatalf("%s: not within %s: %v", what, d, err)
}
