package proxy

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/testserver"
)

// TestRenderIPv6NodePorts checks the IPv6 NodePort objects as text: the
// node's IPv6 address in its set, the NodePort and no-endpoint elements,
// and the fixed rules that consult them only for the node's addresses.
func TestRenderIPv6NodePorts(t *testing.T) {
	web := dualStack(svc("default", "web", "10.96.0.5", 80, 8080, 30080), "fd00:10:96::5")
	empty := dualStack(svc("default", "empty", "10.96.0.6", 80, 8080, 30083), "fd00:10:96::6")
	v4Only := svc("default", "v4-only", "10.96.0.7", 80, 8080, 30085)
	sls := []*v1Slice{
		slice("default", "web", "", 8080, ep("10.244.1.2", "node-1", true, false)),
		slice6("default", "web", "", 8080, ep("fd00:10:244:1::2", "node-1", true, false)),
		slice("default", "v4-only", "", 8080, ep("10.244.1.3", "node-1", true, false)),
	}
	dump := renderFake(t, testCfg6, BuildServicePorts("node-1", []*v1Service{web, empty, v4Only}, sls)).Dump()
	ext6, svc6 := chainName("ext6", "default/web/tcp/80"), chainName("svc6", "default/web/tcp/80")
	for _, want := range []string{
		"add set inet podnet-proxy nodeport-ips-v6 { type ipv6_addr ; }",
		"add map inet podnet-proxy service-nodeports-v6 { type inet_proto . inet_service : verdict ; }",
		"add map inet podnet-proxy no-endpoint-nodeports-v6 { type inet_proto . inet_service : verdict ; }",
		"add rule inet podnet-proxy services ip6 daddr @nodeport-ips-v6 meta l4proto . th dport vmap @service-nodeports-v6",
		"add rule inet podnet-proxy endpoints-check ip6 daddr @nodeport-ips-v6 meta l4proto . th dport vmap @no-endpoint-nodeports-v6",
		"add element inet podnet-proxy nodeport-ips-v6 { fd00:172:30::11 }",
		"add element inet podnet-proxy nodeport-ips-v4 { 172.30.0.11 }",
		"add element inet podnet-proxy service-nodeports-v6 { tcp . 30080 : goto " + ext6 + " }",
		"add element inet podnet-proxy service-nodeports-v4 { tcp . 30080 : goto " + chainName("ext4", "default/web/tcp/80") + " }",
		"add rule inet podnet-proxy " + ext6 + " jump mark-for-masquerade",
		"add rule inet podnet-proxy " + ext6 + " goto " + svc6,
		"add element inet podnet-proxy no-endpoint-nodeports-v6 { tcp . 30083 : goto reject-no-endpoints }",
		"add element inet podnet-proxy no-endpoint-nodeports-v4 { tcp . 30083 : goto reject-no-endpoints }",
	} {
		if !strings.Contains(dump, want+"\n") {
			t.Errorf("table lacks:\n  %s\n\ntable:\n%s", want, dump)
		}
	}
	// Service addresses come before NodePorts in both chains: an
	// externalIP that is also a node address goes to its Service.
	for _, chain := range []string{chainServices, chainEndpointsCheck} {
		var shapes []string
		for _, line := range strings.Split(dump, "\n") {
			if r, ok := strings.CutPrefix(line, "add rule inet podnet-proxy "+chain+" "); ok {
				shapes = append(shapes, strings.Fields(r)[0]+" "+strings.Fields(r)[2])
			}
		}
		want := []string{"ip .", "ip6 .", "ip @nodeport-ips-v4", "ip6 @nodeport-ips-v6"}
		if !slices.Equal(shapes, want) {
			t.Errorf("chain %s: rules %q, want %q", chain, shapes, want)
		}
	}
	// An IPv4-only Service has no IPv6 NodePort.
	if strings.Contains(dump, "service-nodeports-v6 { tcp . 30085") || strings.Contains(dump, "no-endpoint-nodeports-v6 { tcp . 30085") {
		t.Errorf("an IPv4-only Service got an IPv6 NodePort:\n%s", dump)
	}
}

