package status

import (
	"slices"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
)

// State is where one node stands with one NetworkPolicy's current version.
type State string

const (
	// InForce: the node enforces the current generation as written.
	InForce State = "InForce"
	// Partial: the node enforces the current generation, but the parts
	// it cannot parse match nothing (there was no good version to keep).
	Partial State = "Partial"
	// Lagging: the node enforces an older version, or none, and reports
	// no error: its sync has not caught up yet.
	Lagging State = "Lagging"
	// Failed: the node enforces an older version, or none, because the
	// current one cannot be used or its last sync failed (Error says).
	Failed State = "Failed"
	// Unknown: the node's agent did not answer (Error says why).
	Unknown State = "Unknown"
)

// NodeStatus is one node's state for one policy.
type NodeStatus struct {
	Node  string `json:"node"`
	State State  `json:"state"`
	// InForce is the version the node enforces (nil: none), since Since.
	InForce *Version  `json:"inForce,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	Error   string    `json:"error,omitempty"`
}

// PolicyStatus is one NetworkPolicy (its current version in the API) and
// every node's state for it, sorted by node.
type PolicyStatus struct {
	Namespace string       `json:"namespace"`
	Name      string       `json:"name"`
	Current   Version      `json:"current"`
	Nodes     []NodeStatus `json:"nodes"`
}

// InForceOn counts the nodes in state InForce.
func (p PolicyStatus) InForceOn() int {
	n := 0
	for _, s := range p.Nodes {
		if s.State == InForce {
			n++
		}
	}
	return n
}

// Since is when the current version was in force on every node that
// enforces it (the latest of their times; zero when none does).
func (p PolicyStatus) Since() time.Time {
	var t time.Time
	for _, s := range p.Nodes {
		if s.State == InForce && s.Since.After(t) {
			t = s.Since
		}
	}
	return t
}

// Aggregate joins the policies (as the API server has them now) with the
// agents' views; unreachable names the nodes that gave none, with why.
// Policies come out sorted by namespace and name.
func Aggregate(policies []networkingv1.NetworkPolicy, views []NodeView, unreachable map[string]string) []PolicyStatus {
	type nodeIndex struct {
		view *NodeView
		by   map[string]*Policy
	}
	idx := make([]nodeIndex, len(views))
	for i := range views {
		idx[i] = nodeIndex{view: &views[i], by: make(map[string]*Policy, len(views[i].Policies))}
		for j := range views[i].Policies {
			p := &views[i].Policies[j]
			idx[i].by[key(p.Namespace, p.Name)] = p
		}
	}
	out := make([]PolicyStatus, 0, len(policies))
	for i := range policies {
		np := &policies[i]
		ps := PolicyStatus{Namespace: np.Namespace, Name: np.Name, Current: versionOf(np)}
		for _, n := range idx {
			ps.Nodes = append(ps.Nodes, nodeState(ps.Current, n.view, n.by[key(np.Namespace, np.Name)]))
		}
		for node, why := range unreachable {
			ps.Nodes = append(ps.Nodes, NodeStatus{Node: node, State: Unknown, Error: why})
		}
		slices.SortFunc(ps.Nodes, func(a, b NodeStatus) int { return strings.Compare(a.Node, b.Node) })
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b PolicyStatus) int {
		return strings.Compare(key(a.Namespace, a.Name), key(b.Namespace, b.Name))
	})
	return out
}

// nodeState is view's node's state for the current version; p is its
// entry for the policy (nil: it has none).
func nodeState(current Version, view *NodeView, p *Policy) NodeStatus {
	s := NodeStatus{Node: view.Node, State: Lagging}
	if p != nil && p.InForce != nil {
		in := *p.InForce
		s.InForce, s.Since = &in, p.Since
	}
	switch {
	case s.InForce != nil && sameRules(*s.InForce, current) && p.Error != "":
		s.State, s.Error = Partial, p.Error
	case s.InForce != nil && sameRules(*s.InForce, current):
		s.State = InForce
	case p != nil && p.Error != "" && sameRules(p.Seen, current):
		s.State, s.Error = Failed, p.Error
	case view.LastError != "":
		s.State, s.Error = Failed, "last sync failed: "+view.LastError
	}
	return s
}
