package proxy

// Behaviour tests: the rendered table, walked by the tracer, for the first
// packet of a connection. Fixture conventions as in helpers_test.go: this
// node is node-1 at 172.30.0.11; pods 10.244.x; outside 203.0.113.x.

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

type flow struct {
	name string
	p    packet
	want []string
}

func runFlows(t *testing.T, svcs []*v1.Service, sls []*v1Slice, flows []flow) {
	t.Helper()
	runFlowsOn(t, testCfg, svcs, sls, flows)
}

// runFlowsOn is runFlows on a node configured by cfg, whose NodeIPs are
// its own addresses.
func runFlowsOn(t *testing.T, cfg Config, svcs []*v1.Service, sls []*v1Slice, flows []flow) {
	t.Helper()
	fake := knftables.NewFake(knftables.InetFamily, Table)
	if _, err := NewSyncer(fake, nil).Sync(context.Background(), cfg, BuildServicePorts("node-1", svcs, sls)); err != nil {
		t.Fatal(err)
	}
	var node []string
	for _, a := range cfg.NodeIPs {
		node = append(node, a.String())
	}
	tr := newTracer(t, fake, node...)
	for _, f := range flows {
		t.Run(f.name, func(t *testing.T) {
			tr.t = t
			got := tr.trace(f.p)
			want := slices.Clone(f.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("outcomes %v, want %v", got, want)
			}
		})
	}
}

func pkt(src, dst, proto string, port int, fromNode bool) packet {
	return packet{src: netip.MustParseAddr(src), dst: netip.MustParseAddr(dst), proto: proto, dport: port, fromNode: fromNode}
}

func TestTracedBehaviour(t *testing.T) {
	web := svc("default", "web", "10.96.0.5", 80, 8080, 30080)
	web.Spec.ExternalIPs = []string{"192.0.2.50"}
	webSlice := slice("default", "web", "", 8080, ep("10.244.1.2", "node-1", true, false), ep("10.244.2.2", "node-2", true, false))

	local := svc("default", "local", "10.96.0.6", 80, 8080, 30081)
	local.Spec.Type = v1.ServiceTypeLoadBalancer
	local.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	local.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "172.30.0.200"}}
	local.Spec.LoadBalancerSourceRanges = []string{"203.0.113.0/25"}
	localSlice := slice("default", "local", "", 8080, ep("10.244.1.7", "node-1", true, false), ep("10.244.2.7", "node-2", true, false))

	remoteOnly := svc("default", "remote-only", "10.96.0.8", 80, 8080, 30082)
	remoteOnly.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	remoteSlice := slice("default", "remote-only", "", 8080, ep("10.244.2.9", "node-2", true, false))

	itp := svc("default", "itp", "10.96.0.9", 80, 8080, 0)
	itp.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
	itpSlice := slice("default", "itp", "", 8080, ep("10.244.2.3", "node-2", true, false))

	empty := svc("default", "empty", "10.96.0.10", 80, 8080, 30083)
	proxyProxy := svc("default", "other-proxy", "10.96.0.11", 80, 8080, 0)
	proxyProxy.Labels = map[string]string{ProxyNameLabel: "someone-else"}

	svcs := []*v1.Service{web, local, remoteOnly, itp, empty, proxyProxy}
	sls := []*v1Slice{webSlice, localSlice, remoteSlice, itpSlice, slice("default", "other-proxy", "", 8080, ep("10.244.1.2", "node-1", true, false))}
	both := []string{"accept dnat 10.244.1.2:8080", "accept dnat 10.244.2.2:8080"}
	bothMasq := []string{"accept dnat 10.244.1.2:8080 masquerade", "accept dnat 10.244.2.2:8080 masquerade"}
	runFlows(t, svcs, sls, []flow{
		{"pod to ClusterIP reaches either endpoint and keeps its source", pkt("10.244.1.5", "10.96.0.5", "tcp", 80, false), both},
		{"node to ClusterIP is masqueraded", pkt("172.30.0.11", "10.96.0.5", "tcp", 80, true), bothMasq},
		{"ClusterIP on another port is not translated", pkt("10.244.1.5", "10.96.0.5", "tcp", 81, false), []string{"accept"}},
		{"UDP to a TCP Service is not translated", pkt("10.244.1.5", "10.96.0.5", "udp", 80, false), []string{"accept"}},
		{"outside to NodePort (externalTrafficPolicy Cluster) is masqueraded", pkt("203.0.113.9", "172.30.0.11", "tcp", 30080, false), bothMasq},
		{"outside to an externalIP is masqueraded", pkt("203.0.113.9", "192.0.2.50", "tcp", 80, false), bothMasq},
		{"a pod reaching itself through its Service is masqueraded (hairpin)", pkt("10.244.1.2", "10.96.0.5", "tcp", 80, false),
			[]string{"accept dnat 10.244.1.2:8080 masquerade", "accept dnat 10.244.2.2:8080"}},
		{"externalTrafficPolicy Local: only the local endpoint, client IP kept", pkt("203.0.113.9", "172.30.0.11", "tcp", 30081, false), []string{"accept dnat 10.244.1.7:8080"}},
		{"LoadBalancer IP from an allowed source range", pkt("203.0.113.9", "172.30.0.200", "tcp", 80, false), []string{"accept dnat 10.244.1.7:8080"}},
		{"LoadBalancer IP from outside the source ranges is dropped", pkt("203.0.113.200", "172.30.0.200", "tcp", 80, false), []string{"drop"}},
		{"ClusterIP of an eTP Local Service still reaches every endpoint", pkt("10.244.1.5", "10.96.0.6", "tcp", 80, false), []string{"accept dnat 10.244.1.7:8080", "accept dnat 10.244.2.7:8080"}},
		{"externalTrafficPolicy Local without a local endpoint drops", pkt("203.0.113.9", "172.30.0.11", "tcp", 30082, false), []string{"drop"}},
		{"internalTrafficPolicy Local without a local endpoint drops", pkt("10.244.1.5", "10.96.0.9", "tcp", 80, false), []string{"drop"}},
		{"no endpoint at all: TCP is reset", pkt("10.244.1.5", "10.96.0.10", "tcp", 80, false), []string{"reject"}},
		{"no endpoint at all: NodePort is reset too", pkt("203.0.113.9", "172.30.0.11", "tcp", 30083, false), []string{"reject"}},
		{"a Service of another proxy is left alone", pkt("10.244.1.5", "10.96.0.11", "tcp", 80, false), []string{"accept"}},
	})
}

