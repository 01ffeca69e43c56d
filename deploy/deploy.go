// Package deploy holds podnet's install manifests for a real cluster, as
// kustomize directories: base (namespace podnet-system: the agent
// DaemonSet, the LoadBalancer controller, RBAC, the CRDs of deploy/crds and
// ConfigMap podnet-config), dns (the cluster DNS in kube-system, a drop-in
// for CoreDNS) and the root kustomization combining both, rendered as
// podnet.yaml (`make deploy-render`; a test checks that it is the
// kustomize build of this directory). cleanup/ runs `podnet cleanup-node`
// on every node after an uninstall. docs/install.md explains
// them.
//
// The Go side is small: Rendered (podnet.yaml, embedded) and Decode,
// which reads manifests strictly into their typed objects, so that the
// tests here, in cmd/podnet (flags) and in internal/agent (RBAC) check
// the objects a cluster would get. Dangerous: the agent's and the DNS's
// args read every ConfigMap key as $(VARIABLE); a key missing from the
// ConfigMap stops the pod (CreateContainerConfigError), which is wanted:
// an optional key would pass the literal text "$(VARIABLE)" instead.
package deploy

import (
	"bufio"
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Rendered is podnet.yaml: everything of deploy/ in one file.
//
//go:embed podnet.yaml
var Rendered []byte

// Object is one decoded manifest: its typed object (a pointer, e.g.
// *appsv1.DaemonSet) with its kind and name.
type Object struct {
	Kind, Namespace, Name string
	Obj                   any
}

// kinds are the objects podnet's manifests may hold, by apiVersion/kind.
var kinds = map[string]func() any{
	"v1/Namespace":      func() any { return &v1.Namespace{} },
	"v1/ConfigMap":      func() any { return &v1.ConfigMap{} },
	"v1/ServiceAccount": func() any { return &v1.ServiceAccount{} },
	"v1/Service":        func() any { return &v1.Service{} },
	"apps/v1/DaemonSet": func() any { return &appsv1.DaemonSet{} },
	"apps/v1/Deployment": func() any {
		return &appsv1.Deployment{}
	},
	"policy/v1/PodDisruptionBudget":                                    func() any { return &policyv1.PodDisruptionBudget{} },
	"admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy":        func() any { return &admissionregistrationv1.ValidatingAdmissionPolicy{} },
	"admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding": func() any { return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{} },
	"rbac.authorization.k8s.io/v1/ClusterRole":                         func() any { return &rbacv1.ClusterRole{} },
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding":                  func() any { return &rbacv1.ClusterRoleBinding{} },
	"rbac.authorization.k8s.io/v1/Role":                                func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding":                         func() any { return &rbacv1.RoleBinding{} },
	"apiextensions.k8s.io/v1/CustomResourceDefinition":                 func() any { return &apiextensionsv1.CustomResourceDefinition{} },
}

// Decode reads the YAML documents of data (separated by ---) strictly
// into typed objects: an unknown kind, an unknown or duplicate field, or a
// document without kind is an error. Empty documents are skipped.
func Decode(data []byte) ([]Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []Object
	var errs []error
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		o, err := decodeOne(doc)
		if err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i, err))
			continue
		}
		if o != nil {
			out = append(out, *o)
		}
	}
	return out, errors.Join(errs...)
}

func decodeOne(doc []byte) (*Object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	if tm.APIVersion == "" && tm.Kind == "" {
		var v any
		if err := yaml.Unmarshal(doc, &v); err != nil || v != nil {
			return nil, errors.New("no apiVersion and kind")
		}
		return nil, nil // only comments
	}
	mk, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("unknown kind %s %s", tm.APIVersion, tm.Kind)
	}
	obj := mk()
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	m, ok := obj.(metav1.Object)
	if !ok || m.GetName() == "" {
		return nil, fmt.Errorf("%s without a name", tm.Kind)
	}
	return &Object{Kind: tm.Kind, Namespace: m.GetNamespace(), Name: m.GetName(), Obj: obj}, nil
}

// PodSpec returns the pod template's spec of a DaemonSet or Deployment.
func (o Object) PodSpec() (v1.PodSpec, bool) {
	switch w := o.Obj.(type) {
	case *appsv1.DaemonSet:
		return w.Spec.Template.Spec, true
	case *appsv1.Deployment:
		return w.Spec.Template.Spec, true
	}
	return v1.PodSpec{}, false
}

// Find returns the object of kind, namespace and name in objs, or nil.
func Find(objs []Object, kind, namespace, name string) any {
	for _, o := range objs {
		if o.Kind == kind && o.Namespace == namespace && o.Name == name {
			return o.Obj
		}
	}
	return nil
}
