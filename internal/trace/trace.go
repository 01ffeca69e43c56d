// Package trace explains a connection end to end: how a packet from a pod
// reaches a target, and which part of the cluster's configuration decided
// it. It is the engine behind `podnet trace` (and the web UI's trace form):
// the command only parses flags and prints. Everything works on objects
// alone and touches no kernel state, so everything it says can be tested
// from objects; ReadCluster reads the API server (one list of each kind),
// and ParsePod and ParseTarget read the command's arguments.
//
// A connection's path has stages in the order a packet meets them, and
// each stage asks the model the component that enforces it is built on,
// so a trace and the cluster cannot disagree about semantics:
//
//	DNS (ResolveName: the pod's search path and ndots against package dns's
//	  Zone built from the cluster's records; names outside the zone are
//	  forwarded upstream, whose answer trace cannot know)
//	→ Service (ServiceFor: package proxy's ServicePort model, its
//	  InternalEndpoints for the source's node; no endpoint → reject)
//	→ per destination: route (RouteFor: package routing's DesiredRoutes;
//	  into the WireGuard device for the peers wireguard.PlanPeers gives
//	  a source node that publishes a key)
//	  and policy (Trace: policy.Compiled.Verdict at both ends)
//
// Cluster.Explain strings them together into an Explanation (text with
// String, data with encoding/json); CheckProbe compares it with a real
// connection made by package probe.
//
// The same target syntax serves podnet probe: ParseHostPort reads its
// TARGET:PORT and Resolve turns a pod or Service named as pod/NAME,
// svc/NAME, NS/pod/NAME or NS/svc/NAME into an address through the API
// server, never through a DNS resolver (this machine's would answer, not
// the cluster's).
//
// Dangerous: a trace is only as fresh as the objects it was given. It
// describes what the agents should have programmed, not what a particular
// node's kernel holds right now (--probe checks one connection for real).
// The routing mode is not in the API: the caller passes it.
package trace

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/podnet/podnet/internal/policy"
)

// ProtocolICMP is the protocol name for ICMP (and ICMPv6) echo: the
// evaluator treats any protocol without ports this way.
const ProtocolICMP v1.Protocol = "ICMP"

// Query is the connection to explain.
type Query struct {
	Src, Dst Endpoint
	// Protocol is TCP, UDP, SCTP or ProtocolICMP; Port the destination port
	// (0 for ICMP).
	Protocol v1.Protocol
	Port     int32
}

// Endpoint is one end of the connection.
type Endpoint struct {
	Addr netip.Addr
	// Pod is the pod at this end, or nil for an address that is no pod's.
	// Trace looks it up by address, as the evaluator does; give it only
	// for a host-network pod, which cannot be found that way (its address
	// is its node's).
	Pod *policy.Pod
}

// Result is the explanation of one connection.
type Result struct {
	Query Query
	// Policy is the NetworkPolicy stage.
	Policy PolicyStage
	// Notes are remarks that do not change the verdict (e.g. a policy that
	// decided it had parts the compiler could not use).
	Notes []string
}

// Allowed says whether every stage lets the connection through.
func (r *Result) Allowed() bool { return r.Policy.Allowed() }

// PolicyStage is the NetworkPolicy verdict at both ends.
type PolicyStage struct {
	Decision policy.Decision
	// EgressBypass and IngressBypass say why the source's or the
	// destination's side is allowed when the evaluator's answer does not
	// apply, because the packet never meets that end's rules (empty
	// otherwise).
	EgressBypass, IngressBypass string
}

// Allowed says whether both ends allow the connection.
func (s PolicyStage) Allowed() bool {
	return (s.EgressBypass != "" || s.Decision.Egress.Allowed) && (s.IngressBypass != "" || s.Decision.Ingress.Allowed)
}

// Trace explains q against the compiled policies. errs are the compiler's
// errors; those of policies that take part in the decision become notes.
func Trace(c *policy.Compiled, errs []policy.Error, q Query) *Result {
	q.Src.Addr, q.Dst.Addr = q.Src.Addr.Unmap(), q.Dst.Addr.Unmap()
	for _, e := range []*Endpoint{&q.Src, &q.Dst} {
		if e.Pod == nil || !e.Pod.HostNetwork {
			e.Pod = c.PodByIP(e.Addr)
		}
	}
	r := &Result{Query: q}
	r.Policy.Decision = c.Verdict(q.Src.Addr, q.Dst.Addr, q.Protocol, q.Port)
	src, dst := q.Src.Pod, q.Dst.Pod
	switch {
	case src != nil && dst != nil && src.Key() == dst.Key() && !src.HostNetwork:
		// Verdict cannot know: the packet never leaves the pod.
		r.Policy.EgressBypass = "a pod's traffic to itself stays inside it, not policed"
		r.Policy.IngressBypass = r.Policy.EgressBypass
	case src != nil && src.HostNetwork && dst != nil && !dst.HostNetwork && src.Node != "" && src.Node == dst.Node:
		// The node's own traffic to its pods never passes the forward
		// hook (see package policy).
		r.Policy.IngressBypass = "from " + src.Node + " itself (host-network " + src.Key() + "): a node's traffic to its own pods is not policed"
	}
	involved := map[string]bool{}
	for _, e := range []policy.End{r.Policy.Decision.Egress, r.Policy.Decision.Ingress} {
		for _, p := range e.IsolatedBy {
			involved[p] = true
		}
	}
	for _, e := range errs {
		if involved[e.Policy] {
			r.Notes = append(r.Notes, fmt.Sprintf("policy %s has parts podnet cannot use (they match nothing): %v", e.Policy, e.Err))
		}
	}
	return r
}

