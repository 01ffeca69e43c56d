package proxy

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	v1 "k8s.io/api/core/v1"

	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/testserver"
)

func udpSP(key string, vip string, nodePort int32, eps ...string) *ServicePort {
	sp := &ServicePort{Namespace: "default", Name: key, Protocol: v1.ProtocolUDP, Port: 53, NodePort: nodePort,
		ClusterIPs: []netip.Addr{netip.MustParseAddr(vip)}}
	for _, e := range eps {
		sp.Endpoints = append(sp.Endpoints, Endpoint{IP: netip.MustParseAddr(e), Port: 5353})
	}
	return sp
}

func TestStaleUDP(t *testing.T) {
	dns := func(eps ...string) *ServicePort { return udpSP("dns", "10.96.0.10", 0, eps...) }
	for _, tc := range []struct {
		name      string
		prev, cur []*ServicePort
		want      []string
	}{
		{"the first sync after a start deletes nothing", nil, []*ServicePort{dns("10.244.1.2")}, nil},
		{"an unchanged Service deletes nothing", []*ServicePort{dns("10.244.1.2")}, []*ServicePort{dns("10.244.1.2")}, nil},
		{"a removed endpoint's entries go", []*ServicePort{dns("10.244.1.2", "10.244.1.3")}, []*ServicePort{dns("10.244.1.3")},
			[]string{"udp to 10.96.0.10:53 answered by 10.244.1.2"}},
		{"a replaced endpoint's entries go", []*ServicePort{dns("10.244.1.2")}, []*ServicePort{dns("10.244.2.9")},
			[]string{"udp to 10.96.0.10:53 answered by 10.244.1.2"}},
		{"a deleted Service's entries go", []*ServicePort{dns("10.244.1.2")}, []*ServicePort{},
			[]string{"udp to 10.96.0.10:53 answered by 10.244.1.2"}},
		{"a Service's first endpoint clears the untranslated entries", []*ServicePort{dns()}, []*ServicePort{dns("10.244.1.2")},
			[]string{"udp to 10.96.0.10:53 answered by any"}},
		{"a NodePort's entries go on every node address", []*ServicePort{udpSP("np", "10.96.0.11", 30053, "10.244.1.2")}, []*ServicePort{udpSP("np", "10.96.0.11", 30053)},
			[]string{"udp to 10.96.0.11:53 answered by 10.244.1.2", "udp to *:30053 answered by 10.244.1.2"}},
		{"TCP Services never need it", []*ServicePort{{Namespace: "d", Name: "web", Protocol: v1.ProtocolTCP, Port: 80, Endpoints: []Endpoint{{IP: netip.MustParseAddr("10.244.1.2"), Port: 80}}}}, []*ServicePort{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, d := range StaleUDP(tc.prev, tc.cur) {
				got = append(got, d.String())
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("StaleUDP = %v, want %v", got, want)
			}
		})
	}
}

// TestKernelUDPClientFollowsTheNewEndpoint: a client that keeps its source
// port (as a DNS resolver does) reaches the new endpoint right after the
// old one is removed from the Service — and, without the cleanup, would not.
func TestKernelUDPClientFollowsTheNewEndpoint(t *testing.T) {
	for _, clean := range []bool{true, false} {
		name := "with conntrack cleanup the client moves to the new endpoint"
		if !clean {
			name = "without conntrack cleanup the client sticks to the old endpoint (the test can fail)"
		}
		t.Run(name, func(t *testing.T) {
			path := kernelNode(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			serveEndpoints(ctx, path, testserver.Config{UDPPorts: []int{5353}}) // ep-a is the old endpoint, ep-b the new
			var ct Conntrack
			if clean {
				ct = KernelConntrack{}
			}
			var syncer *Syncer
			sync := func(eps ...string) {
				t.Helper()
				err := netns.Do(path, func() error {
					if syncer == nil {
						nft, err := NewNFT()
						if err != nil {
							return err
						}
						syncer = NewSyncer(nft, ct)
					}
					_, err := syncer.Sync(ctx, Config{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}},
						[]*ServicePort{udpSP("dns", "10.96.0.10", 0, eps...)})
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			sync("10.244.1.2")
			var conn net.PacketConn
			if err := netns.Do(path, func() (err error) {
				conn, err = net.ListenPacket("udp", "172.30.0.11:0")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ask := func() string {
				t.Helper()
				vip := &net.UDPAddr{IP: net.ParseIP("10.96.0.10"), Port: 53}
				buf := make([]byte, 512)
				for range 3 {
					_, _ = conn.WriteTo([]byte("q"), vip)
					_ = conn.SetReadDeadline(time.Now().Add(time.Second))
					n, _, err := conn.ReadFrom(buf)
					if err == nil {
						pod, _, _ := testserver.ParseReply(string(buf[:n]))
						return pod
					}
				}
				return ""
			}
			if got := ask(); got != "ep-a" {
				t.Fatalf("first answer from %q, want ep-a", got)
			}
			sync("10.244.1.3")
			got := ask()
			if clean && got != "ep-b" {
				t.Errorf("after the endpoint changed, the same client socket reached %q, want ep-b", got)
			}
			if !clean && got != "ep-a" {
				t.Errorf("without cleanup the client reached %q; the fixture no longer shows the problem", got)
			}
		})
	}
}

// kernelNode makes a namespace standing in for node-1 (172.30.0.11) with
// endpoint addresses 10.244.1.2 and 10.244.1.3 on lo and a default route.
func kernelNode(t *testing.T) string {
	t.Helper()
	needKernel(t)
	name := netns.UniqueName("pnt-proxy-")
	path, err := netns.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Delete(name) })
	err = netns.Do(path, func() error {
		lo, _ := netlink.LinkByName("lo")
		for _, a := range []string{"10.244.1.2/32", "10.244.1.3/32", "172.30.0.11/32"} {
			if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: prefixNet(netip.MustParsePrefix(a))}); err != nil {
				return err
			}
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: lo.Attrs().Index, Dst: prefixNet(netip.MustParsePrefix("0.0.0.0/0"))})
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}
