package pool

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The API's names.
const (
	Group    = "lb.podnet.io"
	Version  = "v1alpha1"
	Kind     = "LoadBalancerIPPool"
	Resource = "loadbalancerippools"
)

// GVR is the pools' resource, for the dynamic client and informer.
var GVR = schema.GroupVersionResource{Group: Group, Version: Version, Resource: Resource}

// Pool is one LoadBalancerIPPool.
type Pool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              Spec   `json:"spec"`
	Status            Status `json:"status,omitempty"`
}

// Spec is what a pool offers and to whom.
type Spec struct {
	// Blocks are the pool's addresses, IPv4 and IPv6 mixed.
	Blocks []Block `json:"blocks"`
	// AutoAssign (default true): false leaves the pool to Services that
	// ask for it (a requested address in it, or its name).
	AutoAssign *bool `json:"autoAssign,omitempty"`
	// ServiceSelector and NamespaceSelector, when set, restrict the pool
	// to Services whose labels (and whose namespace's labels) match.
	ServiceSelector   *metav1.LabelSelector `json:"serviceSelector,omitempty"`
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
}

// Block is a CIDR or an inclusive range Start..End.
type Block struct {
	CIDR  string `json:"cidr,omitempty"`
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

// Status is written by the controller.
type Status struct {
	Used       int64              `json:"used"`
	Free       int64              `json:"free"`
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ConditionValid is the pool condition that says whether every block is
// usable (False: which are not, and why).
const ConditionValid = "Valid"

// AutoAssigns reports whether the pool serves Services that did not ask
// for it.
func (p *Pool) AutoAssigns() bool { return p.Spec.AutoAssign == nil || *p.Spec.AutoAssign }
