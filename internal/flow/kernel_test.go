package flow

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/knftables"

	"github.com/podnet/podnet/internal/flow/logrule"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/policy"
	"github.com/podnet/podnet/internal/proxy"
)

// kernelNode is a fresh namespace standing in for node-1: the pod
// 10.244.1.20 and the node address 10.244.1.99 are both on its lo, so the
// pod's packets to the node take the input hook, where the policy table
// judges egress-isolated pods.
func kernelNode(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: creating network namespaces needs root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("kernel test: the nft binary is missing (Debian package nftables)")
	}
	name := netns.UniqueName("pnt-flow-")
	path, err := netns.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Delete(name) })
	err = netns.Do(path, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		for _, a := range []string{"10.244.1.20/32", "10.244.1.99/32"} {
			if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: netlink.NewIPNet(netip.MustParsePrefix(a).Addr().AsSlice())}); err != nil {
				return err
			}
		}
		// Service addresses are routed somewhere, as on a node.
		return netlink.RouteAdd(&netlink.Route{LinkIndex: lo.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}})
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// denyEgressWorld: pod shop/client on node-1, isolated for egress by
// shop/client-deny-egress, which allows nothing.
func denyEgressWorld() Objects {
	client := map[string]string{"app": "client"}
	return Objects{
		Pods:       []*v1.Pod{testPod("shop", "client", "node-1", "10.244.1.20", "", client)},
		Namespaces: []*v1.Namespace{testNamespace("shop")},
		Policies: []*networkingv1.NetworkPolicy{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "client-deny-egress"},
			Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: client},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}}}},
	}
}

// loadPolicy programs the policy table for o in the namespace.
func loadPolicy(t testing.TB, path string, o Objects) {
	t.Helper()
	var pods []*policy.Pod
	for _, p := range o.Pods {
		pods = append(pods, policy.PodFrom(p))
	}
	var nss []*policy.Namespace
	for _, ns := range o.Namespaces {
		nss = append(nss, policy.NamespaceFrom(ns))
	}
	c, _ := policy.Compile(o.Policies, pods, nss)
	err := netns.Do(path, func() error {
		nft, err := policy.NewNFT()
		if err != nil {
			return err
		}
		_, err = policy.NewSyncer(nft).Sync(context.Background(), policy.Render(c, "node-1"))
		return err
	})
	if err != nil {
		t.Fatalf("policy table: %v", err)
	}
}

// listen binds the NFLOG group in the namespace and collects the logged
// packets until the test ends.
func listen(t *testing.T, path string) (packets func() []LoggedPacket, overflows func() int) {
	t.Helper()
	var ctErr error
	return listenCT(t, path, &ctErr)
}

// listenCT is listen that also says why the kernel attaches no conntrack
// entries (nil when it does).
func listenCT(t *testing.T, path string, ctErr *error) (packets func() []LoggedPacket, overflows func() int) {
	t.Helper()
	var nf *NFLOG
	if err := netns.Do(path, func() (err error) { nf, err = OpenNFLOG(); return err }); err != nil {
		t.Fatal(err)
	}
	*ctErr = nf.ConntrackErr
	var mu sync.Mutex
	var got []LoggedPacket
	lost := 0
	done := make(chan error, 1)
	go func() {
		done <- nf.Read(func(p LoggedPacket) { mu.Lock(); got = append(got, p); mu.Unlock() },
			func() { mu.Lock(); lost++; mu.Unlock() })
	}()
	t.Cleanup(func() {
		_ = nf.Close()
		if err := <-done; err != nil {
			t.Errorf("nflog read: %v", err)
		}
	})
	return func() []LoggedPacket {
			mu.Lock()
			defer mu.Unlock()
			return append([]LoggedPacket(nil), got...)
		}, func() int {
			mu.Lock()
			defer mu.Unlock()
			return lost
		}
}

