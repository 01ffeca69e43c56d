package proxy

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/knftables"
)

func renderFake(t *testing.T, cfg Config, sps []*ServicePort) *knftables.Fake {
	t.Helper()
	fake := knftables.NewFake(knftables.InetFamily, Table)
	s := NewSyncer(fake, nil)
	if _, err := s.Sync(context.Background(), cfg, sps); err != nil {
		t.Fatalf("sync: %v", err)
	}
	return fake
}

var testCfg = Config{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}, NodeIPs: []netip.Addr{netip.MustParseAddr("172.30.0.11")}}

// TestRenderServiceChains checks the per-Service part of the table as text:
// the lookup elements, the chain that picks an endpoint, the slots.
func TestRenderServiceChains(t *testing.T) {
	svcs := []*v1.Service{svc("default", "web", "10.96.0.5", 80, 8080, 30080), svc("default", "empty", "10.96.0.6", 80, 8080, 0)}
	sls := []*v1Slice{slice("default", "web", "", 8080, ep("10.244.1.2", "node-1", true, false), ep("10.244.2.2", "node-2", true, false))}
	dump := renderFake(t, testCfg, BuildServicePorts("node-1", svcs, sls)).Dump()
	svcChain, extChain := chainName("svc4", "default/web/tcp/80"), chainName("ext4", "default/web/tcp/80")
	for _, want := range []string{
		"add element inet podnet-proxy service-ips-v4 { 10.96.0.5 . tcp . 80 : goto " + svcChain + " }",
		"add element inet podnet-proxy service-nodeports-v4 { tcp . 30080 : goto " + extChain + " }",
		"add rule inet podnet-proxy " + svcChain + " ip saddr != @pod-cidrs-v4 jump mark-for-masquerade",
		"add rule inet podnet-proxy " + svcChain + " ct mark set numgen random mod 2 offset 0x5a000000 goto dnat-v4-tcp",
		"add rule inet podnet-proxy dnat-v4-tcp meta l4proto tcp dnat ip to ct mark map @endpoint-slots-v4-tcp",
		"add element inet podnet-proxy endpoint-slots-v4-tcp { 0x5a000000 : 10.244.1.2 . 8080 }",
		"add element inet podnet-proxy endpoint-slots-v4-tcp { 0x5a000001 : 10.244.2.2 . 8080 }",
		"add rule inet podnet-proxy masquerading ct mark & 0xff000000 == 0x5a000000 ct mark set 0",
		"add rule inet podnet-proxy " + extChain + " jump mark-for-masquerade",
		"add rule inet podnet-proxy " + extChain + " goto " + svcChain,
		"add element inet podnet-proxy hairpin-v4 { 10.244.1.2 . 10.244.1.2 }",
		"add element inet podnet-proxy no-endpoint-services-v4 { 10.96.0.6 . tcp . 80 : goto reject-no-endpoints }",
		"add element inet podnet-proxy nodeport-ips-v4 { 172.30.0.11 }",
	} {
		if !strings.Contains(dump, want+"\n") {
			t.Errorf("table lacks:\n  %s\n\ntable:\n%s", want, dump)
		}
	}
	if strings.Contains(dump, chainName("svc4", "default/empty/tcp/80")) {
		t.Error("a Service without endpoints got a chain; it must only be rejected")
	}
	// Only a pod of this node can reach itself through this node.
	if strings.Contains(dump, "hairpin-v4 { 10.244.2.2 . 10.244.2.2 }") {
		t.Error("an endpoint of another node got a hairpin element")
	}
}

func TestHairpinElementsForEndpointsThatMayBeLocal(t *testing.T) {
	sls := []*v1Slice{slice("default", "web", "", 8080, ep("10.244.1.2", "node-1", true, false), ep("10.244.2.2", "node-2", true, false),
		ep("10.244.3.2", "", true, false))}
	dump := renderFake(t, testCfg, BuildServicePorts("node-1", []*v1.Service{svc("default", "web", "10.96.0.5", 80, 8080, 0)}, sls)).Dump()
	for ip, want := range map[string]bool{"10.244.1.2": true, "10.244.2.2": false, "10.244.3.2": true} {
		if got := strings.Contains(dump, "hairpin-v4 { "+ip+" . "+ip+" }"); got != want {
			t.Errorf("hairpin element for %s: %v, want %v (local, remote, node unknown)", ip, got, want)
		}
	}
}

