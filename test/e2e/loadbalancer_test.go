package e2e

import (
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lbPlan is the address plan of TestLoadBalancerSeedGetsAnAddress's own
// cluster (main_test.go: own clusters use 172.28.x); its LB pool is
// 172.28.77.200/29.
var lbPlan = []string{"--node-network", "172.28.77.0/24", "--pod-cidr", "10.174.0.0/16",
	"--service-cidr", "10.175.0.0/16", "--world-network", "198.18.78.0/24"}

// TestLoadBalancerSeedGetsAnAddress: in a cluster of its own with the
// seed examples, `web-lb` gets an address from the default pool (what
// `kubectl get svc web-lb` shows), the pool counts it, and the service
// proxy on a node translates it. Reaching it from the world is the
// announcer's part.
func TestLoadBalancerSeedGetsAnAddress(t *testing.T) {
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	c, err := up("e2e-lb-"+randHex(2), append([]string{"-f", filepath.Join(repoRoot, "examples", "seed")}, lbPlan...)...)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	t.Cleanup(c.down)
	pool := netip.MustParsePrefix("172.28.77.200/29")
	var ip netip.Addr
	eventually(t, time.Minute, "web-lb has a LoadBalancer address", func() error {
		out := c.kubectl(t, "get", "svc", "web-lb", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		a, err := netip.ParseAddr(strings.TrimSpace(out))
		if err != nil {
			return fmt.Errorf("ingress %q", out)
		}
		ip = a
		return nil
	})
	if !pool.Contains(ip) {
		t.Fatalf("web-lb got %s, outside the default pool %s", ip, pool)
	}
	if out := c.kubectl(t, "get", "svc", "web-lb"); !strings.Contains(out, ip.String()) {
		t.Errorf("kubectl get svc web-lb does not show %s:\n%s", ip, out)
	}
	eventually(t, 30*time.Second, "the default pool counts it", func() error {
		out := c.kubectl(t, "get", "loadbalancerippools", "default", "--no-headers")
		if f := strings.Fields(out); len(f) < 3 || f[2] == "0" {
			return fmt.Errorf("kubectl get loadbalancerippools: %q", out)
		}
		return nil
	})
	eventually(t, 30*time.Second, "node 1's proxy table has the address", func() error {
		out, err := exec.Command("ip", "netns", "exec", c.name+"-node-1", "nft", "list", "table", "inet", "podnet-proxy").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.Contains(string(out), ip.String()) {
			return fmt.Errorf("%s is not in the table", ip)
		}
		return nil
	})
}