// ProtoPort is "tcp/80", or "icmp" for protocols without ports.
func ProtoPort(proto v1.Protocol, port int32) string {
	s := strings.ToLower(string(proto))
	if HasPorts(proto) {
		s += "/" + strconv.Itoa(int(port))
	}
	return s
}

// HasPorts says whether proto has ports (TCP, UDP, SCTP).
func HasPorts(proto v1.Protocol) bool {
	return proto == v1.ProtocolTCP || proto == v1.ProtocolUDP || proto == v1.ProtocolSCTP
}

// String is the explanation as text, as `podnet trace` prints it.
func (r *Result) String() string {
	var b strings.Builder
	r.Format(&b)
	return b.String()
}

// Format writes the explanation: a header line with the verdict, then one
// block per stage.
func (r *Result) Format(w io.Writer) {
	q := r.Query
	verdict := "DENIED"
	if r.Allowed() {
		verdict = "ALLOWED"
	}
	fmt.Fprintf(w, "%s -> %s %s: %s\n", describe(q.Src), describe(q.Dst), ProtoPort(q.Protocol, q.Port), verdict)
	formatPolicy(w, q, r.Policy)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

// describe names an endpoint: "ns/name (ip, node)" or the bare address.
func describe(e Endpoint) string {
	if e.Pod == nil {
		return e.Addr.String() + " (no pod)"
	}
	extra := ""
	if e.Pod.HostNetwork {
		extra = ", host network"
	}
	node := e.Pod.Node
	if node == "" {
		node = "no node"
	}
	return fmt.Sprintf("%s (%s, %s%s)", e.Pod.Key(), e.Addr, node, extra)
}

// formatPolicy writes the egress line (at the source) and the ingress line
// (at the destination).
func formatPolicy(w io.Writer, q Query, s PolicyStage) {
	what := ProtoPort(q.Protocol, q.Port)
	formatEnd(w, "egress ", q.Src, s.Decision.Egress, s.EgressBypass, what+" to "+q.Dst.Addr.String())
	formatEnd(w, "ingress", q.Dst, s.Decision.Ingress, s.IngressBypass, what+" from "+q.Src.Addr.String())
}

func formatEnd(w io.Writer, dir string, ep Endpoint, e policy.End, bypass, what string) {
	at := ep.Addr.String()
	if ep.Pod != nil {
		at = ep.Pod.Key()
	}
	prefix := "  " + dir + " at " + at + ": "
	indent := strings.Repeat(" ", len("  "+dir+" "))
	direction := strings.TrimSpace(dir)
	switch {
	case bypass != "":
		fmt.Fprintf(w, "%s%s -> allowed\n", prefix, bypass)
	case ep.Pod == nil:
		fmt.Fprintf(w, "%snot a pod address, never isolated -> allowed\n", prefix)
	case ep.Pod.HostNetwork:
		fmt.Fprintf(w, "%shost-network pod, not policed (its traffic is its node's) -> allowed\n", prefix)
	case !e.Isolated():
		fmt.Fprintf(w, "%sno policy selects this pod for %s -> allowed\n", prefix, direction)
	case e.Allowed:
		fmt.Fprintf(w, "%sisolated by %s\n", prefix, strings.Join(e.IsolatedBy, ", "))
		fmt.Fprintf(w, "%sallowed by %s\n", indent, strings.Join(e.AllowedBy, ", "))
	default:
		fmt.Fprintf(w, "%sisolated by %s; no rule allows %s -> DENIED\n", prefix, strings.Join(e.IsolatedBy, ", "), what)
	}
}

// PolicyView is the policy stage as data (for -o json and the web UI):
// the egress side at the source and the ingress side at the destination.
type PolicyView struct {
	Egress  EndView `json:"egress"`
	Ingress EndView `json:"ingress"`
}

// EndView is one end's verdict: the policies that isolate it, the rules
// that allow the connection, or why the end is not policed (Bypass).
type EndView struct {
	At         string   `json:"at"` // NS/NAME of the pod, or the address
	Allowed    bool     `json:"allowed"`
	IsolatedBy []string `json:"isolatedBy,omitempty"`
	AllowedBy  []string `json:"allowedBy,omitempty"`
	Bypass     string   `json:"bypass,omitempty"`
}

// view returns the policy stage as data.
func (r *Result) view() PolicyView {
	end := func(ep Endpoint, e policy.End, bypass string) EndView {
		v := EndView{At: ep.Addr.String(), IsolatedBy: e.IsolatedBy, AllowedBy: e.AllowedBy, Bypass: bypass}
		if ep.Pod != nil {
			v.At = ep.Pod.Key()
		}
		switch {
		case bypass != "":
		case ep.Pod == nil:
			v.Bypass = "not a pod address, never isolated"
		case ep.Pod.HostNetwork:
			v.Bypass = "host-network pod, not policed"
		}
		v.Allowed = v.Bypass != "" || e.Allowed || !e.Isolated()
		return v
	}
	return PolicyView{
		Egress:  end(r.Query.Src, r.Policy.Decision.Egress, r.Policy.EgressBypass),
		Ingress: end(r.Query.Dst, r.Policy.Decision.Ingress, r.Policy.IngressBypass),
	}
}
