package pool

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

// FromObject converts what a dynamic client or informer holds into a Pool.
func FromObject(obj any) (*Pool, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("pool: unexpected object %T", obj)
	}
	p := &Pool{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, p); err != nil {
		return nil, fmt.Errorf("pool %s: %w", u.GetName(), err)
	}
	return p, nil
}

// ToObject converts p for a dynamic client.
func ToObject(p *Pool) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(p)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", p.Name, err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(Group + "/" + Version)
	u.SetKind(Kind)
	return u, nil
}

// Create creates p.
func Create(ctx context.Context, c dynamic.Interface, p *Pool) (*Pool, error) {
	u, err := ToObject(p)
	if err != nil {
		return nil, err
	}
	out, err := c.Resource(GVR).Create(ctx, u, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create pool %s: %w", p.Name, err)
	}
	return FromObject(out)
}

// Get returns the pool called name.
func Get(ctx context.Context, c dynamic.Interface, name string) (*Pool, error) {
	out, err := c.Resource(GVR).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get pool %s: %w", name, err)
	}
	return FromObject(out)
}

// UpdateStatus writes p's status (p carries the resourceVersion it was
// read at: a concurrent change fails with a conflict).
func UpdateStatus(ctx context.Context, c dynamic.Interface, p *Pool) error {
	u, err := ToObject(p)
	if err != nil {
		return err
	}
	if _, err := c.Resource(GVR).UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("pool %s status: %w", p.Name, err)
	}
	return nil
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// InstallCRDs creates or updates each CRD (YAML, as deploy/crds holds
// them) and waits until the API server serves it.
func InstallCRDs(ctx context.Context, c dynamic.Interface, crds ...[]byte) error {
	for _, y := range crds {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(y, &u.Object); err != nil {
			return fmt.Errorf("CRD: %w", err)
		}
		if err := applyCRD(ctx, c, u); err != nil {
			return err
		}
		if err := waitEstablished(ctx, c, u.GetName(), time.Minute); err != nil {
			return err
		}
	}
	return nil
}

func applyCRD(ctx context.Context, c dynamic.Interface, u *unstructured.Unstructured) error {
	crds := c.Resource(crdGVR)
	old, err := crds.Get(ctx, u.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = crds.Create(ctx, u, metav1.CreateOptions{})
	} else if err == nil {
		u.SetResourceVersion(old.GetResourceVersion())
		_, err = crds.Update(ctx, u, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("CRD %s: %w", u.GetName(), err)
	}
	return nil
}

// waitEstablished waits for the CRD's Established condition.
func waitEstablished(ctx context.Context, c dynamic.Interface, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		u, err := c.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, cond := range conds {
				m, _ := cond.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD %s not established after %s (last error: %v)", name, timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