func TestRenderRemovesStaleChainsAndKeepsNoStaleElements(t *testing.T) {
	fake := knftables.NewFake(knftables.InetFamily, Table)
	s := NewSyncer(fake, nil)
	sls := []*v1Slice{slice("default", "web", "", 8080, ep("10.244.1.2", "node-1", true, false))}
	if _, err := s.Sync(context.Background(), testCfg, BuildServicePorts("node-1", []*v1.Service{svc("default", "web", "10.96.0.5", 80, 8080, 0)}, sls)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sync(context.Background(), testCfg, nil); err != nil {
		t.Fatal(err)
	}
	dump := fake.Dump()
	for _, gone := range []string{"svc4-", "10.96.0.5", "10.244.1.2 . 8080"} {
		if strings.Contains(dump, gone) {
			t.Errorf("after the Service went away the table still has %q:\n%s", gone, dump)
		}
	}
}

func TestBuildServicePortsChoosesEndpoints(t *testing.T) {
	ready := ep("10.244.1.2", "node-1", true, false)
	terminating := ep("10.244.1.3", "node-1", false, true)
	notServing := ep("10.244.1.4", "node-1", false, false)
	remote := ep("10.244.2.2", "node-2", true, false)
	s := svc("default", "web", "10.96.0.5", 80, 8080, 0)
	for _, tc := range []struct {
		name string
		mut  func(*v1.Service)
		eps  []*v1Slice
		want string
	}{
		{"ready endpoints are used and terminating ones are not", nil,
			[]*v1Slice{slice("default", "web", "", 8080, ready, terminating, notServing)}, "10.244.1.2:8080"},
		{"with no ready endpoint, serving terminating ones are used", nil,
			[]*v1Slice{slice("default", "web", "", 8080, terminating, notServing)}, "10.244.1.3:8080"},
		{"a named targetPort resolves per slice", nil,
			[]*v1Slice{slice("default", "web", "", 9090, remote)}, "10.244.2.2:9090"},
		{"headless Services are not proxied", func(s *v1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = v1.ClusterIPNone, nil },
			[]*v1Slice{slice("default", "web", "", 8080, ready)}, "not proxied"},
		{"ExternalName Services are not proxied", func(s *v1.Service) { s.Spec.Type = v1.ServiceTypeExternalName },
			[]*v1Slice{slice("default", "web", "", 8080, ready)}, "not proxied"},
		{"a Service claimed by another proxy is left alone", func(s *v1.Service) { s.Labels = map[string]string{ProxyNameLabel: "other"} },
			[]*v1Slice{slice("default", "web", "", 8080, ready)}, "not proxied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := s.DeepCopy()
			if tc.mut != nil {
				tc.mut(s)
			}
			sps := BuildServicePorts("node-1", []*v1.Service{s}, tc.eps)
			got := "not proxied"
			if len(sps) == 1 {
				var parts []string
				for _, e := range sps[0].Endpoints {
					parts = append(parts, e.String())
				}
				got = strings.Join(parts, ",")
			}
			if got != tc.want {
				t.Errorf("endpoints = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestChainNamesAreBoundedAndStable(t *testing.T) {
	long := strings.Repeat("x", 63)
	n := chainName("svc4", long+"/"+long+"/tcp/80")
	if len(n) > 64 || n != chainName("svc4", long+"/"+long+"/tcp/80") || !strings.HasPrefix(n, "svc4-") {
		t.Errorf("chainName = %q (%d bytes)", n, len(n))
	}
	if chainName("svc4", "a/b/tcp/80") == chainName("svc4", "a/b/udp/80") {
		t.Error("two Service ports share a chain name")
	}
}

func TestTrafficDistribution(t *testing.T) {
	hinted := func(ip, node, zone string, forNodes ...string) discoveryv1.Endpoint {
		e := ep(ip, node, true, false)
		e.Hints = &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: zone}}}
		for _, n := range forNodes {
			e.Hints.ForNodes = append(e.Hints.ForNodes, discoveryv1.ForNode{Name: n})
		}
		return e
	}
	a := hinted("10.244.1.2", "node-1", "zone-a", "node-1")
	b := hinted("10.244.2.2", "node-2", "zone-a", "node-2")
	c := hinted("10.244.3.2", "node-3", "zone-b", "node-3")
	unhinted := ep("10.244.4.2", "node-4", true, false)
	for _, tc := range []struct {
		name string
		dist string
		topo Topology
		eps  []discoveryv1.Endpoint
		want string
	}{
		{"PreferSameNode uses this node's endpoint", v1.ServiceTrafficDistributionPreferSameNode, Topology{"node-1", "zone-a"}, []discoveryv1.Endpoint{a, b, c}, "10.244.1.2:8080"},
		{"PreferSameNode falls back to the zone", v1.ServiceTrafficDistributionPreferSameNode, Topology{"node-9", "zone-a"}, []discoveryv1.Endpoint{a, b, c}, "10.244.1.2:8080,10.244.2.2:8080"},
		{"PreferSameZone uses the zone's endpoints", v1.ServiceTrafficDistributionPreferSameZone, Topology{"node-3", "zone-b"}, []discoveryv1.Endpoint{a, b, c}, "10.244.3.2:8080"},
		{"PreferClose is PreferSameZone", v1.ServiceTrafficDistributionPreferClose, Topology{"node-1", "zone-a"}, []discoveryv1.Endpoint{a, b, c}, "10.244.1.2:8080,10.244.2.2:8080"},
		{"a zone without endpoints uses them all", v1.ServiceTrafficDistributionPreferSameZone, Topology{"node-7", "zone-z"}, []discoveryv1.Endpoint{a, b, c}, "10.244.1.2:8080,10.244.2.2:8080,10.244.3.2:8080"},
		{"one endpoint without hints means all endpoints", v1.ServiceTrafficDistributionPreferSameZone, Topology{"node-1", "zone-a"}, []discoveryv1.Endpoint{a, b, unhinted}, "10.244.1.2:8080,10.244.2.2:8080,10.244.4.2:8080"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := svc("default", "web", "10.96.0.5", 80, 8080, 0)
			s.Spec.TrafficDistribution = &tc.dist
			sps := BuildServicePortsIn(tc.topo, []*v1.Service{s}, []*v1Slice{slice("default", "web", "", 8080, tc.eps...)})
			var got []string
			for _, e := range sps[0].clusterEndpoints() {
				got = append(got, e.String())
			}
			if g := strings.Join(got, ","); g != tc.want {
				t.Errorf("endpoints %s, want %s", g, tc.want)
			}
		})
	}
}
