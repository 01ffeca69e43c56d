package proxy

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	v1 "k8s.io/api/core/v1"

	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/testserver"
)

func needKernel(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: creating network namespaces needs root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("kernel test: the nft binary is missing (Debian package nftables)")
	}
}

// TestKernelTableLoadsAndBalances: one namespace stands in for a node; two
// "endpoints" are addresses on its lo (10.244.1.2 and 10.244.1.3) served by
// the built-in test server; the client connects from the node itself.
func TestKernelTableLoadsAndBalances(t *testing.T) {
	path := kernelNode(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serveEndpoints(ctx, path, testserver.Config{TCPPorts: []int{8080}})
	sps := BuildServicePorts("node-1", []*v1Service{svc("default", "web", "10.96.0.5", 80, 8080, 30080)}, []*v1Slice{
		slice("default", "web", "", 8080, ep("10.244.1.2", "node-1", true, false), ep("10.244.1.3", "node-1", true, false)),
	})
	cfg := Config{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}, NodeIPs: []netip.Addr{netip.MustParseAddr("172.30.0.11")}}
	var res SyncResult
	err := netns.Do(path, func() error {
		nft, err := NewNFT()
		if err != nil {
			return err
		}
		s := NewSyncer(nft, KernelConntrack{})
		if res, err = s.Sync(ctx, cfg, sps); err != nil {
			return err
		}
		_, err = s.Sync(ctx, cfg, sps) // a second full sync replaces, not appends
		return err
	})
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	t.Logf("sync: %d operations in %s", res.Operations, res.Duration)
	seen := map[string]bool{}
	for i := 0; i < 20 && len(seen) < 2; i++ {
		for _, target := range []string{"10.96.0.5:80", "172.30.0.11:30080"} {
			out, err := exec.Command("nsenter", "--net="+path, "curl", "-s", "--max-time", "2", "http://"+target+"/").CombinedOutput()
			if err != nil {
				t.Fatalf("curl %s: %v %s", target, err, out)
			}
			pod, _, ok := testserver.ParseReply(string(out))
			if !ok {
				t.Fatalf("reply %q", out)
			}
			seen[pod] = true
		}
	}
	if len(seen) != 2 {
		t.Errorf("answers came from %v, want both endpoints", seen)
	}
	// A Service without endpoints is rejected at once, not timed out.
	sps = BuildServicePorts("node-1", []*v1Service{svc("default", "empty", "10.96.0.6", 80, 8080, 0)}, nil)
	err = netns.Do(path, func() error {
		nft, _ := NewNFT()
		_, err := NewSyncer(nft, KernelConntrack{}).Sync(ctx, cfg, sps)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := exec.Command("nsenter", "--net="+path, "curl", "-sS", "--max-time", "5", "http://10.96.0.6/").CombinedOutput()
	if err == nil || time.Since(start) > 3*time.Second || !(strings.Contains(string(out), "refused") || strings.Contains(string(out), "Failed to connect")) {
		t.Errorf("no-endpoint service: err=%v after %s: %s; want an immediate refusal", err, time.Since(start), out)
	}
}

func TestKernelSessionAffinityKeepsAClientOnOneEndpoint(t *testing.T) {
	path := kernelNode(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serveEndpoints(ctx, path, testserver.Config{TCPPorts: []int{8080}})
	s := svc("default", "sticky", "10.96.0.7", 80, 8080, 0)
	s.Spec.SessionAffinity = "ClientIP"
	sps := BuildServicePorts("node-1", []*v1Service{s}, []*v1Slice{
		slice("default", "sticky", "", 8080, ep("10.244.1.2", "node-1", true, false), ep("10.244.1.3", "node-1", true, false))})
	sync := func() {
		t.Helper()
		err := netns.Do(path, func() error {
			nft, err := NewNFT()
			if err != nil {
				return err
			}
			_, err = NewSyncer(nft, nil).Sync(ctx, Config{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}, sps)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sync()
	ask := func() string {
		out, err := exec.Command("nsenter", "--net="+path, "curl", "-s", "--max-time", "2", "http://10.96.0.7/").CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v %s", err, out)
		}
		pod, _, _ := testserver.ParseReply(string(out))
		return pod
	}
	first := ask()
	for i := 0; i < 15; i++ {
		if got := ask(); got != first {
			t.Fatalf("connection %d went to %s, the first to %s: no affinity", i+2, got, first)
		}
	}
	sync() // a resync keeps the affinity state
	if got := ask(); got != first {
		t.Errorf("after a resync the client went to %s, before to %s", got, first)
	}
}

// serveEndpoints runs the built-in test server as "ep-a" on 10.244.1.2 and
// "ep-b" on 10.244.1.3 inside the namespace at path, until ctx ends. Serve
// binds its sockets while its goroutine's thread is in the namespace;
// accepted connections belong to it from then on.
func serveEndpoints(ctx context.Context, path string, c testserver.Config) {
	for _, ep := range []struct{ name, host string }{{"ep-a", "10.244.1.2"}, {"ep-b", "10.244.1.3"}} {
		c := c
		c.Pod, c.Host = ep.name, ep.host
		go func() { _ = netns.Do(path, func() error { return testserver.Serve(ctx, c) }) }()
	}
	time.Sleep(100 * time.Millisecond)
}

// TestKernelNodeReachesLocalPolicyServiceWithoutLocalEndpoint: the node
// itself reaches the NodePort and the LoadBalancer IP of an
// externalTrafficPolicy Local Service whose only endpoint is on another
// node (fib saddr type local in the nat hooks, as kube-proxy), and a
// LoadBalancer IP that is a local address of the node passes
// loadBalancerSourceRanges that hold the node's address.
func TestKernelNodeReachesLocalPolicyServiceWithoutLocalEndpoint(t *testing.T) {
	path := kernelNode(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serveEndpoints(ctx, path, testserver.Config{TCPPorts: []int{8080}})
	s := svc("default", "local", "10.96.0.6", 80, 8080, 30081)
	s.Spec.Type = v1.ServiceTypeLoadBalancer
	s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	s.Spec.LoadBalancerSourceRanges = []string{"172.30.0.11/32"}
	s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "172.30.0.200"}}
	// ep-a (10.244.1.2) serves, but the slice says it runs on node-2.
	sps := BuildServicePorts("node-1", []*v1Service{s}, []*v1Slice{slice("default", "local", "", 8080, ep("10.244.1.2", "node-2", true, false))})
	cfg := Config{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}, NodeIPs: []netip.Addr{netip.MustParseAddr("172.30.0.11")}}
	err := netns.Do(path, func() error {
		// The LoadBalancer IP is a local address of this node.
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: prefixNet(netip.MustParsePrefix("172.30.0.200/32"))}); err != nil {
			return err
		}
		nft, err := NewNFT()
		if err != nil {
			return err
		}
		_, err = NewSyncer(nft, nil).Sync(ctx, cfg, sps)
		return err
	})
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	for _, target := range []string{"172.30.0.11:30081", "172.30.0.200:80"} {
		out, err := exec.Command("nsenter", "--net="+path, "curl", "-sS", "--max-time", "2", "http://"+target+"/").CombinedOutput()
		if err != nil {
			t.Errorf("the node to %s: %v %s", target, err, out)
			continue
		}
		if pod, _, ok := testserver.ParseReply(string(out)); !ok || pod != "ep-a" {
			t.Errorf("the node to %s: reply %q, want ep-a's", target, out)
		}
	}
}