// TestKernelPolicyDropBecomesARecordNamingThePolicy: a TCP SYN from an
// egress-isolated pod, dropped by the real policy table, reaches the
// collector through NFLOG within a second and becomes a record naming the
// isolating policy.
func TestKernelPolicyDropBecomesARecordNamingThePolicy(t *testing.T) {
	path := kernelNode(t)
	o := denyEgressWorld()
	loadPolicy(t, path, o)
	packets, _ := listen(t, path)
	start := time.Now()
	_ = netns.Do(path, func() error {
		d := net.Dialer{Timeout: 300 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP("10.244.1.20")}}
		c, err := d.Dial("tcp", "10.244.1.99:8080")
		if err == nil {
			c.Close()
			t.Error("the connection was not dropped")
		}
		return nil
	})
	var ps []LoggedPacket
	for time.Since(start) < 2*time.Second {
		if ps = packets(); len(ps) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(ps) == 0 {
		t.Fatal("no packet was logged")
	}
	if d := ps[0].Time.Sub(start); d > time.Second {
		t.Errorf("the drop was logged after %s", d)
	}
	r, err := FromPacket("node-1", NewView(o), ps[0])
	if err != nil {
		t.Fatal(err)
	}
	if r.Verdict != Dropped || r.Direction != "egress" || r.Source.Pod != "client" || r.Destination.Port != 8080 ||
		r.PolicyText() != "egress default deny (shop/client-deny-egress)" {
		t.Errorf("record %+v, policy %q", r, r.PolicyText())
	}
}

