package localcluster

import (
	"context"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/deploy"
	"github.com/podnet/podnet/internal/localcluster/controlplane"
)

// AgentNodePolicy names the admission policy (deploy/base/agent-node-
// policy.yaml) that holds the agents' Node patches to the
// podnet.io/wireguard-* annotations of their own Node.
const AgentNodePolicy = "podnet-agent-node-writes"

// ApplyAgentNodePolicy creates or updates that policy and its binding, as
// deploy/ has them.
func ApplyAgentNodePolicy(ctx context.Context, client kubernetes.Interface) error {
	objs, err := deploy.Decode(deploy.Rendered)
	if err != nil {
		return err
	}
	pol, ok := deploy.Find(objs, "ValidatingAdmissionPolicy", "", AgentNodePolicy).(*admissionregistrationv1.ValidatingAdmissionPolicy)
	if !ok {
		return fmt.Errorf("deploy/ has no ValidatingAdmissionPolicy %s", AgentNodePolicy)
	}
	bind, ok := deploy.Find(objs, "ValidatingAdmissionPolicyBinding", "", AgentNodePolicy).(*admissionregistrationv1.ValidatingAdmissionPolicyBinding)
	if !ok {
		return fmt.Errorf("deploy/ has no ValidatingAdmissionPolicyBinding %s", AgentNodePolicy)
	}
	api := client.AdmissionregistrationV1()
	if err := createOrUpdate(ctx, pol, api.ValidatingAdmissionPolicies().Create, api.ValidatingAdmissionPolicies().Get,
		api.ValidatingAdmissionPolicies().Update); err != nil {
		return fmt.Errorf("ValidatingAdmissionPolicy %s: %w", AgentNodePolicy, err)
	}
	if err := createOrUpdate(ctx, bind, api.ValidatingAdmissionPolicyBindings().Create, api.ValidatingAdmissionPolicyBindings().Get,
		api.ValidatingAdmissionPolicyBindings().Update); err != nil {
		return fmt.Errorf("ValidatingAdmissionPolicyBinding %s: %w", AgentNodePolicy, err)
	}
	return nil
}

// createOrUpdate creates obj, or replaces the spec of the one that exists.
func createOrUpdate[T interface {
	metav1.Object
	*P
}, P any](ctx context.Context, obj T,
	create func(context.Context, T, metav1.CreateOptions) (T, error),
	get func(context.Context, string, metav1.GetOptions) (T, error),
	update func(context.Context, T, metav1.UpdateOptions) (T, error)) error {
	_, err := create(ctx, obj, metav1.CreateOptions{FieldManager: controlplane.FieldManager})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	old, err := get(ctx, obj.GetName(), metav1.GetOptions{})
	if err != nil {
		return err
	}
	obj.SetResourceVersion(old.GetResourceVersion())
	_, err = update(ctx, obj, metav1.UpdateOptions{FieldManager: controlplane.FieldManager})
	return err
}
