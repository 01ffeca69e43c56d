package flow

import (
	"net/netip"
	"strings"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/podnet/podnet/internal/policy"
)

// Objects are the API objects a View is built from (the agent's informer
// caches).
type Objects struct {
	Pods       []*v1.Pod
	Services   []*v1.Service
	Namespaces []*v1.Namespace
	Policies   []*networkingv1.NetworkPolicy
}

// View is what the collector knows of the cluster at one moment: pods by
// address, Services by address and port, and the compiled policies. It is
// immutable once built.
type View struct {
	pods      map[netip.Addr]Endpoint // IP and Port left empty
	services  map[svcKey]Service      // IP and Port are the Service's
	nodePorts map[npKey]Service
	policies  *policy.Compiled
}

type svcKey struct {
	ip    netip.Addr
	proto string
	port  uint16
}

type npKey struct {
	proto string
	port  uint16
}

// NewView builds a View. A NetworkPolicy the compiler cannot use whole is
// compiled as written (its unusable parts match nothing), where the
// enforcer may keep its last good version: records may then name it while
// the kernel still applies the older version.
func NewView(o Objects) *View {
	v := &View{pods: map[netip.Addr]Endpoint{}, services: map[svcKey]Service{}, nodePorts: map[npKey]Service{}}
	var pods []*policy.Pod
	terminating := map[netip.Addr]bool{}
	for _, p := range o.Pods {
		pp := policy.PodFrom(p)
		if pp == nil {
			continue
		}
		pods = append(pods, pp)
		if p.Spec.HostNetwork {
			continue // its address is the node's
		}
		for _, ip := range pp.IPs {
			if _, taken := v.pods[ip]; taken && pp.Terminating && !terminating[ip] {
				continue // a live pod wins over a terminating one
			}
			terminating[ip] = pp.Terminating
			v.pods[ip] = Endpoint{Namespace: p.Namespace, Pod: p.Name, Workload: Workload(p), Node: p.Spec.NodeName}
		}
	}
	for _, s := range o.Services {
		v.addService(s)
	}
	nss := make([]*policy.Namespace, 0, len(o.Namespaces))
	for _, ns := range o.Namespaces {
		nss = append(nss, policy.NamespaceFrom(ns))
	}
	v.policies, _ = policy.Compile(o.Policies, pods, nss)
	return v
}

func (v *View) addService(s *v1.Service) {
	var addrs []string
	addrs = append(addrs, s.Spec.ClusterIPs...)
	addrs = append(addrs, s.Spec.ExternalIPs...)
	for _, in := range s.Status.LoadBalancer.Ingress {
		addrs = append(addrs, in.IP)
	}
	for _, sp := range s.Spec.Ports {
		proto := string(sp.Protocol)
		if proto == "" {
			proto = string(v1.ProtocolTCP)
		}
		for _, a := range addrs {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				continue // "None", empty
			}
			ip = ip.Unmap()
			v.services[svcKey{ip, proto, uint16(sp.Port)}] = Service{Namespace: s.Namespace, Name: s.Name, IP: ip, Port: uint16(sp.Port)}
		}
		if sp.NodePort != 0 {
			v.nodePorts[npKey{proto, uint16(sp.NodePort)}] = Service{Namespace: s.Namespace, Name: s.Name, Port: uint16(sp.NodePort)}
		}
	}
}

// Endpoint returns what is known of ip with port.
func (v *View) Endpoint(ip netip.Addr, port uint16) Endpoint {
	ip = ip.Unmap()
	e := v.pods[ip]
	e.IP, e.Port = ip, port
	return e
}

// Service returns the Service at ip, protocol and port: by address, else
// by NodePort (then the address is the node's). Nil when there is none.
func (v *View) Service(ip netip.Addr, proto string, port uint16) *Service {
	ip = ip.Unmap()
	if s, ok := v.services[svcKey{ip, proto, port}]; ok {
		return &s
	}
	if s, ok := v.nodePorts[npKey{proto, port}]; ok && v.pods[ip].Pod == "" {
		s.IP = ip
		return &s
	}
	return nil
}

// Decide is the policy evaluator's verdict on a connection.
func (v *View) Decide(src, dst netip.Addr, proto string, port uint16) policy.Decision {
	p := v1.Protocol(proto)
	switch p {
	case v1.ProtocolTCP, v1.ProtocolUDP, v1.ProtocolSCTP:
	default:
		p, port = v1.Protocol(strings.ToUpper(proto)), 0
	}
	return v.policies.Verdict(src, dst, p, int32(port))
}

// Workload names the controller of a pod as "Kind/name": a ReplicaSet
// made by a Deployment (its pod-template-hash suffix) is named as the
// Deployment. A pod without a controller has none ("").
func Workload(p *v1.Pod) string {
	for _, o := range p.OwnerReferences {
		if o.Controller == nil || !*o.Controller {
			continue
		}
		if h := p.Labels["pod-template-hash"]; o.Kind == "ReplicaSet" && h != "" && strings.HasSuffix(o.Name, "-"+h) {
			return "Deployment/" + strings.TrimSuffix(o.Name, "-"+h)
		}
		return o.Kind + "/" + o.Name
	}
	return ""
}
