package flow

import (
	"net/netip"
	"strings"
	"time"
)

// Record is one flow record. Its JSON form is the stable schema that
// docs/flows.md documents field by field: fields are only added, never
// renamed or retyped; empty ones are left out.
type Record struct {
	// Time the kernel reported the event (the agent's receive time).
	Time time.Time `json:"time"`
	// Node is the node whose agent made the record.
	Node string `json:"node"`
	// Event: "new" (a connection's first packet passed), "end" (conntrack
	// forgot the connection; has counters where accounting is on) or
	// "drop" (a packet was dropped or rejected).
	Event string `json:"event"`
	// Verdict: "forwarded" or "dropped" (a rejected packet is dropped
	// too; Reason says why).
	Verdict string `json:"verdict"`
	// Reason of a drop: "policy-denied" or "no-endpoints".
	Reason string `json:"reason,omitempty"`
	// Direction relative to this node's pod: "egress" (the source pod
	// runs here), "ingress" (the destination pod does); for a policy
	// drop, the direction whose policies dropped it.
	Direction string `json:"direction,omitempty"`
	// Protocol: "TCP", "UDP", "SCTP", "ICMP", "ICMPv6" or the number.
	Protocol string `json:"protocol"`
	// Source and Destination: the destination is the endpoint after a
	// Service translation (Service holds what the client addressed).
	Source      Endpoint `json:"source"`
	Destination Endpoint `json:"destination"`
	// Service the connection was addressed to, when it was translated
	// (or rejected for having no endpoints).
	Service *Service `json:"service,omitempty"`
	// Policies: for each end isolated in its direction, what decided.
	Policies []Policy `json:"policies,omitempty"`
	// Counters of an "end" record, when conntrack accounting is on.
	Counters *Counters `json:"counters,omitempty"`
}

// Endpoint is one end of a record.
type Endpoint struct {
	IP   netip.Addr `json:"ip"`
	Port uint16     `json:"port,omitempty"`
	// Namespace, Pod and Workload are set when the address is a pod's;
	// Workload is "Kind/name" of the pod's controller (a ReplicaSet of a
	// Deployment is named as the Deployment), empty for a bare pod.
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	Workload  string `json:"workload,omitempty"`
	// Node is the node the pod runs on.
	Node string `json:"node,omitempty"`
}

// Service is the Service a connection was addressed to.
type Service struct {
	Namespace string     `json:"namespace"`
	Name      string     `json:"name"`
	IP        netip.Addr `json:"ip"`
	Port      uint16     `json:"port"`
}

// Policy is the NetworkPolicy decision at one isolated end.
type Policy struct {
	// Direction of the end: "egress" (source) or "ingress" (destination).
	Direction string `json:"direction"`
	// IsolatedBy are the policies ("namespace/name") that select the pod
	// for the direction.
	IsolatedBy []string `json:"isolatedBy"`
	// AllowedBy are the rules ("namespace/name ingress[0]") that allow
	// the connection; none on a drop.
	AllowedBy []string `json:"allowedBy,omitempty"`
	// DefaultDeny is true when no rule allowed it: the isolation denied it.
	DefaultDeny bool `json:"defaultDeny,omitempty"`
}

// Counters are a finished connection's totals, per direction.
type Counters struct {
	PacketsOut uint64 `json:"packetsOut"` // source to destination
	BytesOut   uint64 `json:"bytesOut"`
	PacketsIn  uint64 `json:"packetsIn"` // replies
	BytesIn    uint64 `json:"bytesIn"`
}

// Verdicts and events.
const (
	Forwarded = "forwarded"
	Dropped   = "dropped"

	EventNew  = "new"
	EventEnd  = "end"
	EventDrop = "drop"
)

// PolicyText is a short form of the decisive policies for tables and
// aggregation keys: the allowing rules, or "DIRECTION default deny (the
// isolating policies)"; ends are joined with "; ".
func (r Record) PolicyText() string {
	var parts []string
	for _, p := range r.Policies {
		switch {
		case p.DefaultDeny:
			parts = append(parts, p.Direction+" default deny ("+strings.Join(p.IsolatedBy, ",")+")")
		case len(p.AllowedBy) > 0:
			parts = append(parts, strings.Join(p.AllowedBy, ","))
		}
	}
	return strings.Join(parts, "; ")
}
