package controller

import (
	"k8s.io/apimachinery/pkg/api/meta"
)

// Transform is the informer transform of the agent's shared informer
// factory: the caches keep every Service, EndpointSlice and Node of the
// cluster, and their managedFields are often most of an object's size
// while nothing in the agent reads them.
func Transform(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}
