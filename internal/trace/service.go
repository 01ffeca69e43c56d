package trace

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/podnet/podnet/internal/proxy"
)

// ServiceStage is what the service proxy on the source's node does with a
// packet to a Service's cluster IP: the endpoints it may send it to, or
// why it rejects or drops it. It reads package proxy's model
// (proxy.ServicePortsOf and ServicePort.InternalEndpoints), the same one
// the proxy renders its nftables table from, so the two cannot disagree.
type ServiceStage struct {
	Service   string     `json:"service"` // NS/NAME
	PortName  string     `json:"portName,omitempty"`
	ClusterIP netip.Addr `json:"clusterIP"`
	Node      string     `json:"node"` // the source's node, where the proxy decides
	// Ready is the number of endpoints the Service has of this family (the
	// ready ones, or the serving terminating ones when none is ready).
	Ready int `json:"ready"`
	// Endpoints are the ones a new connection from the source may get.
	Endpoints []ServiceEndpoint `json:"endpoints"`
	// Outcome is "dnat" (one of Endpoints), "reject" (no endpoint at all:
	// TCP reset or ICMP unreachable) or "drop" (internalTrafficPolicy
	// Local with no endpoint on the node).
	Outcome string `json:"outcome"`
	// Why lists the rules that narrowed the choice, in words.
	Why []string `json:"why,omitempty"`
}

// ServiceEndpoint is one endpoint the proxy may choose.
type ServiceEndpoint struct {
	Addr netip.AddrPort `json:"addr"`
	Node string         `json:"node,omitempty"`
}

// The outcomes of a ServiceStage.
const (
	ServiceDNAT   = "dnat"
	ServiceReject = "reject"
	ServiceDrop   = "drop"
)

// ServiceFor returns the Service stage for a connection from a pod on
// node (in zone, "" when the node has no zone label) to clusterIP:port
// over proto, given svc and its EndpointSlices; nil when svc has no such
// cluster IP and port, or is not proxied (headless, ExternalName, another
// proxy's).
func ServiceFor(node, zone string, svc *v1.Service, sls []*discoveryv1.EndpointSlice, clusterIP netip.Addr, proto v1.Protocol, port int32) *ServiceStage {
	for _, sp := range proxy.ServicePortsOf(proxy.Topology{Node: node, Zone: zone}, svc, sls) {
		if sp.Protocol != proto || sp.Port != port || !slices.Contains(sp.ClusterIPs, clusterIP) {
			continue
		}
		return serviceStage(node, svc, sp, clusterIP)
	}
	return nil
}

func serviceStage(node string, svc *v1.Service, sp *proxy.ServicePort, clusterIP netip.Addr) *ServiceStage {
	st := &ServiceStage{Service: sp.Namespace + "/" + sp.Name, PortName: sp.PortName, ClusterIP: clusterIP, Node: node}
	all := ofFamily(sp.Endpoints, clusterIP.Is4())
	st.Ready = len(all)
	chosen := ofFamily(sp.InternalEndpoints(), clusterIP.Is4())
	switch {
	case len(all) == 0:
		st.Outcome = ServiceReject
		st.Why = append(st.Why, "no ready endpoint: the proxy rejects the connection at once")
		return st
	case sp.InternalLocal && len(chosen) == 0:
		st.Outcome = ServiceDrop
		st.Why = append(st.Why, "internalTrafficPolicy Local and no endpoint on "+node+": the proxy drops the packet")
		return st
	case sp.InternalLocal:
		st.Why = append(st.Why, "internalTrafficPolicy Local: only endpoints on "+node)
	case sp.Topology != nil:
		st.Why = append(st.Why, fmt.Sprintf("trafficDistribution %s: the endpoints hinted for %s", *svc.Spec.TrafficDistribution, node))
	case svc.Spec.TrafficDistribution != nil:
		st.Why = append(st.Why, fmt.Sprintf("trafficDistribution %s: no usable hints for %s, so every endpoint", *svc.Spec.TrafficDistribution, node))
	}
	if sp.AffinityTimeout > 0 {
		st.Why = append(st.Why, fmt.Sprintf("sessionAffinity ClientIP (%s): a client keeps the endpoint it got first", sp.AffinityTimeout))
	}
	st.Outcome = ServiceDNAT
	for _, e := range chosen {
		st.Endpoints = append(st.Endpoints, ServiceEndpoint{Addr: netip.AddrPortFrom(e.IP, uint16(e.Port)), Node: e.Node})
	}
	return st
}

// ofFamily returns the endpoints of one address family.
func ofFamily(eps []proxy.Endpoint, v4 bool) []proxy.Endpoint {
	return slices.DeleteFunc(slices.Clone(eps), func(e proxy.Endpoint) bool { return e.IP.Is4() != v4 })
}

// format writes the Service step.
func (s *ServiceStage) format(b *strings.Builder) {
	name := s.Service
	if s.PortName != "" {
		name += " port " + s.PortName
	}
	fmt.Fprintf(b, "service: %s (cluster IP %s), decided on %s\n", name, s.ClusterIP, s.Node)
	for _, w := range s.Why {
		fmt.Fprintf(b, "  %s\n", w)
	}
	if s.Outcome != ServiceDNAT {
		fmt.Fprintf(b, "  -> %s\n", strings.ToUpper(s.Outcome))
		return
	}
	eps := make([]string, len(s.Endpoints))
	for i, e := range s.Endpoints {
		eps[i] = e.Addr.String()
		if e.Node != "" {
			eps[i] += " (" + e.Node + ")"
		}
	}
	fmt.Fprintf(b, "  may choose %d of %d ready endpoints: %s\n", len(s.Endpoints), s.Ready, strings.Join(eps, ", "))
}