func TestTracedSessionAffinity(t *testing.T) {
	s := svc("default", "sticky", "10.96.0.7", 80, 8080, 0)
	s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
	fake := knftables.NewFake(knftables.InetFamily, Table)
	sps := BuildServicePorts("node-1", []*v1.Service{s}, []*v1Slice{slice("default", "sticky", "", 8080,
		ep("10.244.1.2", "node-1", true, false), ep("10.244.2.2", "node-2", true, false))})
	if _, err := NewSyncer(fake, nil).Sync(context.Background(), testCfg, sps); err != nil {
		t.Fatal(err)
	}
	tr := newTracer(t, fake, "172.30.0.11")
	p := pkt("10.244.1.5", "10.96.0.7", "tcp", 80, false)
	first := tr.trace(p)
	if len(first) != 2 {
		t.Fatalf("a new client: %v, want either endpoint", first)
	}
	// The tracer followed both branches, so both endpoints now remember
	// the client; pin it to one as the kernel would after one connection.
	for set := range tr.affinity {
		delete(tr.affinity, set)
		break
	}
	again := tr.trace(p)
	if len(again) != 1 {
		t.Errorf("a known client: %v, want exactly its endpoint", again)
	}
	if other := tr.trace(pkt("10.244.1.6", "10.96.0.7", "tcp", 80, false)); len(other) != 2 {
		t.Errorf("another client: %v, want either endpoint", other)
	}
}

// SCTP is rendered like TCP and UDP (this kernel has no SCTP, so only the
// rendering is tested).
func TestTracedSCTP(t *testing.T) {
	s := svc("default", "sig", "10.96.0.20", 3868, 3868, 0)
	s.Spec.Ports[0].Protocol = v1.ProtocolSCTP
	sl := slice("default", "sig", "", 3868, ep("10.244.1.2", "node-1", true, false))
	sl.Ports[0].Protocol = ptr.To(v1.ProtocolSCTP)
	runFlows(t, []*v1.Service{s}, []*v1Slice{sl}, []flow{
		{"SCTP to the ClusterIP is translated", pkt("10.244.1.5", "10.96.0.20", "sctp", 3868, false), []string{"accept dnat 10.244.1.2:3868"}},
		{"TCP to the same port is not", pkt("10.244.1.5", "10.96.0.20", "tcp", 3868, false), []string{"accept"}},
	})
}

// testCfg6 is a dual-stack node-1 (see helpers_test.go).
var testCfg6 = Config{
	PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10:244::/56")},
	NodeIPs:  []netip.Addr{netip.MustParseAddr("172.30.0.11"), netip.MustParseAddr("fd00:172:30::11")},
}