func TestParseNodePortAddresses(t *testing.T) {
	for _, tc := range []struct {
		name        string
		values      []string
		wantCIDRs   string // as fmt prints them
		wantPrimary bool
		wantErr     string // a part of the error; "" for none
	}{
		{"no value is the default", nil, "[]", false, ""},
		{"CIDRs of both families are kept, masked", []string{"172.30.0.0/16", " fd00:172:30::1/64"}, "[172.30.0.0/16 fd00:172:30::/64]", false, ""},
		{"primary asks for the InternalIPs besides the CIDRs", []string{"primary", "192.168.5.0/24"}, "[192.168.5.0/24]", true, ""},
		{"all is every address of both families", []string{"all"}, "[0.0.0.0/0 ::/0]", false, ""},
		{"localhost is refused", []string{"localhost"}, "", false, "NodePorts on loopback addresses are not supported"},
		{"a loopback CIDR is refused", []string{"127.0.0.0/8"}, "", false, "NodePorts on loopback addresses are not supported"},
		{"the IPv6 loopback is refused", []string{"::1/128"}, "", false, "NodePorts on loopback addresses are not supported"},
		{"an IPv4-mapped CIDR is refused", []string{"::ffff:10.0.0.0/104"}, "", false, "write IPv4 CIDRs as IPv4"},
		{"a word that is no CIDR is refused", []string{"eth0"}, "", false, `"eth0" is neither a CIDR nor one of primary, all`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := ParseNodePortAddresses(tc.values)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("ParseNodePortAddresses(%q) = %v, %v; want an error containing %q", tc.values, n, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseNodePortAddresses(%q): %v", tc.values, err)
			}
			if got := fmt.Sprint(n.CIDRs); got != tc.wantCIDRs || n.Primary != tc.wantPrimary {
				t.Errorf("ParseNodePortAddresses(%q) = CIDRs %s, primary %v; want %s, %v", tc.values, got, n.Primary, tc.wantCIDRs, tc.wantPrimary)
			}
		})
	}
}

func TestNodePortAddressesSelect(t *testing.T) {
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	prefixes := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	internal := addrs("172.30.0.11", "fd00:172:30::11")
	// The node's interfaces: loopback, its InternalIPs, a second network,
	// a link-local IPv6 address, a pod gateway.
	local := addrs("127.0.0.1", "::1", "172.30.0.11", "fd00:172:30::11", "192.168.5.11", "fe80::1", "10.244.1.1", "fd00:10:244:1::1")
	for _, tc := range []struct {
		name string
		n    NodePortAddresses
		want []netip.Addr
	}{
		{"the default is the InternalIPs of both families", NodePortAddresses{}, internal},
		{"primary alone is the default", NodePortAddresses{Primary: true}, internal},
		{"a CIDR selects the local addresses in it, and only those", NodePortAddresses{CIDRs: prefixes("192.168.0.0/16")}, addrs("192.168.5.11")},
		{"a family without a CIDR gets no address", NodePortAddresses{CIDRs: prefixes("172.30.0.0/16")}, addrs("172.30.0.11")},
		{"CIDRs of both families", NodePortAddresses{CIDRs: prefixes("172.30.0.0/16", "fd00:172:30::/64")}, internal},
		{"primary and a CIDR add up", NodePortAddresses{Primary: true, CIDRs: prefixes("192.168.5.0/24")}, addrs("172.30.0.11", "192.168.5.11", "fd00:172:30::11")},
		{"all is every non-loopback local address", NodePortAddresses{CIDRs: prefixes("0.0.0.0/0", "::/0")},
			addrs("10.244.1.1", "172.30.0.11", "192.168.5.11", "fd00:10:244:1::1", "fd00:172:30::11", "fe80::1")},
		{"overlapping CIDRs list an address once", NodePortAddresses{CIDRs: prefixes("172.30.0.0/16", "172.30.0.0/24")}, addrs("172.30.0.11")},
		{"a CIDR no local address is in selects nothing", NodePortAddresses{CIDRs: prefixes("198.51.100.0/24")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.n.Select(internal, local); !slices.Equal(got, tc.want) {
				t.Errorf("Select = %v, want %v", got, tc.want)
			}
		})
	}
	if got := (NodePortAddresses{}).Select(addrs("::ffff:172.30.0.11"), nil); !slices.Equal(got, addrs("172.30.0.11")) {
		t.Errorf("an IPv4-mapped InternalIP selects %v, want it as IPv4", got)
	}
	if (NodePortAddresses{}).NeedsLocal() || (NodePortAddresses{Primary: true}).NeedsLocal() || !(NodePortAddresses{CIDRs: prefixes("::/0")}).NeedsLocal() {
		t.Error("NeedsLocal must be true exactly when CIDRs are given")
	}
}

