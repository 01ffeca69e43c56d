package trace

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/podnet/podnet/internal/dns"
	"github.com/podnet/podnet/internal/probe"
)

// Fixture conventions as in trace_test.go; Services are in 10.96.0.0/16,
// node-1 is in zone a, node-2 in zone b.

func node(name, ip, podCIDR string) *v1.Node {
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1.NodeSpec{PodCIDR: podCIDR, PodCIDRs: []string{podCIDR}},
		Status:     v1.NodeStatus{Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: ip}}},
	}
}

func service(ns, name, clusterIP string, port int32) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.ServiceSpec{ClusterIP: clusterIP, ClusterIPs: []string{clusterIP}, Type: v1.ServiceTypeClusterIP,
			Ports: []v1.ServicePort{{Protocol: v1.ProtocolTCP, Port: port}}},
	}
}

func sliceEndpoint(ip, nodeName string, ready bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{ip}, NodeName: ptr.To(nodeName),
		Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(ready), Terminating: ptr.To(false)}}
}

func slice(ns, svc string, port int32, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svc + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(""), Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To(port)}},
	}
}

// zoneOf builds the cluster zone from Services and their slices, as the
// DNS server does.
func zoneOf(svcs []*v1.Service, sls []*discoveryv1.EndpointSlice) *dns.Zone {
	z := dns.NewZone(dns.Config{Zone: "cluster.local", TTL: 5})
	z.Store(dns.Build(svcs, sls, nil, nil))
	return z
}

func TestResolvConf(t *testing.T) {
	rc := ParseResolvConf("nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local example.org.\noptions ndots:5 timeout:1 # comment\n")
	want := ResolvConf{Search: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "example.org"}, Ndots: 5}
	if !slices.Equal(rc.Search, want.Search) || rc.Ndots != want.Ndots {
		t.Errorf("ParseResolvConf = %+v, want %+v", rc, want)
	}
	if got := ParseResolvConf("domain a.example\nsearch b.example\n"); !slices.Equal(got.Search, []string{"b.example"}) || got.Ndots != 1 {
		t.Errorf("the last search line wins and ndots defaults to 1: %+v", got)
	}
	if got := ClusterFirstResolvConf("shop", "cluster.local"); !slices.Equal(got.Search, want.Search[:3]) || got.Ndots != 5 {
		t.Errorf("ClusterFirstResolvConf = %+v", got)
	}
	for _, tc := range []struct {
		name, in string
		ndots    int
		want     []string
	}{
		{"a short name tries the search path first", "web", 5, []string{"web.a.", "web.b.", "web."}},
		{"a name with ndots dots is tried as it is first", "web.shop.svc", 2, []string{"web.shop.svc.", "web.shop.svc.a.", "web.shop.svc.b."}},
		{"a name ending in a dot is only tried as it is", "Web.Shop.", 5, []string{"web.shop."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ResolvConf{Search: []string{"a", "b"}, Ndots: tc.ndots}.Candidates(tc.in)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Candidates(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// The pod's search path against a fake record set: the names it tries,
// the answer it gets, and names that leave the zone.
func TestResolveName(t *testing.T) {
	ext := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "docs"},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeExternalName, ExternalName: "docs.example.org"}}
	z := zoneOf([]*v1.Service{service("shop", "web", "10.96.0.80", 80), service("db", "pg", "10.96.0.90", 5432), ext}, nil)
	rc := ClusterFirstResolvConf("shop", "cluster.local")
	for _, tc := range []struct {
		name, in  string
		tries     []string
		addrs     string
		forwarded string
	}{
		{name: "a Service of the pod's namespace by its short name", in: "web",
			tries: []string{"web.shop.svc.cluster.local. -> 10.96.0.80"}, addrs: "10.96.0.80"},
		{name: "NAME.NS goes through the first search domain to the second", in: "pg.db",
			tries: []string{"pg.db.shop.svc.cluster.local. -> NXDOMAIN", "pg.db.svc.cluster.local. -> 10.96.0.90"}, addrs: "10.96.0.90"},
		{name: "a fully qualified name is asked once", in: "pg.db.svc.cluster.local.",
			tries: []string{"pg.db.svc.cluster.local. -> 10.96.0.90"}, addrs: "10.96.0.90"},
		{name: "a name outside the cluster is forwarded after the search path", in: "example.com",
			tries: []string{"example.com.shop.svc.cluster.local. -> NXDOMAIN", "example.com.svc.cluster.local. -> NXDOMAIN",
				"example.com.cluster.local. -> NXDOMAIN", "example.com. -> forwarded upstream"}, forwarded: "example.com."},
		{name: "an ExternalName Service answers a CNAME the server forwards", in: "docs",
			tries: []string{"docs.shop.svc.cluster.local. -> CNAME docs.example.org."}, forwarded: "docs.example.org."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := ResolveName(z, rc, tc.in, false)
			var tries []string
			for _, tr := range st.Tries {
				tries = append(tries, tr.Name+" -> "+tr.Answer)
			}
			if !slices.Equal(tries, tc.tries) {
				t.Errorf("tries:\n%s\nwant:\n%s", strings.Join(tries, "\n"), strings.Join(tc.tries, "\n"))
			}
			if got := joinAddrs(st.Addrs); got != tc.addrs {
				t.Errorf("addrs %q, want %q", got, tc.addrs)
			}
			if st.Forwarded != tc.forwarded {
				t.Errorf("forwarded %q, want %q", st.Forwarded, tc.forwarded)
			}
		})
	}
}

