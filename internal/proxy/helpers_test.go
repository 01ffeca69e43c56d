package proxy

// Fixture conventions for this package's tests: pod CIDR 10.244.0.0/16
// (node-1 pods 10.244.1.x, node-2 pods 10.244.2.x), service CIDR
// 10.96.0.0/16, node IPs 172.30.0.11 (node-1, "this node") and 172.30.0.12,
// outside clients 203.0.113.x. IPv6 (dual-stack tests): pod CIDR
// fd00:10:244::/56 (node-1 pods fd00:10:244:1::x, node-2 fd00:10:244:2::x),
// service CIDR fd00:10:96::/112, node IPs fd00:172:30::11 (this node) and
// fd00:172:30::12, outside clients 2001:db8::x. Objects are built as the
// API server would store them.

import (
	"net"
	"net/netip"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

type (
	v1Service = v1.Service
	v1Slice   = discoveryv1.EndpointSlice
)

// svc returns a Service with one TCP port; nodePort 0 makes it ClusterIP.
func svc(ns, name, clusterIP string, port, target, nodePort int32) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.ServiceSpec{
			Type: v1.ServiceTypeClusterIP, ClusterIP: clusterIP, ClusterIPs: []string{clusterIP},
			Ports: []v1.ServicePort{{Protocol: v1.ProtocolTCP, Port: port, TargetPort: intstr.FromInt32(target)}},
		},
	}
	if nodePort != 0 {
		s.Spec.Type = v1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = nodePort
		s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
	}
	return s
}

// slice returns an EndpointSlice of service ns/name with one port.
func slice(ns, svcName, portName string, port int32, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svcName + "-abc", Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(portName), Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To(port)}},
	}
}

// slice6 returns an IPv6 EndpointSlice of service ns/name with one port
// (named apart from slice's, as a dual-stack Service has one of each).
func slice6(ns, svcName, portName string, port int32, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	sl := slice(ns, svcName, portName, port, eps...)
	sl.Name = svcName + "-v6"
	sl.AddressType = discoveryv1.AddressTypeIPv6
	return sl
}

// dualStack makes s a dual-stack Service (IPv4 first) with the IPv6
// cluster IP ip6.
func dualStack(s *v1.Service, ip6 string) *v1.Service {
	s.Spec.ClusterIPs = append(s.Spec.ClusterIPs, ip6)
	s.Spec.IPFamilies = []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}
	s.Spec.IPFamilyPolicy = ptr.To(v1.IPFamilyPolicyRequireDualStack)
	return s
}

// ep returns an endpoint with its conditions.
func ep(ip, node string, ready, terminating bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		Addresses: []string{ip}, NodeName: ptr.To(node),
		Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(ready || terminating), Terminating: ptr.To(terminating)},
	}
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
