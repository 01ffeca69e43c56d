package ui

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Topology is what the page draws: the cluster's nodes, pods, Services
// and NetworkPolicies, each list sorted by namespace and name.
type Topology struct {
	Nodes    []Node          `json:"nodes"`
	Pods     []Pod           `json:"pods"`
	Services []Service       `json:"services"`
	Policies []NetworkPolicy `json:"policies"`
}

// Node is one node.
type Node struct {
	Name     string   `json:"name"`
	Address  string   `json:"address,omitempty"` // its InternalIP
	PodCIDRs []string `json:"podCIDRs,omitempty"`
	Ready    bool     `json:"ready"`
}

// Pod is one pod, where it runs and its address.
type Pod struct {
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	IP        string            `json:"ip,omitempty"`
	Node      string            `json:"node,omitempty"`
	Phase     string            `json:"phase"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// Service is one Service and its ports ("80/TCP->8080").
type Service struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Type      string   `json:"type"`
	ClusterIP string   `json:"clusterIP,omitempty"`
	Ports     []string `json:"ports,omitempty"`
}

// NetworkPolicy is one policy: the pods it selects and its directions.
type NetworkPolicy struct {
	Namespace   string   `json:"namespace"`
	Name        string   `json:"name"`
	PodSelector string   `json:"podSelector"` // "" selects every pod
	Types       []string `json:"types"`
}

// ReadTopology lists the objects from the API server.
func ReadTopology(ctx context.Context, client kubernetes.Interface) (Topology, error) {
	// Empty lists, not nil ones: the page iterates over JSON arrays.
	t := Topology{Nodes: []Node{}, Pods: []Pod{}, Services: []Service{}, Policies: []NetworkPolicy{}}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return t, fmt.Errorf("nodes: %w", err)
	}
	pods, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return t, fmt.Errorf("pods: %w", err)
	}
	svcs, err := client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return t, fmt.Errorf("services: %w", err)
	}
	nps, err := client.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return t, fmt.Errorf("networkpolicies: %w", err)
	}
	for _, n := range nodes.Items {
		t.Nodes = append(t.Nodes, nodeOf(&n))
	}
	for _, p := range pods.Items {
		t.Pods = append(t.Pods, Pod{Namespace: p.Namespace, Name: p.Name, IP: p.Status.PodIP, Node: p.Spec.NodeName,
			Phase: string(p.Status.Phase), Labels: p.Labels})
	}
	for _, s := range svcs.Items {
		t.Services = append(t.Services, serviceOf(&s))
	}
	for _, np := range nps.Items {
		t.Policies = append(t.Policies, policyOf(&np))
	}
	slices.SortFunc(t.Nodes, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(t.Pods, func(a, b Pod) int { return compareNames(a.Namespace, a.Name, b.Namespace, b.Name) })
	slices.SortFunc(t.Services, func(a, b Service) int { return compareNames(a.Namespace, a.Name, b.Namespace, b.Name) })
	slices.SortFunc(t.Policies, func(a, b NetworkPolicy) int { return compareNames(a.Namespace, a.Name, b.Namespace, b.Name) })
	return t, nil
}

func compareNames(ans, an, bns, bn string) int {
	if c := strings.Compare(ans, bns); c != 0 {
		return c
	}
	return strings.Compare(an, bn)
}

func nodeOf(n *v1.Node) Node {
	out := Node{Name: n.Name, PodCIDRs: n.Spec.PodCIDRs}
	for _, a := range n.Status.Addresses {
		if a.Type == v1.NodeInternalIP && out.Address == "" {
			out.Address = a.Address
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			out.Ready = c.Status == v1.ConditionTrue
		}
	}
	return out
}

func serviceOf(s *v1.Service) Service {
	out := Service{Namespace: s.Namespace, Name: s.Name, Type: string(s.Spec.Type), ClusterIP: s.Spec.ClusterIP}
	for _, p := range s.Spec.Ports {
		port := strconv.Itoa(int(p.Port)) + "/" + string(p.Protocol)
		if tp := p.TargetPort.String(); tp != "" && tp != "0" && tp != strconv.Itoa(int(p.Port)) {
			port += "->" + tp
		}
		out.Ports = append(out.Ports, port)
	}
	return out
}

func policyOf(np *networkingv1.NetworkPolicy) NetworkPolicy {
	out := NetworkPolicy{Namespace: np.Namespace, Name: np.Name, PodSelector: metav1.FormatLabelSelector(&np.Spec.PodSelector)}
	if out.PodSelector == "<none>" {
		out.PodSelector = ""
	}
	for _, t := range np.Spec.PolicyTypes {
		out.Types = append(out.Types, string(t))
	}
	if len(out.Types) == 0 { // the API server defaults them; a fake does not
		out.Types = []string{string(networkingv1.PolicyTypeIngress)}
		if len(np.Spec.Egress) > 0 {
			out.Types = append(out.Types, string(networkingv1.PolicyTypeEgress))
		}
	}
	return out
}