// The endpoints the proxy on the source's node may choose, per traffic
// policy, affinity and trafficDistribution.
func TestServiceFor(t *testing.T) {
	cip := netip.MustParseAddr("10.96.0.80")
	hinted := func(ip, nodeName, zone string) discoveryv1.Endpoint {
		e := sliceEndpoint(ip, nodeName, true)
		e.Hints = &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: zone}}}
		return e
	}
	two := slice("shop", "web", 8080, sliceEndpoint("10.244.1.7", "node-1", true), sliceEndpoint("10.244.2.7", "node-2", true))
	for _, tc := range []struct {
		name    string
		edit    func(*v1.Service)
		slice   *discoveryv1.EndpointSlice
		node    string
		outcome string
		eps     string
		why     string
	}{
		{name: "every ready endpoint by default", slice: two, node: "node-1", outcome: ServiceDNAT,
			eps: "10.244.1.7:8080 10.244.2.7:8080"},
		{name: "a not ready endpoint is never chosen", node: "node-1", outcome: ServiceDNAT, eps: "10.244.2.7:8080",
			slice: slice("shop", "web", 8080, sliceEndpoint("10.244.1.7", "node-1", false), sliceEndpoint("10.244.2.7", "node-2", true))},
		{name: "no ready endpoint rejects", node: "node-1", outcome: ServiceReject, why: "no ready endpoint",
			slice: slice("shop", "web", 8080, sliceEndpoint("10.244.1.7", "node-1", false))},
		{name: "internalTrafficPolicy Local keeps the node's endpoints", slice: two, node: "node-2", outcome: ServiceDNAT,
			edit: func(s *v1.Service) { s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal) },
			eps:  "10.244.2.7:8080", why: "internalTrafficPolicy Local: only endpoints on node-2"},
		{name: "internalTrafficPolicy Local without a local endpoint drops", node: "node-3", outcome: ServiceDrop, slice: two,
			edit: func(s *v1.Service) { s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal) },
			why:  "no endpoint on node-3"},
		{name: "session affinity is named", slice: two, node: "node-1", outcome: ServiceDNAT, eps: "10.244.1.7:8080 10.244.2.7:8080",
			edit: func(s *v1.Service) { s.Spec.SessionAffinity = v1.ServiceAffinityClientIP },
			why:  "sessionAffinity ClientIP (3h0m0s)"},
		{name: "trafficDistribution PreferSameZone keeps the zone's hinted endpoints", node: "node-1", outcome: ServiceDNAT,
			slice: slice("shop", "web", 8080, hinted("10.244.1.7", "node-1", "a"), hinted("10.244.2.7", "node-2", "b")),
			edit:  func(s *v1.Service) { s.Spec.TrafficDistribution = ptr.To(v1.ServiceTrafficDistributionPreferSameZone) },
			eps:   "10.244.1.7:8080", why: "trafficDistribution PreferSameZone: the endpoints hinted for node-1"},
		{name: "trafficDistribution without hints uses every endpoint", node: "node-1", outcome: ServiceDNAT, slice: two,
			edit: func(s *v1.Service) { s.Spec.TrafficDistribution = ptr.To(v1.ServiceTrafficDistributionPreferSameZone) },
			eps:  "10.244.1.7:8080 10.244.2.7:8080", why: "no usable hints for node-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := service("shop", "web", "10.96.0.80", 80)
			svc.Spec.Ports[0].TargetPort.IntVal = 8080
			if tc.edit != nil {
				tc.edit(svc)
			}
			zone := map[string]string{"node-1": "a", "node-2": "b"}[tc.node]
			st := ServiceFor(tc.node, zone, svc, []*discoveryv1.EndpointSlice{tc.slice}, cip, v1.ProtocolTCP, 80)
			if st == nil {
				t.Fatal("ServiceFor = nil")
			}
			var eps []string
			for _, e := range st.Endpoints {
				eps = append(eps, e.Addr.String())
			}
			if st.Outcome != tc.outcome || strings.Join(eps, " ") != tc.eps {
				t.Errorf("outcome %s endpoints %q, want %s %q", st.Outcome, strings.Join(eps, " "), tc.outcome, tc.eps)
			}
			if why := strings.Join(st.Why, "; "); !strings.Contains(why, tc.why) {
				t.Errorf("why %q, want it to contain %q", why, tc.why)
			}
		})
	}
	if st := ServiceFor("node-1", "", service("shop", "web", "10.96.0.80", 80), []*discoveryv1.EndpointSlice{two}, cip, v1.ProtocolUDP, 80); st != nil {
		t.Errorf("a port the Service lacks: %+v, want nil", st)
	}
}

