package proxy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/podnet/podnet/internal/controller"
)

// ProxyNameLabel lets a Service opt out of this proxy (as with kube-proxy):
// a Service carrying it is left alone.
// The agent's informer transform keeps it (controller.Transform).
const ProxyNameLabel = controller.ServiceProxyNameLabel

// Endpoint is one backend of a Service port.
type Endpoint struct {
	IP   netip.Addr
	Port int32
	// Node is the endpoint's node ("" when unknown).
	Node string
	// Local is true when the endpoint runs on this node.
	Local bool
	// Hinted is true when the endpoint carries zone hints (the
	// EndpointSlice controller's, for Services with trafficDistribution);
	// ForThisZone and ForThisNode say whether they name this node's zone
	// and this node. Only these answers are kept, not the hints: an
	// endpoint is kept for as long as its Service, and a new zone rebuilds
	// every Service (PortCache).
	Hinted, ForThisZone, ForThisNode bool
}

func (e Endpoint) String() string { return netip.AddrPortFrom(e.IP, uint16(e.Port)).String() }

// ServicePort is what the proxy programs for one port of one Service.
type ServicePort struct {
	Namespace, Name string
	// PortName is the Service port's name ("" for a single unnamed port).
	PortName string
	Protocol v1.Protocol
	Port     int32
	NodePort int32
	// ClusterIPs are the Service's cluster IPs (both families possible).
	ClusterIPs []netip.Addr
	// ExternalAddrs are externalIPs and LoadBalancer ingress IPs (VIP mode).
	ExternalAddrs []netip.Addr
	// ExternalLocal is externalTrafficPolicy Local.
	ExternalLocal bool
	// InternalLocal is internalTrafficPolicy Local.
	InternalLocal bool
	// AffinityTimeout is sessionAffinity ClientIP's timeout; 0 means no
	// affinity.
	AffinityTimeout time.Duration
	// SourceRanges are loadBalancerSourceRanges: when set, traffic to the
	// LoadBalancer IPs from elsewhere is dropped.
	SourceRanges []netip.Prefix
	// LBAddrs are the subset of ExternalAddrs that are LoadBalancer IPs.
	LBAddrs []netip.Addr
	// HealthCheckNodePort serves the local endpoint count for
	// externalTrafficPolicy Local (0: none).
	HealthCheckNodePort int32
	// Topology holds the endpoints chosen by trafficDistribution for this
	// node, when it narrows the choice (nil: all endpoints).
	Topology []Endpoint
	// Endpoints are the chosen endpoints: the ready ones, or when none is
	// ready the serving-and-terminating ones.
	Endpoints []Endpoint

	// key caches Key, set by the builder.
	key string
}

// Key is "namespace/name/protocol/port", unique per Service port.
func (s *ServicePort) Key() string {
	if s.key != "" {
		return s.key
	}
	return fmt.Sprintf("%s/%s/%s/%d", s.Namespace, s.Name, strings.ToLower(string(s.Protocol)), s.Port)
}

// internalEndpoints returns the endpoints of cluster-IP traffic:
// internalTrafficPolicy Local's local ones, else clusterEndpoints.
func (s *ServicePort) internalEndpoints() []Endpoint {
	if s.InternalLocal {
		return localOnly(s.Endpoints)
	}
	return s.clusterEndpoints()
}

// InternalEndpoints are the endpoints a connection to a cluster IP from
// this node may be sent to (internalEndpoints): what podnet trace shows,
// so that trace and the rendered rules read one model.
func (s *ServicePort) InternalEndpoints() []Endpoint { return s.internalEndpoints() }

// clusterEndpoints returns the endpoints of the Cluster traffic policy
// (kube-proxy's cluster policy chain): trafficDistribution's choice, else
// all. External traffic of externalTrafficPolicy Cluster uses them whatever
// the internal policy, and so does traffic from pods and from the node
// itself to the external addresses of externalTrafficPolicy Local.
func (s *ServicePort) clusterEndpoints() []Endpoint {
	if s.Topology != nil {
		return s.Topology
	}
	return s.Endpoints
}

