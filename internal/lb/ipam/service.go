package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
)

// What a Service says to podnet's LoadBalancer IPAM.
const (
	// Class is podnet's spec.loadBalancerClass; Services without a class
	// are served too, Services of any other class are left alone.
	Class = "podnet.io/lb"
	// AnnotationIP requests addresses: one per family, comma-separated.
	// It replaces the deprecated spec.loadBalancerIP, which is read when
	// the annotation is absent.
	AnnotationIP = "lb.podnet.io/ip"
	// AnnotationSharingKey lets Services with the same key share an
	// address when their ports (per protocol) do not overlap.
	AnnotationSharingKey = "lb.podnet.io/sharing-key"
	// AnnotationPool names the pools (comma-separated) a Service takes its
	// addresses from; a named pool serves it even when its autoAssign is
	// false.
	AnnotationPool = "lb.podnet.io/pool"
)

// Served reports whether podnet assigns svc's LoadBalancer addresses.
func Served(svc *v1.Service) bool {
	return svc.Spec.Type == v1.ServiceTypeLoadBalancer &&
		(svc.Spec.LoadBalancerClass == nil || *svc.Spec.LoadBalancerClass == Class)
}

// Port is one port of a Service, per protocol: two Services that share an
// address must not both have one.
type Port struct {
	Protocol v1.Protocol
	Port     int32
}

// Service is what the allocator reads of one Service.
type Service struct {
	// Key is namespace/name.
	Key string
	// Created orders Services: an older Service wins a conflict.
	Created time.Time
	// Labels and NamespaceLabels are matched by pools' selectors.
	Labels, NamespaceLabels map[string]string
	// Families are the families wanted, in spec.ipFamilies order;
	// RequireAll is false for PreferDualStack (one family is enough).
	Families   []v1.IPFamily
	RequireAll bool
	// Requested are asked-for addresses, at most one per family.
	Requested []netip.Addr
	// Pools, when set, are the only pools the Service takes from.
	Pools      []string
	SharingKey string
	Ports      []Port
	// Current are the addresses in the Service's status now.
	Current []netip.Addr
	// Invalid, when set, says why the Service's request cannot be read;
	// it stays pending.
	Invalid string
}

// FromService returns what the allocator reads of svc, whose namespace has
// nsLabels; ok is false when podnet does not serve svc.
func FromService(svc *v1.Service, nsLabels map[string]string) (s Service, ok bool) {
	if !Served(svc) {
		return Service{}, false
	}
	s = Service{
		Key:     svc.Namespace + "/" + svc.Name,
		Created: svc.CreationTimestamp.Time, Labels: svc.Labels, NamespaceLabels: nsLabels,
		Families:   svc.Spec.IPFamilies,
		RequireAll: svc.Spec.IPFamilyPolicy == nil || *svc.Spec.IPFamilyPolicy != v1.IPFamilyPolicyPreferDualStack,
		SharingKey: svc.Annotations[AnnotationSharingKey],
	}
	if len(s.Families) == 0 {
		s.Families = []v1.IPFamily{v1.IPv4Protocol}
	}
	for _, p := range svc.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = v1.ProtocolTCP
		}
		s.Ports = append(s.Ports, Port{Protocol: proto, Port: p.Port})
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(ing.IP); err == nil {
			s.Current = append(s.Current, a)
		}
	}
	if names := svc.Annotations[AnnotationPool]; names != "" {
		for n := range strings.SplitSeq(names, ",") {
			s.Pools = append(s.Pools, strings.TrimSpace(n))
		}
	}
	s.Requested, s.Invalid = requested(svc, s.Families)
	return s, true
}

// requested parses the addresses svc asks for, or says why it cannot.
func requested(svc *v1.Service, families []v1.IPFamily) ([]netip.Addr, string) {
	text, where := svc.Annotations[AnnotationIP], "annotation "+AnnotationIP
	if _, ok := svc.Annotations[AnnotationIP]; !ok {
		text, where = svc.Spec.LoadBalancerIP, "spec.loadBalancerIP"
	}
	if strings.TrimSpace(text) == "" {
		return nil, ""
	}
	var out []netip.Addr
	for f := range strings.SplitSeq(text, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(f))
		if err != nil || a.Zone() != "" || a.Is4In6() {
			return nil, fmt.Sprintf("%s: %q is not an IP address", where, strings.TrimSpace(f))
		}
		if slices.ContainsFunc(out, func(b netip.Addr) bool { return b.BitLen() == a.BitLen() }) {
			return nil, fmt.Sprintf("%s: more than one %s address", where, family(a))
		}
		if !slices.Contains(families, family(a)) {
			return nil, fmt.Sprintf("%s: %s is %s but the Service's ipFamilies are %v", where, a, family(a), families)
		}
		out = append(out, a)
	}
	return out, ""
}

// family is a's IP family.
func family(a netip.Addr) v1.IPFamily {
	if a.Is4() {
		return v1.IPv4Protocol
	}
	return v1.IPv6Protocol
}
