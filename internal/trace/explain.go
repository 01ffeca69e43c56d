package trace

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/podnet/podnet/internal/dns"
	"github.com/podnet/podnet/internal/policy"
)

// Cluster is what a trace reads: the cluster's objects once, with the
// policies compiled and the DNS records built (see ReadCluster).
type Cluster struct {
	Pods     []v1.Pod
	Services []*v1.Service
	Slices   []*discoveryv1.EndpointSlice
	Nodes    []*v1.Node
	// Policy is the compiled NetworkPolicies; PolicyErrors the compiler's
	// complaints.
	Policy       *policy.Compiled
	PolicyErrors []policy.Error
	// Zone answers from the cluster's DNS records (dns.Build), for the
	// cluster domain Domain.
	Zone   *dns.Zone
	Domain string
	// RoutingMode is the agents' --routing-mode (direct or vxlan).
	RoutingMode string
}

// Request is one connection to explain.
type Request struct {
	Src    PodName
	Target Target
	// ResolvConf is the source pod's resolver configuration (nil: what
	// the kubelet writes for dnsPolicy ClusterFirst).
	ResolvConf *ResolvConf
}

// Explanation is a connection explained layer by layer, in the order a
// packet meets them: DNS, Service, then per destination the route and the
// policy verdicts at both ends.
type Explanation struct {
	Source   string      `json:"source"` // NS/NAME
	SrcAddr  netip.Addr  `json:"sourceAddr"`
	SrcNode  string      `json:"sourceNode"`
	Target   string      `json:"target"`
	Protocol v1.Protocol `json:"protocol"`
	Port     int32       `json:"port,omitempty"`
	DNS      *DNSStage   `json:"dns,omitempty"`
	// Service is set when the destination is a Service's cluster IP.
	Service *ServiceStage `json:"service,omitempty"`
	// Paths holds one entry per destination the packet may reach: each
	// endpoint the Service may choose, or the one address.
	Paths []Path `json:"paths"`
	// Verdict is the answer: see the Verdict constants.
	Verdict string   `json:"verdict"`
	Notes   []string `json:"notes,omitempty"`
}

// Verdicts of an Explanation.
const (
	VerdictAllowed = "allowed" // every path is allowed
	VerdictDenied  = "denied"  // no path is allowed
	// VerdictPartly: some endpoints the Service may choose allow it,
	// others do not.
	VerdictPartly   = "partly"
	VerdictRejected = "rejected" // the Service has no endpoint
	VerdictDropped  = "dropped"  // internalTrafficPolicy Local, none here
	// VerdictUnresolved: the name has no address in the cluster's
	// records (NXDOMAIN, or forwarded upstream).
	VerdictUnresolved = "unresolved"
)

// Path is the way to one destination.
type Path struct {
	Dst    netip.AddrPort `json:"dst"`
	Pod    string         `json:"pod,omitempty"` // NS/NAME of the destination pod
	Node   string         `json:"node,omitempty"`
	Route  RouteStage     `json:"route"`
	Policy PolicyView     `json:"policy"`
	// result is the policy stage, for formatting.
	result *Result
}

// Allowed says whether every path exists and allows the connection.
func (e *Explanation) Allowed() bool { return e.Verdict == VerdictAllowed }

// ErrNotFound is a source or target that the cluster does not have.
var ErrNotFound = errors.New("not found")

// Explain traces req through c.
func (c *Cluster) Explain(req Request) (*Explanation, error) {
	srcPod, err := c.findPod(req.Src)
	if err != nil {
		return nil, err
	}
	t := req.Target
	e := &Explanation{Source: req.Src.String(), SrcNode: srcPod.Node, Protocol: t.Protocol, Port: t.Port}
	dsts, err := c.destinations(req, srcPod, e)
	if err != nil {
		return nil, err
	}
	if e.DNS != nil && len(dsts) == 0 {
		e.Verdict = VerdictUnresolved
		if src, ok := firstOfFamily(srcPod.IPs, false); ok {
			e.SrcAddr = src
		}
		return e, nil
	}
	if e.SrcAddr, err = addrOfFamily(srcPod, dsts[0]); err != nil {
		return nil, err
	}
	for _, d := range dsts {
		if err := c.follow(e, srcPod, d); err != nil {
			return nil, err
		}
	}
	e.Verdict = verdictOf(e)
	return e, nil
}