func TestRouteFor(t *testing.T) {
	nodes := []*v1.Node{node("node-1", "172.30.0.11", "10.244.1.0/24"), node("node-2", "172.30.0.12", "10.244.2.0/24")}
	for _, tc := range []struct {
		name, mode, dst, dstNode string
		want                     RouteStage
	}{
		{"a pod on the same node", "direct", "10.244.1.9", "node-1", RouteStage{From: "node-1", To: "node-1", Kind: RouteLocal}},
		{"a pod on another node, direct", "direct", "10.244.2.7", "node-2",
			RouteStage{From: "node-1", To: "node-2", Kind: RouteDirect, Route: "10.244.2.0/24 via 172.30.0.12"}},
		{"a pod on another node, vxlan", "vxlan", "10.244.2.7", "node-2",
			RouteStage{From: "node-1", To: "node-2", Kind: RouteVXLAN, Route: "10.244.2.0/24 via 10.244.2.0 dev pnvxlan onlink"}},
		{"a node's own address", "direct", "172.30.0.12", "", RouteStage{From: "node-1", To: "node-2", Kind: RouteNode}},
		{"an address outside the cluster", "direct", "203.0.113.5", "", RouteStage{From: "node-1", Kind: RouteExternal, Masquerade: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := RouteFor(tc.mode, "node-1", netip.MustParseAddr(tc.dst), tc.dstNode, nodes)
			if got != tc.want {
				t.Errorf("RouteFor = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// partlyCluster: a Service web with two endpoints, web-1 (node-2) that
// admits only app=client and web-2 (node-1) that admits everyone.
func partlyCluster(t *testing.T) *Cluster {
	t.Helper()
	web2 := pod("default", "web-2", "node-1", "10.244.1.8", map[string]string{"app": "web2"})
	svc := service("default", "web", "10.96.0.80", 80)
	sl := slice("default", "web", 80, sliceEndpoint("10.244.2.7", "node-2", true), sliceEndpoint("10.244.1.8", "node-1", true))
	c := &Cluster{
		Pods:     []v1.Pod{*client, *web1, *web2, *pod("default", "other", "node-1", "10.244.1.9", nil)},
		Services: []*v1.Service{svc}, Slices: []*discoveryv1.EndpointSlice{sl},
		Nodes:  []*v1.Node{node("node-1", "172.30.0.11", "10.244.1.0/24"), node("node-2", "172.30.0.12", "10.244.2.0/24")},
		Zone:   zoneOf([]*v1.Service{svc}, []*discoveryv1.EndpointSlice{sl}),
		Domain: "cluster.local", RoutingMode: "direct",
	}
	c.Policy, c.PolicyErrors, _ = compile(t, []*networkingv1.NetworkPolicy{apiAllow}, client, web1, web2, &c.Pods[3])
	return c
}

// A Service whose endpoints disagree is PARTLY allowed, one path each;
// a probe's reply is checked against the path of the pod that answered.
func TestExplainPartlyAndCheckProbe(t *testing.T) {
	c := partlyCluster(t)
	e, err := c.Explain(Request{Src: PodName{"default", "other"}, Target: Target{Name: "web", Protocol: v1.ProtocolTCP, Port: 80}})
	if err != nil {
		t.Fatal(err)
	}
	if e.Verdict != VerdictPartly || len(e.Paths) != 2 || e.Allowed() {
		t.Fatalf("verdict %s with %d paths, want partly with 2:\n%s", e.Verdict, len(e.Paths), e)
	}
	if tgt, proto, ok := e.ProbeTarget(); !ok || tgt != "10.96.0.80:80" || proto != "tcp" {
		t.Errorf("ProbeTarget = %s %s %v, want the cluster IP over tcp", tgt, proto, ok)
	}
	noReply := &probe.NoReplyError{Err: errors.New("i/o timeout")}
	for _, tc := range []struct {
		name   string
		reply  probe.Reply
		err    error
		agrees bool
	}{
		{"the allowed endpoint answered", probe.Reply{Pod: "web-2"}, nil, true},
		{"the denied endpoint answered", probe.Reply{Pod: "web-1"}, nil, false},
		{"no reply where some paths are denied", probe.Reply{}, noReply, true},
		{"an unknown server answered", probe.Reply{Body: "hello"}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.CheckProbe("10.96.0.80:80", tc.reply, tc.err); got.Agrees != tc.agrees {
				t.Errorf("CheckProbe: %+v, want agrees=%v", got, tc.agrees)
			}
		})
	}
	// From the client, both paths are allowed; no reply then disagrees.
	e, err = c.Explain(Request{Src: PodName{"default", "client"}, Target: Target{Object: Object{KindService, "default", "web"}, Protocol: v1.ProtocolTCP, Port: 80}})
	if err != nil || e.Verdict != VerdictAllowed {
		t.Fatalf("client -> svc/web: %v, %v", err, e)
	}
	if got := e.CheckProbe("10.96.0.80:80", probe.Reply{}, noReply); got.Agrees {
		t.Errorf("no reply where trace allows: %+v, want a disagreement", got)
	}
	b, err := json.Marshal(e)
	if err != nil || !strings.Contains(string(b), `"verdict":"allowed"`) || !strings.Contains(string(b), `"allowedBy":["default/api-allow ingress[0]"]`) {
		t.Errorf("JSON: %v\n%s", err, b)
	}
}
