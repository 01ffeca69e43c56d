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
		{"no endpoint at all: TCP is reset", pkt("10.244.1.5", "10.96.0.10", "tcp", 80, false), []string{"reject logged pn/svc/no-endpts"}},
		{"no endpoint at all: NodePort is reset too", pkt("203.0.113.9", "172.30.0.11", "tcp", 30083, false), []string{"reject logged pn/svc/no-endpts"}},
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
			pkt("203.0.113.9", "172.30.0.11", "tcp", 30081, false), []string{"reject logged pn/svc/no-endpts"}},
		{"no endpoint at all: the IPv6 NodePort is reset",
			pkt("2001:db8::9", node6, "tcp", 30083, false), []string{"reject logged pn/svc/no-endpts"}},
		{"no endpoint at all: the IPv6 UDP NodePort is rejected",
			pkt("2001:db8::9", node6, "udp", 30084, false), []string{"reject logged pn/svc/no-endpts"}},
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

// TestTracedTrafficPolicies: the traffic policies as kube-proxy's nftables
// mode applies them, for each kind of source. externalTrafficPolicy Local
// limits only traffic from outside the cluster to local endpoints: pods
// and the node itself reaching an external address or NodePort are cluster
// traffic, sent to every endpoint (the node masqueraded), so that they work
// on a node without a local endpoint.
func TestTracedTrafficPolicies(t *testing.T) {
	// remote: eTP Local, its one endpoint on node-2.
	remote := svc("default", "remote", "10.96.0.30", 80, 8080, 30090)
	remote.Spec.Type = v1.ServiceTypeLoadBalancer
	remote.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	remote.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "172.30.0.202"}}
	remoteSlice := slice("default", "remote", "", 8080, ep("10.244.2.9", "node-2", true, false))
	// split: eTP Local, an endpoint on each node.
	split := svc("default", "split", "10.96.0.31", 80, 8080, 30091)
	split.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	splitSlice := slice("default", "split", "", 8080, ep("10.244.1.7", "node-1", true, false), ep("10.244.2.7", "node-2", true, false))
	// bothLocal: iTP and eTP Local, its one endpoint on node-2.
	bothLocal := svc("default", "both-local", "10.96.0.32", 80, 8080, 30092)
	bothLocal.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	bothLocal.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
	bothSlice := slice("default", "both-local", "", 8080, ep("10.244.2.3", "node-2", true, false))
	// itpOnly: iTP Local, eTP Cluster, its one endpoint on node-2.
	itpOnly := svc("default", "itp-only", "10.96.0.33", 80, 8080, 30093)
	itpOnly.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
	itpSlice := slice("default", "itp-only", "", 8080, ep("10.244.2.4", "node-2", true, false))

	node := "172.30.0.11"
	toRemote := []string{"accept dnat 10.244.2.9:8080"}
	toRemoteMasq := []string{"accept dnat 10.244.2.9:8080 masquerade"}
	runFlows(t, []*v1.Service{remote, split, bothLocal, itpOnly}, []*v1Slice{remoteSlice, splitSlice, bothSlice, itpSlice}, []flow{
		{"pod to the LoadBalancer IP of an eTP Local Service without a local endpoint reaches the remote endpoint, source kept",
			pkt("10.244.1.5", "172.30.0.202", "tcp", 80, false), toRemote},
		{"pod to its NodePort on this node: the same", pkt("10.244.1.5", node, "tcp", 30090, false), toRemote},
		{"a pod of another node to the NodePort: the same", pkt("10.244.2.5", node, "tcp", 30090, false), toRemote},
		{"the node itself to the LoadBalancer IP reaches the remote endpoint, masqueraded",
			pkt(node, "172.30.0.202", "tcp", 80, true), toRemoteMasq},
		{"the node itself to its NodePort: the same", pkt(node, node, "tcp", 30090, true), toRemoteMasq},
		{"outside to the LoadBalancer IP without a local endpoint is dropped", pkt("203.0.113.9", "172.30.0.202", "tcp", 80, false), []string{"drop"}},
		{"outside to the NodePort without a local endpoint is dropped", pkt("203.0.113.9", node, "tcp", 30090, false), []string{"drop"}},
		{"pod to the NodePort of an eTP Local Service with a local endpoint reaches any endpoint",
			pkt("10.244.1.5", node, "tcp", 30091, false), []string{"accept dnat 10.244.1.7:8080", "accept dnat 10.244.2.7:8080"}},
		{"outside to that NodePort reaches only the local endpoint, source kept",
			pkt("203.0.113.9", node, "tcp", 30091, false), []string{"accept dnat 10.244.1.7:8080"}},
		{"iTP and eTP Local: pod to the cluster IP without a local endpoint is dropped",
			pkt("10.244.1.5", "10.96.0.32", "tcp", 80, false), []string{"drop"}},
		{"iTP and eTP Local: pod to the NodePort reaches the remote endpoint (cluster policy, not internal)",
			pkt("10.244.1.5", node, "tcp", 30092, false), []string{"accept dnat 10.244.2.3:8080"}},
		{"iTP and eTP Local: the node to the NodePort, masqueraded",
			pkt(node, node, "tcp", 30092, true), []string{"accept dnat 10.244.2.3:8080 masquerade"}},
		{"iTP and eTP Local: outside to the NodePort is dropped", pkt("203.0.113.9", node, "tcp", 30092, false), []string{"drop"}},
		{"iTP Local, eTP Cluster: pod to the cluster IP without a local endpoint is dropped",
			pkt("10.244.1.5", "10.96.0.33", "tcp", 80, false), []string{"drop"}},
		{"iTP Local, eTP Cluster: the node to the cluster IP is dropped too", pkt(node, "10.96.0.33", "tcp", 80, true), []string{"drop"}},
		{"iTP Local, eTP Cluster: outside to the NodePort reaches every endpoint, masqueraded",
			pkt("203.0.113.9", node, "tcp", 30093, false), []string{"accept dnat 10.244.2.4:8080 masquerade"}},
	})
}