// TestTracedIPv6NodePorts: a dual-stack node answers NodePorts on its IPv6
// address for Services with an IPv6 cluster IP, as on its IPv4 address.
func TestTracedIPv6NodePorts(t *testing.T) {
	web := dualStack(svc("default", "web", "10.96.0.5", 80, 8080, 30080), "fd00:10:96::5")
	webSlices := []*v1Slice{
		slice("default", "web", "", 8080, ep("10.244.1.2", "node-1", true, false), ep("10.244.2.2", "node-2", true, false)),
		slice6("default", "web", "", 8080, ep("fd00:10:244:1::2", "node-1", true, false), ep("fd00:10:244:2::2", "node-2", true, false)),
	}
	local := dualStack(svc("default", "local", "10.96.0.6", 80, 8080, 30081), "fd00:10:96::6")
	local.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	local.Spec.HealthCheckNodePort = 32001
	localSlices := []*v1Slice{slice6("default", "local", "", 8080,
		ep("fd00:10:244:1::7", "node-1", true, false), ep("fd00:10:244:2::7", "node-2", true, false))}

	remoteOnly := dualStack(svc("default", "remote-only", "10.96.0.8", 80, 8080, 30082), "fd00:10:96::8")
	remoteOnly.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	remoteSlices := []*v1Slice{slice6("default", "remote-only", "", 8080, ep("fd00:10:244:2::9", "node-2", true, false))}

	empty := dualStack(svc("default", "empty", "10.96.0.10", 80, 8080, 30083), "fd00:10:96::a")
	emptyUDP := dualStack(svc("default", "empty-udp", "10.96.0.12", 53, 53, 30084), "fd00:10:96::c")
	emptyUDP.Spec.Ports[0].Protocol = v1.ProtocolUDP
	v4Only := svc("default", "v4-only", "10.96.0.13", 80, 8080, 30085)
	v4OnlySlice := slice("default", "v4-only", "", 8080, ep("10.244.1.3", "node-1", true, false))
	v6Only := svc("default", "v6-only", "fd00:10:96::e", 80, 8080, 30086)
	v6OnlySlice := slice6("default", "v6-only", "", 8080, ep("fd00:10:244:1::e", "node-1", true, false))

	svcs := []*v1.Service{web, local, remoteOnly, empty, emptyUDP, v4Only, v6Only}
	sls := append(append(append(webSlices, localSlices...), remoteSlices...), v4OnlySlice, v6OnlySlice)
	node6 := "fd00:172:30::11"
	runFlowsOn(t, testCfg6, svcs, sls, []flow{
		{"outside to the IPv6 NodePort (externalTrafficPolicy Cluster) reaches either IPv6 endpoint, masqueraded",
			pkt("2001:db8::9", node6, "tcp", 30080, false),
			[]string{"accept dnat [fd00:10:244:1::2]:8080 masquerade", "accept dnat [fd00:10:244:2::2]:8080 masquerade"}},
		{"the same NodePort on the IPv4 address still reaches the IPv4 endpoints",
			pkt("203.0.113.9", "172.30.0.11", "tcp", 30080, false),
			[]string{"accept dnat 10.244.1.2:8080 masquerade", "accept dnat 10.244.2.2:8080 masquerade"}},
		{"the node itself to its IPv6 NodePort is masqueraded",
			pkt(node6, node6, "tcp", 30080, true),
			[]string{"accept dnat [fd00:10:244:1::2]:8080 masquerade", "accept dnat [fd00:10:244:2::2]:8080 masquerade"}},
		{"a pod to the IPv6 NodePort is masqueraded too (externalTrafficPolicy Cluster)",
			pkt("fd00:10:244:1::5", node6, "tcp", 30080, false),
			[]string{"accept dnat [fd00:10:244:1::2]:8080 masquerade", "accept dnat [fd00:10:244:2::2]:8080 masquerade"}},
		{"another node's IPv6 address is not this node's NodePort",
			pkt("2001:db8::9", "fd00:172:30::12", "tcp", 30080, false), []string{"accept"}},
		{"another port on the IPv6 address is not translated",
			pkt("2001:db8::9", node6, "tcp", 30099, false), []string{"accept"}},
		{"externalTrafficPolicy Local over IPv6: only the local endpoint, client address kept",
			pkt("2001:db8::9", node6, "tcp", 30081, false), []string{"accept dnat [fd00:10:244:1::7]:8080"}},
		{"externalTrafficPolicy Local over IPv6 without a local endpoint drops",
			pkt("2001:db8::9", node6, "tcp", 30082, false), []string{"drop"}},
		{"a Service without IPv4 endpoints rejects its NodePort on the IPv4 address",
			pkt("203.0.113.9", "172.30.0.11", "tcp", 30081, false), []string{"reject"}},
		{"no endpoint at all: the IPv6 NodePort is reset",
			pkt("2001:db8::9", node6, "tcp", 30083, false), []string{"reject"}},
		{"no endpoint at all: the IPv6 UDP NodePort is rejected",
			pkt("2001:db8::9", node6, "udp", 30084, false), []string{"reject"}},
		{"an IPv4-only Service has no NodePort on the IPv6 address",
			pkt("2001:db8::9", node6, "tcp", 30085, false), []string{"accept"}},
		{"an IPv6-only Service answers its NodePort on the IPv6 address",
			pkt("2001:db8::9", node6, "tcp", 30086, false), []string{"accept dnat [fd00:10:244:1::e]:8080 masquerade"}},
		{"an IPv6-only Service has no NodePort on the IPv4 address",
			pkt("203.0.113.9", "172.30.0.11", "tcp", 30086, false), []string{"accept"}},
	})
	if got := HealthFrom(BuildServicePorts("node-1", svcs, sls))[32001]; got.LocalEndpoints != 1 {
		t.Errorf("healthCheckNodePort of an IPv6 eTP Local Service reports %d local endpoints, want 1", got.LocalEndpoints)
	}
}