// TestKernelIPv6NodePort: a dual-stack node answers a NodePort on its IPv6
// address, balanced over the IPv6 endpoints, and refuses at once the
// NodePort of a Service without endpoints. One namespace stands in for the
// node; endpoints are IPv6 addresses on its lo served by the test server;
// the client is the node itself.
func TestKernelIPv6NodePort(t *testing.T) {
	path := kernelNode(t)
	err := netns.Do(path, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		for _, a := range []string{"fd00:10:244:1::2/128", "fd00:10:244:1::3/128", "fd00:172:30::11/128"} {
			if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: prefixNet(netip.MustParsePrefix(a)), Flags: unix.IFA_F_NODAD}); err != nil {
				return fmt.Errorf("address %s: %w", a, err)
			}
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: lo.Attrs().Index, Dst: prefixNet(netip.MustParsePrefix("::/0"))})
	})
	if err != nil {
		t.Fatalf("IPv6 on the node's lo: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, ep := range []struct{ name, host string }{{"ep-a", "fd00:10:244:1::2"}, {"ep-b", "fd00:10:244:1::3"}} {
		c := testserver.Config{Pod: ep.name, Host: ep.host, TCPPorts: []int{8080}}
		go func() { _ = netns.Do(path, func() error { return testserver.Serve(ctx, c) }) }()
	}
	time.Sleep(100 * time.Millisecond)
	web := dualStack(svc("default", "web", "10.96.0.5", 80, 8080, 30080), "fd00:10:96::5")
	empty := dualStack(svc("default", "empty", "10.96.0.6", 80, 8080, 30083), "fd00:10:96::6")
	sps := BuildServicePorts("node-1", []*v1Service{web, empty}, []*v1Slice{slice6("default", "web", "", 8080,
		ep("fd00:10:244:1::2", "node-1", true, false), ep("fd00:10:244:1::3", "node-1", true, false))})
	if err := netns.Do(path, func() error {
		nft, err := NewNFT()
		if err != nil {
			return err
		}
		_, err = NewSyncer(nft, nil).Sync(ctx, testCfg6, sps)
		return err
	}); err != nil {
		t.Fatalf("sync: %v", err)
	}
	seen := map[string]bool{}
	for i := 0; i < 20 && len(seen) < 2; i++ {
		out, err := exec.Command("nsenter", "--net="+path, "curl", "-sg", "--max-time", "2", "http://[fd00:172:30::11]:30080/").CombinedOutput()
		if err != nil {
			t.Fatalf("curl the IPv6 NodePort: %v %s", err, out)
		}
		pod, _, ok := testserver.ParseReply(string(out))
		if !ok {
			t.Fatalf("reply %q", out)
		}
		seen[pod] = true
	}
	if len(seen) != 2 {
		t.Errorf("answers came from %v, want both endpoints", seen)
	}
	start := time.Now()
	out, err := exec.Command("nsenter", "--net="+path, "curl", "-sSg", "--max-time", "5", "http://[fd00:172:30::11]:30083/").CombinedOutput()
	if err == nil || time.Since(start) > 3*time.Second || !(strings.Contains(string(out), "refused") || strings.Contains(string(out), "Failed to connect")) {
		t.Errorf("IPv6 NodePort without endpoints: err=%v after %s: %s; want an immediate refusal", err, time.Since(start), out)
	}
}