// TestKernelFloodIsRateLimitedAndTheExcessCounted: 2,000 denied UDP
// datagrams at once: the kernel logs at most the burst and the rate, and
// every packet it did not log is in the table's excess counter — logged
// plus counted is everything sent.
func TestKernelFloodIsRateLimitedAndTheExcessCounted(t *testing.T) {
	path := kernelNode(t)
	loadPolicy(t, path, denyEgressWorld())
	packets, overflows := listen(t, path)
	const sent = 2000
	start := time.Now()
	err := netns.Do(path, func() error {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP("10.244.1.20")}, &net.UDPAddr{IP: net.ParseIP("10.244.1.99"), Port: 9})
		if err != nil {
			return err
		}
		defer c.Close()
		for i := 0; i < sent; i++ {
			if _, err := c.Write([]byte("x")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	time.Sleep(300 * time.Millisecond) // the last logged packets arrive
	logged := len(packets())
	var excess uint64
	err = netns.Do(path, func() error {
		nft, err := knftables.New(knftables.InetFamily, policy.Table)
		if err != nil {
			return err
		}
		cs, err := nft.ListCounters(context.Background())
		for _, c := range cs {
			if c.Name == logrule.ExcessCounter && c.Packets != nil {
				excess = *c.Packets
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %d in %s: %d logged, %d counted as excess, %d socket overflows", sent, elapsed, logged, excess, overflows())
	if max := logrule.Burst + int(logrule.Rate*(elapsed.Seconds()+1)); logged > max {
		t.Errorf("%d packets logged, the limit allows %d", logged, max)
	}
	if overflows() == 0 && uint64(logged)+excess != sent {
		t.Errorf("logged %d + excess %d != sent %d: losses not counted", logged, excess, sent)
	}
	if excess == 0 {
		t.Error("nothing was counted as excess")
	}
}

// TestKernelNoEndpointsRejectBecomesARecordNamingTheService: the node
// connects to a Service without endpoints; the proxy table rejects it at
// once, and the logged packet becomes a record naming the Service.
func TestKernelNoEndpointsRejectBecomesARecordNamingTheService(t *testing.T) {
	path := kernelNode(t)
	o := Objects{Services: []*v1.Service{testService("shop", "empty", "10.96.0.30", 80, 0)}}
	cfg := proxy.Config{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}, NodeIPs: []netip.Addr{netip.MustParseAddr("10.244.1.99")}}
	err := netns.Do(path, func() error {
		nft, err := proxy.NewNFT()
		if err != nil {
			return err
		}
		_, err = proxy.NewSyncer(nft, proxy.KernelConntrack{}).Sync(context.Background(), cfg, proxy.BuildServicePorts("node-1", o.Services, nil))
		return err
	})
	if err != nil {
		t.Fatalf("proxy table: %v", err)
	}
	packets, _ := listen(t, path)
	start := time.Now()
	_ = netns.Do(path, func() error {
		c, err := net.DialTimeout("tcp", "10.96.0.30:80", 2*time.Second)
		if err == nil {
			c.Close()
			t.Error("the connection to a Service without endpoints was accepted")
		} else if time.Since(start) > time.Second {
			t.Errorf("refused only after %s: %v", time.Since(start), err)
		}
		return nil
	})
	var ps []LoggedPacket
	for time.Since(start) < 2*time.Second && len(ps) == 0 {
		time.Sleep(10 * time.Millisecond)
		ps = packets()
	}
	if len(ps) == 0 {
		out, _ := exec.Command("nsenter", "--net="+path, "nft", "list", "table", "inet", proxy.Table).CombinedOutput()
		t.Fatalf("no packet was logged; the table:\n%s", out)
	}
	r, err := FromPacket("node-1", NewView(o), ps[0])
	if err != nil {
		t.Fatal(err)
	}
	if r.Reason != "no-endpoints" || r.Service == nil || r.Service.Namespace+"/"+r.Service.Name != "shop/empty" || r.Destination.Port != 80 {
		t.Errorf("record %+v, service %+v", r, r.Service)
	}
}

// TestKernelPolicyDropAfterDNATNamesTheService: the egress-isolated pod
// connects to a Service whose endpoint is the node address; the proxy
// translates it, the policy drops it, and the record names the Service
// from the conntrack entry the kernel attaches to the logged packet.
func TestKernelPolicyDropAfterDNATNamesTheService(t *testing.T) {
	path := kernelNode(t)
	o := denyEgressWorld()
	o.Services = []*v1.Service{testService("shop", "web", "10.96.0.40", 80, 0)}
	loadPolicy(t, path, o)
	ready := true
	eps := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "shop", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.99"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}, NodeName: new("node-1")}},
		Ports:       []discoveryv1.EndpointPort{{Port: new(int32(8080)), Protocol: new(v1.ProtocolTCP)}},
	}
	cfg := proxy.Config{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}, NodeIPs: []netip.Addr{netip.MustParseAddr("10.244.1.99")}}
	err := netns.Do(path, func() error {
		nft, err := proxy.NewNFT()
		if err != nil {
			return err
		}
		sps := proxy.BuildServicePorts("node-1", o.Services, []*discoveryv1.EndpointSlice{eps})
		_, err = proxy.NewSyncer(nft, proxy.KernelConntrack{}).Sync(context.Background(), cfg, sps)
		return err
	})
	if err != nil {
		t.Fatalf("proxy table: %v", err)
	}
	var ctErr error
	packets, _ := listenCT(t, path, &ctErr)
	if errors.Is(ctErr, unix.EOPNOTSUPP) {
		t.Skipf("kernel without CONFIG_NETFILTER_NETLINK_GLUE_CT: NFLOG cannot attach conntrack entries (%v); TestDecodeCTNamesTheServiceOfADroppedPacket covers the decoding", ctErr)
	}
	if ctErr != nil {
		t.Fatalf("NFLOG with conntrack entries: %v", ctErr)
	}
	start := time.Now()
	_ = netns.Do(path, func() error {
		d := net.Dialer{Timeout: 300 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP("10.244.1.20")}}
		if c, err := d.Dial("tcp", "10.96.0.40:80"); err == nil {
			c.Close()
			t.Error("the connection was not dropped")
		}
		return nil
	})
	var ps []LoggedPacket
	for time.Since(start) < 2*time.Second && len(ps) == 0 {
		time.Sleep(10 * time.Millisecond)
		ps = packets()
	}
	if len(ps) == 0 {
		t.Fatal("no packet was logged")
	}
	r, err := FromPacket("node-1", NewView(o), ps[0])
	if err != nil {
		t.Fatal(err)
	}
	if r.Reason != "policy-denied" || r.Destination.IP.String() != "10.244.1.99" || r.Destination.Port != 8080 ||
		r.Service == nil || r.Service.Name != "web" || r.Service.Port != 80 {
		t.Errorf("record %+v, service %+v: want the drop to 10.244.1.99:8080 with Service shop/web:80", r, r.Service)
	}
}