// TestTracedLocalExternalAffinity: sessionAffinity ClientIP holds for
// externalTrafficPolicy Local's external traffic too, over the local
// endpoints, and shares what clients they served with the cluster IP.
func TestTracedLocalExternalAffinity(t *testing.T) {
	s := svc("default", "sticky-local", "10.96.0.34", 80, 8080, 30094)
	s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
	fake := knftables.NewFake(knftables.InetFamily, Table)
	sps := BuildServicePorts("node-1", []*v1.Service{s}, []*v1Slice{slice("default", "sticky-local", "", 8080,
		ep("10.244.1.2", "node-1", true, false), ep("10.244.1.3", "node-1", true, false), ep("10.244.2.2", "node-2", true, false))})
	if _, err := NewSyncer(fake, nil).Sync(context.Background(), testCfg, sps); err != nil {
		t.Fatal(err)
	}
	tr := newTracer(t, fake, "172.30.0.11")
	p := pkt("203.0.113.9", "172.30.0.11", "tcp", 30094, false)
	local := []string{"accept dnat 10.244.1.2:8080", "accept dnat 10.244.1.3:8080"}
	if first := tr.trace(p); !slices.Equal(first, local) {
		t.Fatalf("a new outside client: %v, want either local endpoint %v", first, local)
	}
	// The tracer followed both branches: pin the client to 10.244.1.3.
	pinned := chainName("aff4", "default/sticky-local/tcp/80/10.244.1.3_8080")
	if !tr.affinity[pinned][p.src] {
		t.Fatalf("the client is not in %s: %v", pinned, tr.affinity)
	}
	for set := range tr.affinity {
		if set != pinned {
			delete(tr.affinity, set)
		}
	}
	want := []string{"accept dnat 10.244.1.3:8080"}
	if again := tr.trace(p); !slices.Equal(again, want) {
		t.Errorf("a known client at the NodePort: %v, want its endpoint %v", again, want)
	}
	if via := tr.trace(pkt("203.0.113.9", "10.96.0.34", "tcp", 80, false)); !slices.Equal(via, []string{"accept dnat 10.244.1.3:8080 masquerade"}) {
		t.Errorf("the same client at the cluster IP: %v, want its endpoint, masqueraded", via)
	}
	if other := tr.trace(pkt("203.0.113.10", "172.30.0.11", "tcp", 30094, false)); !slices.Equal(other, local) {
		t.Errorf("another outside client: %v, want either local endpoint", other)
	}
}

// TestTracedSourceRangesAllowTheNode: as with kube-proxy, when a
// loadBalancerSourceRanges range holds the node's address, the
// LoadBalancer IP is an allowed source too (a node that has the IP as a
// local address reaches it from that address); otherwise it is not.
func TestTracedSourceRangesAllowTheNode(t *testing.T) {
	lb := func(name, clusterIP, lbIP string, ranges ...string) *v1.Service {
		s := svc("default", name, clusterIP, 443, 8443, 0)
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: lbIP}}
		s.Spec.LoadBalancerSourceRanges = ranges
		return s
	}
	withNode := lb("with-node", "10.96.0.35", "172.30.0.203", "172.30.0.11/32", "203.0.113.0/25")
	without := lb("without", "10.96.0.36", "172.30.0.204", "203.0.113.0/25")
	wide := lb("wide", "10.96.0.37", "172.30.0.205", "172.30.0.0/24")
	sls := []*v1Slice{
		slice("default", "with-node", "", 8443, ep("10.244.2.4", "node-2", true, false)),
		slice("default", "without", "", 8443, ep("10.244.2.5", "node-2", true, false)),
		slice("default", "wide", "", 8443, ep("10.244.2.6", "node-2", true, false)),
	}
	runFlows(t, []*v1.Service{withNode, without, wide}, sls, []flow{
		{"the node from its own address, allowed by a range", pkt("172.30.0.11", "172.30.0.203", "tcp", 443, true),
			[]string{"accept dnat 10.244.2.4:8443 masquerade"}},
		{"the node from the LoadBalancer IP, allowed with it", pkt("172.30.0.203", "172.30.0.203", "tcp", 443, true),
			[]string{"accept dnat 10.244.2.4:8443 masquerade"}},
		{"an allowed outside client", pkt("203.0.113.9", "172.30.0.203", "tcp", 443, false), []string{"accept dnat 10.244.2.4:8443 masquerade"}},
		{"another outside client is dropped", pkt("198.51.100.9", "172.30.0.203", "tcp", 443, false), []string{"drop"}},
		{"no range holds the node: the LoadBalancer IP as source is dropped", pkt("172.30.0.204", "172.30.0.204", "tcp", 443, true), []string{"drop"}},
		{"no range holds the node: the node's address is dropped", pkt("172.30.0.11", "172.30.0.204", "tcp", 443, true), []string{"drop"}},
		{"a range that holds both the node and the LoadBalancer IP", pkt("172.30.0.205", "172.30.0.205", "tcp", 443, true),
			[]string{"accept dnat 10.244.2.6:8443 masquerade"}},
	})
}
