package announce

import (
	"crypto/sha256"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Rank is the rendezvous (highest-random-weight) weight of node for vip:
// the first 8 bytes of SHA-256(vip bytes, 0, node name). Every agent
// computes the same value, so agents that agree on the eligible nodes agree
// on the owner without talking to each other or to the API server.
func Rank(vip netip.Addr, node string) uint64 {
	h := sha256.New()
	b := vip.As16()
	h.Write(b[:])
	h.Write([]byte{0})
	h.Write([]byte(node))
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// Outranks reports whether node a wins vip over node b: the higher Rank,
// and on the (practically impossible) equal rank the smaller name, so two
// agents never both win.
func Outranks(vip netip.Addr, a, b string) bool {
	ra, rb := Rank(vip, a), Rank(vip, b)
	if ra != rb {
		return ra > rb
	}
	return a < b
}

// OutranksMAC reports whether the host with MAC a wins vip over the one
// with MAC b in a conflict (two claims heard on the segment). It ranks by
// MAC rather than by node name because both claimants know both MACs but
// may not know each other's name (a node never heard in the heartbeat).
func OutranksMAC(vip netip.Addr, a, b net.HardwareAddr) bool {
	return Outranks(vip, a.String(), b.String())
}

// Owner returns the node among eligible that announces vip ("" when none
// is eligible). When a node leaves, only the VIPs it owned move; each
// moves to the node that ranked second for it, so they spread over the
// remaining nodes instead of landing on one.
func Owner(vip netip.Addr, eligible []string) string {
	best := ""
	for _, n := range eligible {
		if best == "" || Outranks(vip, n, best) {
			best = n
		}
	}
	return best
}

// Target is one LoadBalancer IP to announce and the nodes that may
// announce it as far as the API says (Ready, and for
// externalTrafficPolicy Local, with a ready local endpoint). Which of them
// are alive is the heartbeat's view, added at reconcile time.
type Target struct {
	VIP        netip.Addr
	Service    string // namespace/name, for status and logs
	Candidates []string
}

// Targets returns the VIPs of LoadBalancer Services whose status has an
// ingress IP, with their candidate nodes, sorted by VIP. readyNodes are
// the names of Ready nodes; slices are the Services' EndpointSlices keyed
// by the Service's namespace/name. A VIP on two Services (IP sharing) gets
// the nodes eligible for either.
func Targets(svcs []*v1.Service, readyNodes []string, slicesOf func(key string) []*discoveryv1.EndpointSlice) []Target {
	byVIP := map[netip.Addr]*Target{}
	for _, svc := range svcs {
		if svc.Spec.Type != v1.ServiceTypeLoadBalancer {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		cands := readyNodes
		if svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal {
			cands = localEndpointNodes(readyNodes, slicesOf(key))
		}
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			vip, err := netip.ParseAddr(ing.IP)
			if err != nil {
				continue
			}
			vip = vip.Unmap()
			t := byVIP[vip]
			if t == nil {
				t = &Target{VIP: vip, Service: key}
				byVIP[vip] = t
			}
			t.Candidates = union(t.Candidates, cands)
		}
	}
	out := make([]Target, 0, len(byVIP))
	for _, t := range byVIP {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b Target) int { return a.VIP.Compare(b.VIP) })
	return out
}

// localEndpointNodes returns the nodes of ready that host a ready endpoint
// of one of slices (an endpoint without a Ready condition is ready, as the
// EndpointSlice API says).
func localEndpointNodes(ready []string, slices []*discoveryv1.EndpointSlice) []string {
	has := map[string]bool{}
	for _, sl := range slices {
		for _, ep := range sl.Endpoints {
			if ep.NodeName == nil || (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) {
				continue
			}
			has[*ep.NodeName] = true
		}
	}
	var out []string
	for _, n := range ready {
		if has[n] {
			out = append(out, n)
		}
	}
	return out
}

func union(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// Eligible returns the candidates that are alive.
func Eligible(candidates []string, alive func(node string) bool) []string {
	var out []string
	for _, n := range candidates {
		if alive(n) {
			out = append(out, n)
		}
	}
	return out
}
