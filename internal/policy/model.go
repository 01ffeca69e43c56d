package policy

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Pod is what policy needs of a Pod: where it runs, its labels, addresses
// and named container ports.
type Pod struct {
	Namespace, Name string
	Node            string
	Labels          map[string]string
	IPs             []netip.Addr
	HostNetwork     bool
	// Terminating is set while the pod is being deleted: its address may
	// already belong to a new pod, which then wins.
	Terminating bool
	// Ports are the named container ports (for named ports in rules).
	Ports []NamedPort
}

// NamedPort is a named containerPort.
type NamedPort struct {
	Name     string
	Protocol v1.Protocol
	Port     int32
}

// Key is "namespace/name".
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// Namespace is what policy needs of a Namespace.
type Namespace struct {
	Name   string
	Labels map[string]string
}

// PodFrom converts a Pod object. Pods without an address, and pods that
// finished (their address may already belong to another pod), give nil.
func PodFrom(p *v1.Pod) *Pod {
	if p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed || p.DeletionTimestamp != nil && len(p.Status.PodIPs) == 0 {
		return nil
	}
	out := &Pod{Namespace: p.Namespace, Name: p.Name, Node: p.Spec.NodeName, Labels: p.Labels, HostNetwork: p.Spec.HostNetwork,
		Terminating: p.DeletionTimestamp != nil}
	ips := p.Status.PodIPs
	if len(ips) == 0 && p.Status.PodIP != "" {
		ips = []v1.PodIP{{IP: p.Status.PodIP}}
	}
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip.IP); err == nil {
			out.IPs = append(out.IPs, a.Unmap())
		}
	}
	if len(out.IPs) == 0 {
		return nil
	}
	for _, c := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
		for _, cp := range c.Ports {
			if cp.Name == "" {
				continue
			}
			proto := cp.Protocol
			if proto == "" {
				proto = v1.ProtocolTCP
			}
			out.Ports = append(out.Ports, NamedPort{Name: cp.Name, Protocol: proto, Port: cp.ContainerPort})
		}
	}
	return out
}

// NamespaceFrom converts a Namespace object.
func NamespaceFrom(ns *v1.Namespace) *Namespace {
	return &Namespace{Name: ns.Name, Labels: ns.Labels}
}

// Direction is ingress (traffic to the selected pods) or egress (traffic
// from them).
type Direction int

// The two directions.
const (
	Ingress Direction = iota
	Egress
)

func (d Direction) String() string {
	if d == Egress {
		return "egress"
	}
	return "ingress"
}

// Range is an inclusive range of addresses of one family.
type Range struct{ Lo, Hi netip.Addr }

// Contains says whether a is in the range.
func (r Range) Contains(a netip.Addr) bool {
	return a.Is4() == r.Lo.Is4() && r.Lo.Compare(a) <= 0 && a.Compare(r.Hi) <= 0
}

func (r Range) String() string {
	if r.Lo == r.Hi {
		return r.Lo.String()
	}
	if p, ok := r.prefix(); ok {
		return p.String()
	}
	return r.Lo.String() + "-" + r.Hi.String()
}

// prefix returns the range as a prefix when it is one.
func (r Range) prefix() (netip.Prefix, bool) {
	for bits := 0; bits <= r.Lo.BitLen(); bits++ {
		p := netip.PrefixFrom(r.Lo, bits).Masked()
		if p.Addr() == r.Lo && lastAddr(p) == r.Hi {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// prefixRange returns the addresses of p.
func prefixRange(p netip.Prefix) Range {
	p = p.Masked()
	return Range{p.Addr(), lastAddr(p)}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// PortRange is an inclusive range of ports of one protocol.
type PortRange struct {
	Protocol v1.Protocol
	Lo, Hi   int32
}

func (p PortRange) String() string {
	if p.Lo == p.Hi {
		return strings.ToLower(string(p.Protocol)) + "/" + strconv.Itoa(int(p.Lo))
	}
	return strings.ToLower(string(p.Protocol)) + "/" + strconv.Itoa(int(p.Lo)) + "-" + strconv.Itoa(int(p.Hi))
}