// destinations turns the target into addresses, adding the DNS stage for
// a name.
func (c *Cluster) destinations(req Request, src *policy.Pod, e *Explanation) ([]netip.Addr, error) {
	t := req.Target
	switch {
	case t.Addr.IsValid():
		e.Target = t.Addr.String()
		return []netip.Addr{t.Addr}, nil
	case t.Name != "":
		return c.resolve(req, t.Name, e), nil
	case t.Object.Kind == KindService:
		e.Target = t.Object.String()
		a, err := c.serviceIP(t)
		return []netip.Addr{a}, err
	}
	p, err := c.findPod(t.Object.Pod())
	switch {
	case errors.Is(err, ErrNotFound) && t.Bare:
		return c.resolve(req, t.Object.Name, e), nil
	case err != nil:
		return nil, err
	}
	e.Target = t.Object.Key()
	return p.IPs[:1], nil
}

// resolve resolves name as the source pod would.
func (c *Cluster) resolve(req Request, name string, e *Explanation) []netip.Addr {
	rc := ClusterFirstResolvConf(req.Src.Namespace, c.Domain)
	if req.ResolvConf != nil {
		rc = *req.ResolvConf
	}
	e.Target = name
	e.DNS = ResolveName(c.Zone, rc, name, false)
	return e.DNS.Addrs
}

// follow adds the paths to d: through the Service whose cluster IP it is,
// or straight to it.
func (c *Cluster) follow(e *Explanation, src *policy.Pod, d netip.Addr) error {
	if svc := c.serviceWithIP(d); svc != nil && HasPorts(e.Protocol) {
		st := ServiceFor(src.Node, c.nodeZone(src.Node), svc, c.slicesOf(svc), d, e.Protocol, e.Port)
		if st == nil {
			return fmt.Errorf("service %s/%s has no port %d/%s (its ports: %s)", svc.Namespace, svc.Name, e.Port, e.Protocol, servicePorts(svc))
		}
		e.Service = st
		for _, ep := range st.Endpoints {
			e.Paths = append(e.Paths, c.path(e, src, ep.Addr.Addr(), ep.Addr.Port()))
		}
		return nil
	}
	if svc := c.serviceWithIP(d); svc != nil {
		e.Notes = append(e.Notes, fmt.Sprintf("%s is Service %s/%s's cluster IP: the proxy translates TCP, UDP and SCTP only, so nothing answers %s there",
			d, svc.Namespace, svc.Name, strings.ToLower(string(e.Protocol))))
	}
	e.Paths = append(e.Paths, c.path(e, src, d, uint16(e.Port)))
	return nil
}

// path explains one destination: the route and the policy verdicts.
func (c *Cluster) path(e *Explanation, src *policy.Pod, dst netip.Addr, port uint16) Path {
	q := Query{Src: Endpoint{Addr: e.SrcAddr, Pod: src}, Dst: Endpoint{Addr: dst}, Protocol: e.Protocol, Port: int32(port)}
	r := Trace(c.Policy, c.PolicyErrors, q)
	p := Path{Dst: netip.AddrPortFrom(dst, port), result: r, Policy: r.view()}
	if d := r.Query.Dst.Pod; d != nil {
		p.Pod, p.Node = d.Key(), d.Node
	}
	p.Route = RouteFor(c.RoutingMode, src.Node, dst, p.Node, c.Nodes)
	for _, n := range r.Notes {
		if !slices.Contains(e.Notes, n) {
			e.Notes = append(e.Notes, n)
		}
	}
	return p
}

func verdictOf(e *Explanation) string {
	if e.Service != nil && e.Service.Outcome == ServiceReject {
		return VerdictRejected
	}
	if e.Service != nil && e.Service.Outcome == ServiceDrop {
		return VerdictDropped
	}
	allowed := 0
	for _, p := range e.Paths {
		if p.result.Allowed() {
			allowed++
		}
	}
	switch allowed {
	case len(e.Paths):
		return VerdictAllowed
	case 0:
		return VerdictDenied
	}
	return VerdictPartly
}

func firstOfFamily(as []netip.Addr, v6 bool) (netip.Addr, bool) {
	for _, a := range as {
		if a.Is6() == v6 {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// String is the explanation as text, as `podnet trace` prints it.
func (e *Explanation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s, %s) -> %s %s: %s\n", e.Source, e.SrcAddr, e.SrcNode, e.Target, ProtoPort(e.Protocol, e.Port), strings.ToUpper(e.Verdict))
	if e.DNS != nil {
		e.DNS.format(&b)
	}
	if e.Service != nil {
		e.Service.format(&b)
	}
	for _, p := range e.Paths {
		dst := p.Dst.String()
		if !HasPorts(e.Protocol) {
			dst = p.Dst.Addr().String()
		}
		if p.Pod != "" {
			dst += " (" + p.Pod + ")"
		}
		verdict := "DENIED"
		if p.result.Allowed() {
			verdict = "ALLOWED"
		}
		fmt.Fprintf(&b, "to %s: %s\n", dst, verdict)
		p.Route.format(&b)
		formatPolicy(&b, p.result.Query, p.result.Policy)
	}
	for _, n := range e.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}
