package dns

import (
	"net/netip"
	"slices"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// PodMode says how pod A records (a-b-c-d.NS.pod.ZONE) are answered, as
// CoreDNS's "pods" option: disabled (NXDOMAIN), insecure (any well-formed
// name answers its address) or verified (only addresses of pods in that
// namespace).
type PodMode string

// The pod record modes.
const (
	PodsDisabled PodMode = "disabled"
	PodsInsecure PodMode = "insecure"
	PodsVerified PodMode = "verified"
)

// Snapshot is the zone's data at one moment: slim copies of what the
// answers need, built from Services, EndpointSlices and Pods. It is
// immutable once built; the server swaps whole snapshots.
type Snapshot struct {
	services map[string]*service // "name.namespace"
	// namespaces that hold at least one Service (their NS.svc.ZONE name
	// exists).
	svcNamespaces map[string]bool
	// podIPs holds, per namespace, the addresses of its pods (verified
	// pod records).
	podIPs map[string]map[netip.Addr]bool
	// ptr maps addresses to the names they answer as (without the zone).
	ptr map[netip.Addr][]string
	// owned holds the keys of ptr, sorted: which reverse names have
	// records below them.
	owned []netip.Addr
	// ranges are the cluster's own address ranges (service CIDRs and the
	// nodes' pod CIDRs), masked, sorted and disjoint: reverse names inside
	// them are answered here even when nothing owns them.
	ranges []netip.Prefix
}

type service struct {
	namespace, name string
	clusterIPs      []netip.Addr
	headless        bool
	externalName    string
	ports           []port
	// endpoints of a headless Service: ready ones, or all serving ones
	// when the Service publishes not-ready addresses.
	endpoints []endpoint
}

type port struct {
	name, proto string // proto lower case: tcp, udp, sctp
	port        uint16
}

type endpoint struct {
	ip netip.Addr
	// name is the endpoint's label under the Service: its hostname, or
	// its address with dashes.
	name     string
	hostname bool
	ports    []port
}

// Build makes a snapshot from the objects and the cluster's address
// ranges (see ClusterRanges).
func Build(services []*v1.Service, slices_ []*discoveryv1.EndpointSlice, pods []*v1.Pod, ranges []netip.Prefix) *Snapshot {
	s := &Snapshot{services: map[string]*service{}, svcNamespaces: map[string]bool{}, podIPs: map[string]map[netip.Addr]bool{},
		ptr: map[netip.Addr][]string{}, ranges: disjoint(ranges)}
	bySvc := map[string][]*discoveryv1.EndpointSlice{}
	for _, sl := range slices_ {
		if name := sl.Labels[discoveryv1.LabelServiceName]; name != "" {
			k := strings.ToLower(name + "." + sl.Namespace)
			bySvc[k] = append(bySvc[k], sl)
		}
	}
	for _, svc := range services {
		key := strings.ToLower(svc.Name + "." + svc.Namespace)
		sv := &service{namespace: strings.ToLower(svc.Namespace), name: strings.ToLower(svc.Name)}
		s.svcNamespaces[sv.namespace] = true
		for _, p := range svc.Spec.Ports {
			proto := strings.ToLower(string(p.Protocol))
			if proto == "" {
				proto = "tcp"
			}
			sv.ports = append(sv.ports, port{strings.ToLower(p.Name), proto, uint16(p.Port)})
		}
		switch {
		case svc.Spec.Type == v1.ServiceTypeExternalName:
			sv.externalName = strings.ToLower(strings.TrimSuffix(svc.Spec.ExternalName, ".")) + "."
		case svc.Spec.ClusterIP == v1.ClusterIPNone:
			sv.headless = true
			sv.endpoints = endpointsOf(bySvc[key], svc.Spec.PublishNotReadyAddresses)
			for _, e := range sv.endpoints {
				s.ptr[e.ip] = append(s.ptr[e.ip], e.name+"."+sv.name+"."+sv.namespace+".svc")
			}
		default:
			ips := svc.Spec.ClusterIPs
			if len(ips) == 0 && svc.Spec.ClusterIP != "" {
				ips = []string{svc.Spec.ClusterIP}
			}
			for _, ip := range ips {
				if a, err := netip.ParseAddr(ip); err == nil {
					sv.clusterIPs = append(sv.clusterIPs, a.Unmap())
					s.ptr[a.Unmap()] = append(s.ptr[a.Unmap()], sv.name+"."+sv.namespace+".svc")
				}
			}
		}
		s.services[key] = sv
	}
	for _, p := range pods {
		if p.Spec.HostNetwork {
			continue
		}
		ns := strings.ToLower(p.Namespace)
		for _, ip := range p.Status.PodIPs {
			if a, err := netip.ParseAddr(ip.IP); err == nil {
				if s.podIPs[ns] == nil {
					s.podIPs[ns] = map[netip.Addr]bool{}
				}
				s.podIPs[ns][a.Unmap()] = true
			}
		}
	}
	for a := range s.ptr {
		slices.Sort(s.ptr[a])
		s.ptr[a] = slices.Compact(s.ptr[a])
		s.owned = append(s.owned, a)
	}
	slices.SortFunc(s.owned, netip.Addr.Compare)
	return s
}

// ClusterRanges lists the cluster's own address ranges as the API has
// them: the ServiceCIDRs' spec.cidrs (the API server makes one named
// "kubernetes" from --service-cluster-ip-range) and the Nodes'
// spec.podCIDRs. Unparsable entries are left out.
func ClusterRanges(cidrs []*networkingv1.ServiceCIDR, nodes []*v1.Node) []netip.Prefix {
	var out []netip.Prefix
	add := func(s string) {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	for _, c := range cidrs {
		for _, s := range c.Spec.CIDRs {
			add(s)
		}
	}
	for _, n := range nodes {
		pcs := n.Spec.PodCIDRs
		if len(pcs) == 0 && n.Spec.PodCIDR != "" {
			pcs = []string{n.Spec.PodCIDR}
		}
		for _, s := range pcs {
			add(s)
		}
	}
	return out
}

// disjoint returns the prefixes masked and sorted, without those inside
// another, so that a binary search finds the one that may hold an address.
func disjoint(ps []netip.Prefix) []netip.Prefix {
	sorted := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if p.IsValid() {
			sorted = append(sorted, p.Masked())
		}
	}
	slices.SortFunc(sorted, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	// Prefixes either nest or do not overlap: sorted by first address,
	// shorter first, one inside an earlier kept prefix is inside the last
	// one kept.
	var out []netip.Prefix
	for _, p := range sorted {
		if n := len(out); n > 0 && covers(out[n-1], p) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// covers says whether prefix p holds all of q.
func covers(p, q netip.Prefix) bool { return p.Bits() <= q.Bits() && p.Contains(q.Addr()) }

// inRanges says whether all of p lies inside one of the cluster's ranges.
func (s *Snapshot) inRanges(p netip.Prefix) bool {
	i := sort.Search(len(s.ranges), func(i int) bool { return s.ranges[i].Addr().Compare(p.Addr()) > 0 })
	return i > 0 && covers(s.ranges[i-1], p)
}

// ownsBelow says whether some address in p has PTR records.
func (s *Snapshot) ownsBelow(p netip.Prefix) bool {
	i := sort.Search(len(s.owned), func(i int) bool { return s.owned[i].Compare(p.Addr()) >= 0 })
	return i < len(s.owned) && p.Contains(s.owned[i])
}

// endpointsOf lists a headless Service's endpoints: ready ones (serving
// ones too with publishNotReadyAddresses), one per address.
func endpointsOf(sls []*discoveryv1.EndpointSlice, publishNotReady bool) []endpoint {
	var out []endpoint
	seen := map[netip.Addr]bool{}
	for _, sl := range sls {
		var ports []port
		for _, p := range sl.Ports {
			if p.Port == nil {
				continue
			}
			pp := port{proto: "tcp", port: uint16(*p.Port)}
			if p.Name != nil {
				pp.name = strings.ToLower(*p.Name)
			}
			if p.Protocol != nil {
				pp.proto = strings.ToLower(string(*p.Protocol))
			}
			ports = append(ports, pp)
		}
		for _, e := range sl.Endpoints {
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			if !ready && !publishNotReady {
				continue
			}
			for _, ip := range e.Addresses {
				a, err := netip.ParseAddr(ip)
				if err != nil || seen[a.Unmap()] {
					continue
				}
				a = a.Unmap()
				seen[a] = true
				ep := endpoint{ip: a, name: dashed(a), ports: ports}
				if e.Hostname != nil && *e.Hostname != "" {
					ep.name, ep.hostname = strings.ToLower(*e.Hostname), true
				}
				out = append(out, ep)
			}
		}
	}
	slices.SortFunc(out, func(a, b endpoint) int { return a.ip.Compare(b.ip) })
	return out
}

// dashed writes an address as one DNS label: 10.244.1.5 -> 10-244-1-5,
// fd00::5 -> fd00--5.
func dashed(a netip.Addr) string {
	if a.Is4() {
		return strings.ReplaceAll(a.String(), ".", "-")
	}
	return strings.ReplaceAll(a.String(), ":", "-")
}

// undash reads a dashed label back (false when it is no address).
func undash(label string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(strings.ReplaceAll(label, "-", ".")); err == nil && a.Is4() {
		return a, true
	}
	if a, err := netip.ParseAddr(strings.ReplaceAll(label, "-", ":")); err == nil && a.Is6() {
		return a, true
	}
	return netip.Addr{}, false
}