// externalEndpoints are the endpoints of NodePort and external traffic
// from outside the cluster: externalTrafficPolicy Local's local ones, else
// clusterEndpoints.
func (s *ServicePort) externalEndpoints() []Endpoint {
	if s.ExternalLocal {
		return localOnly(s.Endpoints)
	}
	return s.clusterEndpoints()
}

func localOnly(eps []Endpoint) []Endpoint {
	var out []Endpoint
	for _, e := range eps {
		if e.Local {
			out = append(out, e)
		}
	}
	return out
}

// Proxied reports whether the proxy handles svc: not headless, not
// ExternalName, and not claimed by another proxy.
func Proxied(svc *v1.Service) bool {
	if _, ok := svc.Labels[ProxyNameLabel]; ok {
		return false
	}
	if svc.Spec.Type == v1.ServiceTypeExternalName {
		return false
	}
	return svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != v1.ClusterIPNone
}

// BuildServicePorts computes what to program from the Services and their
// EndpointSlices, as seen from node. The result is sorted by Key.
func BuildServicePorts(node string, services []*v1.Service, slices_ []*discoveryv1.EndpointSlice) []*ServicePort {
	return BuildServicePortsIn(Topology{Node: node}, services, slices_)
}

// Topology is where this proxy runs: its node and the node's zone (label
// topology.kubernetes.io/zone).
type Topology struct {
	Node, Zone string
}

// BuildServicePortsIn is BuildServicePorts with the node's zone, for
// trafficDistribution.
func BuildServicePortsIn(topo Topology, services []*v1.Service, slices_ []*discoveryv1.EndpointSlice) []*ServicePort {
	bySvc := map[string][]*discoveryv1.EndpointSlice{}
	for _, sl := range slices_ {
		if k := SliceServiceKey(sl); k != "" {
			bySvc[k] = append(bySvc[k], sl)
		}
	}
	var out []*ServicePort
	for _, svc := range services {
		out = append(out, ServicePortsOf(topo, svc, bySvc[svc.Namespace+"/"+svc.Name])...)
	}
	slices.SortFunc(out, func(a, b *ServicePort) int { return strings.Compare(a.Key(), b.Key()) })
	return out
}

// SliceServiceKey is "namespace/name" of the Service an EndpointSlice
// belongs to ("" when it names none).
func SliceServiceKey(sl *discoveryv1.EndpointSlice) string {
	name := sl.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return ""
	}
	return sl.Namespace + "/" + name
}

// ServicePortsOf builds the ports of one Service from its EndpointSlices
// (none when the Service is not proxied).
func ServicePortsOf(topo Topology, svc *v1.Service, svcSlices []*discoveryv1.EndpointSlice) []*ServicePort {
	if !Proxied(svc) {
		return nil
	}
	var out []*ServicePort
	for _, p := range svc.Spec.Ports {
		out = append(out, servicePort(topo, svc, p, svcSlices))
	}
	return out
}

