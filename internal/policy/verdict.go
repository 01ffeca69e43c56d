package policy

import (
	"net/netip"

	v1 "k8s.io/api/core/v1"
)

// Decision is the verdict on one connection, with the reasons at both ends.
type Decision struct {
	// Allowed is true when both ends allow it.
	Allowed bool
	// Egress is the source's side, Ingress the destination's.
	Egress, Ingress End
}

// End is one end's side of a decision.
type End struct {
	// Pod is the pod at this end (nil: the address is no pod's).
	Pod *Pod
	// IsolatedBy are the policies that isolate the pod in this direction;
	// none means it is not isolated, and everything passes.
	IsolatedBy []string
	// AllowedBy are the rules that allow the connection at this end.
	AllowedBy []string
	Allowed   bool
}

// Isolated says whether the end's pod is isolated in the direction.
func (e End) Isolated() bool { return len(e.IsolatedBy) > 0 }

// Verdict decides a connection from src to dst with protocol proto (TCP,
// UDP, SCTP, or another name such as "ICMP" for protocols without ports)
// and destination port (0 for those). Egress is decided at the source pod,
// ingress at the destination pod; addresses that are no pod's, and
// host-network pods, are never isolated.
func (c *Compiled) Verdict(src, dst netip.Addr, proto v1.Protocol, port int32) Decision {
	src, dst = src.Unmap(), dst.Unmap()
	srcPod, dstPod := c.PodByIP(src), c.PodByIP(dst)
	d := Decision{
		Egress:  c.decide(Egress, srcPod, dst, dstPod, proto, port),
		Ingress: c.decide(Ingress, dstPod, src, dstPod, proto, port),
	}
	d.Allowed = d.Egress.Allowed && d.Ingress.Allowed
	return d
}

// decide is one end: pod is the end's pod, peer the other end's address,
// dstPod the destination pod (named ports resolve against it).
func (c *Compiled) decide(dir Direction, pod *Pod, peer netip.Addr, dstPod *Pod, proto v1.Protocol, port int32) End {
	e := End{Pod: pod}
	for _, p := range c.IsolatedBy(pod, dir) {
		e.IsolatedBy = append(e.IsolatedBy, p.Key)
	}
	if !e.Isolated() {
		e.Allowed = true
		return e
	}
	for _, r := range c.RulesFor(pod, dir) {
		if r.peerMatches(peer) && r.portMatches(dstPod, proto, port) {
			e.AllowedBy = append(e.AllowedBy, r.Ref())
		}
	}
	e.Allowed = len(e.AllowedBy) > 0
	return e
}

func (r *Rule) peerMatches(a netip.Addr) bool {
	if r.AllPeers {
		return true
	}
	for _, b := range r.Blocks {
		if b.Contains(a) {
			return true
		}
	}
	for _, p := range r.Pods {
		for _, ip := range p.IPs {
			if ip == a {
				return true
			}
		}
	}
	return false
}

func (r *Rule) portMatches(dstPod *Pod, proto v1.Protocol, port int32) bool {
	if r.AllPorts {
		return true
	}
	for _, s := range r.Ports {
		if s.Protocol != proto {
			continue
		}
		for _, pr := range s.resolve(dstPod) {
			if pr.Lo <= port && port <= pr.Hi {
				return true
			}
		}
	}
	return false
}

// resolve turns the spec into port ranges for a destination pod: a named
// port becomes that pod's container port of that name and protocol (none
// when it has none, or the destination is no pod).
func (s PortSpec) resolve(dst *Pod) []PortRange {
	switch {
	case s.Name != "":
		if dst == nil {
			return nil
		}
		var out []PortRange
		for _, np := range dst.Ports {
			if np.Name == s.Name && np.Protocol == s.Protocol {
				out = append(out, PortRange{s.Protocol, np.Port, np.Port})
			}
		}
		return out
	case s.Port == 0:
		return []PortRange{{s.Protocol, 0, 65535}}
	case s.EndPort != 0:
		return []PortRange{{s.Protocol, s.Port, s.EndPort}}
	}
	return []PortRange{{s.Protocol, s.Port, s.Port}}
}
