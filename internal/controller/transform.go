package controller

import (
	"unique"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
)

// ServiceProxyNameLabel lets a Service opt out of a proxy (as with
// kube-proxy); Transform keeps it, the only Service label the agent reads.
const ServiceProxyNameLabel = "service.kubernetes.io/service-proxy-name"

// TriggerTimeAnnotation is the EndpointSlice annotation the proxy's
// programming-latency metric reads; Transform keeps it.
const TriggerTimeAnnotation = "endpoints.kubernetes.io/last-change-trigger-time"

// Transform is the informer transform of the agent's shared informer
// factory. The caches keep every Service, EndpointSlice and Node of the
// cluster, so it drops what nothing in the agent reads, before the object
// is stored:
//   - from every object its managedFields (often most of its size);
//   - from EndpointSlices their owner references, annotations but
//     TriggerTimeAnnotation, labels but the Service name and manager, and
//     of each endpoint its target reference (the pod), hostname, zone and
//     deprecated topology; node names are interned and the conditions
//     point at shared values;
//   - from Services their annotations (kubectl's last-applied
//     configuration among them), owner references, selector and labels
//     but ServiceProxyNameLabel;
//   - from Nodes the list of their images.
//
// Who reads what in the agent: the proxy (Services: ServiceProxyNameLabel,
// spec, status;
// slices: the service-name label, TriggerTimeAnnotation, ports,
// addresses, conditions, node names, hints), the LoadBalancer announcer
// (Service spec and status, slice conditions and node names), flow
// records (Service spec), routing, CNI config and WireGuard (Nodes:
// addresses, pod CIDRs, conditions, labels, annotations). A new reader of
// a dropped field must change this function first (TestTransform lists
// what is kept). Objects are changed in place: the informer hands the
// transform its own decoded copy.
func Transform(obj any) (any, error) {
	switch o := obj.(type) {
	case *discoveryv1.EndpointSlice:
		slimSlice(o)
	case *v1.Service:
		o.Annotations = nil
		o.OwnerReferences = nil
		o.Labels = keep(o.Labels, ServiceProxyNameLabel)
		o.Spec.Selector = nil
		o.Namespace = intern(o.Namespace)
	case *v1.Node:
		o.Status.Images = nil
	}
	if a, err := meta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}

func slimSlice(sl *discoveryv1.EndpointSlice) {
	sl.Namespace = intern(sl.Namespace)
	sl.OwnerReferences = nil
	sl.GenerateName = ""
	sl.Labels = keep(sl.Labels, discoveryv1.LabelServiceName, discoveryv1.LabelManagedBy)
	sl.Annotations = keep(sl.Annotations, TriggerTimeAnnotation)
	for i := range sl.Endpoints {
		e := &sl.Endpoints[i]
		e.TargetRef, e.Hostname, e.Zone, e.DeprecatedTopology = nil, nil, nil, nil
		if e.NodeName != nil {
			*e.NodeName = intern(*e.NodeName)
		}
		c := &e.Conditions
		c.Ready, c.Serving, c.Terminating = shared(c.Ready), shared(c.Serving), shared(c.Terminating)
	}
	for i := range sl.Ports {
		if p := sl.Ports[i].Name; p != nil {
			*p = intern(*p)
		}
	}
}

// keep returns m with only the given keys (nil when none is there), its
// values interned.
func keep(m map[string]string, keys ...string) map[string]string {
	var out map[string]string
	for _, k := range keys {
		if v, ok := m[k]; ok {
			if out == nil {
				out = make(map[string]string, len(keys))
			}
			out[k] = intern(v)
		}
	}
	return out
}

var (
	yes, no = true, false
)

// shared returns a pointer to one shared true or false (nil stays nil):
// cached objects are read-only, so every condition can point at the same
// two values instead of one allocation each.
func shared(b *bool) *bool {
	switch {
	case b == nil:
		return nil
	case *b:
		return &yes
	default:
		return &no
	}
}

// intern returns s backed by one copy shared by every equal string.
func intern(s string) string { return unique.Make(s).Value() }