func servicePort(topo Topology, svc *v1.Service, p v1.ServicePort, svcSlices []*discoveryv1.EndpointSlice) *ServicePort {
	sp := &ServicePort{
		Namespace: svc.Namespace, Name: svc.Name, PortName: p.Name,
		Protocol: p.Protocol, Port: p.Port, NodePort: p.NodePort,
		ExternalLocal: svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal &&
			(svc.Spec.Type == v1.ServiceTypeNodePort || svc.Spec.Type == v1.ServiceTypeLoadBalancer),
		InternalLocal: svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == v1.ServiceInternalTrafficPolicyLocal,
	}
	if sp.Protocol == "" {
		sp.Protocol = v1.ProtocolTCP
	}
	sp.key = sp.Key()
	if svc.Spec.SessionAffinity == v1.ServiceAffinityClientIP {
		sp.AffinityTimeout = 3 * time.Hour // the API's default, 10800 s
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			sp.AffinityTimeout = time.Duration(*c.ClientIP.TimeoutSeconds) * time.Second
		}
	}
	if sp.ExternalLocal {
		sp.HealthCheckNodePort = svc.Spec.HealthCheckNodePort
	}
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 {
		ips = []string{svc.Spec.ClusterIP}
	}
	for _, s := range ips {
		if a, err := netip.ParseAddr(s); err == nil {
			sp.ClusterIPs = append(sp.ClusterIPs, a.Unmap())
		}
	}
	for _, s := range svc.Spec.ExternalIPs {
		if a, err := netip.ParseAddr(s); err == nil {
			sp.ExternalAddrs = append(sp.ExternalAddrs, a.Unmap())
		}
	}
	if svc.Spec.Type == v1.ServiceTypeLoadBalancer {
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if in.IPMode != nil && *in.IPMode == v1.LoadBalancerIPModeProxy {
				continue // the load balancer proxies; nothing to do here
			}
			if a, err := netip.ParseAddr(in.IP); err == nil {
				sp.ExternalAddrs = append(sp.ExternalAddrs, a.Unmap())
				sp.LBAddrs = append(sp.LBAddrs, a.Unmap())
			}
		}
	}
	for _, r := range svc.Spec.LoadBalancerSourceRanges {
		if p, err := netip.ParsePrefix(strings.TrimSpace(r)); err == nil {
			sp.SourceRanges = append(sp.SourceRanges, p.Masked())
		} else if a, err := netip.ParseAddr(strings.TrimSpace(r)); err == nil {
			sp.SourceRanges = append(sp.SourceRanges, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	if svc.Spec.Type != v1.ServiceTypeNodePort && svc.Spec.Type != v1.ServiceTypeLoadBalancer {
		sp.NodePort = 0
	}
	sp.Endpoints = pickEndpoints(topo, p, svcSlices)
	if svc.Spec.TrafficDistribution != nil {
		sp.Topology = topologyEndpoints(*svc.Spec.TrafficDistribution, topo, sp.Endpoints)
	}
	return sp
}

// pickEndpoints resolves the Service port against the slices: the slice port
// with the same name and protocol gives each endpoint's port (so named
// targetPorts resolve per endpoint). Ready endpoints are used; when none is
// ready, serving-and-terminating ones are.
func pickEndpoints(topo Topology, p v1.ServicePort, slices_ []*discoveryv1.EndpointSlice) []Endpoint {
	proto := p.Protocol
	if proto == "" {
		proto = v1.ProtocolTCP
	}
	// The endpoints are kept as long as the Service is: room for exactly
	// those of the slices, the common case of all of them ready.
	n := 0
	for _, sl := range slices_ {
		n += len(sl.Endpoints)
	}
	ready := make([]Endpoint, 0, n)
	var terminating []Endpoint
	seen := make(map[netip.AddrPort]bool, n)
	for _, sl := range slices_ {
		var port *int32
		for _, sp := range sl.Ports {
			name, pr := "", v1.ProtocolTCP
			if sp.Name != nil {
				name = *sp.Name
			}
			if sp.Protocol != nil {
				pr = *sp.Protocol
			}
			if name == p.Name && pr == proto && sp.Port != nil {
				port = sp.Port
			}
		}
		if port == nil {
			continue
		}
		for _, ep := range sl.Endpoints {
			if len(ep.Addresses) == 0 {
				continue
			}
			ip, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil {
				continue
			}
			e := Endpoint{IP: ip.Unmap(), Port: *port}
			if h := ep.Hints; h != nil {
				e.Hinted = len(h.ForZones) > 0
				e.ForThisZone = slices.ContainsFunc(h.ForZones, func(z discoveryv1.ForZone) bool { return z.Name == topo.Zone })
				e.ForThisNode = slices.ContainsFunc(h.ForNodes, func(n discoveryv1.ForNode) bool { return n.Name == topo.Node })
			}
			if ep.NodeName != nil {
				e.Node = *ep.NodeName
				e.Local = e.Node == topo.Node
			}
			ap := netip.AddrPortFrom(e.IP, uint16(e.Port))
			if seen[ap] {
				continue // the same endpoint in two slices while they move
			}
			isReady := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			serving := ep.Conditions.Serving == nil || *ep.Conditions.Serving
			terminatingNow := ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
			switch {
			case isReady && !terminatingNow:
				ready = append(ready, e)
				seen[ap] = true
			case serving && terminatingNow:
				terminating = append(terminating, e)
				seen[ap] = true
			}
		}
	}
	out := ready
	if len(out) == 0 {
		out = terminating
	}
	if len(out) == 0 {
		out = nil
	}
	slices.SortFunc(out, func(a, b Endpoint) int {
		if c := a.IP.Compare(b.IP); c != 0 {
			return c
		}
		return int(a.Port - b.Port)
	})
	return out
}

// topologyEndpoints applies trafficDistribution the way kube-proxy reads the
// EndpointSlice controller's hints: PreferSameNode uses the endpoints hinted
// for this node when there are any; PreferSameZone (and its old name
// PreferClose) uses those hinted for this node's zone. Hints are all or
// nothing: if any endpoint lacks zone hints, or none fits, every endpoint is
// used (nil).
func topologyEndpoints(dist string, topo Topology, eps []Endpoint) []Endpoint {
	if len(eps) == 0 {
		return nil
	}
	for _, e := range eps {
		if !e.Hinted {
			return nil
		}
	}
	if dist == v1.ServiceTrafficDistributionPreferSameNode {
		var same []Endpoint
		for _, e := range eps {
			if e.ForThisNode {
				same = append(same, e)
			}
		}
		if len(same) > 0 {
			return same
		}
	}
	if dist == v1.ServiceTrafficDistributionPreferSameNode || dist == v1.ServiceTrafficDistributionPreferSameZone ||
		dist == v1.ServiceTrafficDistributionPreferClose {
		if topo.Zone == "" {
			return nil
		}
		var zone []Endpoint
		for _, e := range eps {
			if e.ForThisZone {
				zone = append(zone, e)
			}
		}
		if len(zone) > 0 {
			return zone
		}
	}
	return nil
}

// sameRender says whether the renderer sees a and b as equal: it compares
// everything the renderer reads from a Service port
// (TestSameRenderCoversWhatTheRendererReads changes every field in turn to
// check it). An incremental sync calls it once per changed Service port,
// against the one its fragment was rendered from.
func sameRender(a, b *ServicePort) bool {
	if a == b {
		return true
	}
	return a.Namespace == b.Namespace && a.Name == b.Name && a.PortName == b.PortName &&
		a.Protocol == b.Protocol && a.Port == b.Port && a.NodePort == b.NodePort &&
		slices.Equal(a.ClusterIPs, b.ClusterIPs) && slices.Equal(a.ExternalAddrs, b.ExternalAddrs) &&
		slices.Equal(a.LBAddrs, b.LBAddrs) && a.ExternalLocal == b.ExternalLocal &&
		a.InternalLocal == b.InternalLocal && a.AffinityTimeout == b.AffinityTimeout &&
		a.HealthCheckNodePort == b.HealthCheckNodePort && slices.Equal(a.SourceRanges, b.SourceRanges) &&
		slices.EqualFunc(a.Endpoints, b.Endpoints, sameEndpoint) &&
		(a.Topology == nil) == (b.Topology == nil) && slices.EqualFunc(a.Topology, b.Topology, sameEndpoint)
}

// sameEndpoint compares what the renderer reads of an endpoint: where it
// is, and whether it may be on this node (hairpin).
func sameEndpoint(a, b Endpoint) bool {
	return a.IP == b.IP && a.Port == b.Port && a.Local == b.Local && (a.Node == "") == (b.Node == "")
}
