package controlplane

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/client-go/kubernetes"
)

// AgentClusterRole is the ClusterRole of podnet's agents, bound to the group
// AgentGroup.
const AgentClusterRole = "podnet-agent"

// FieldManager owns the fields podnet applies.
const FieldManager = "podnet"

// AgentRBACRules are what a podnet agent may do: read the objects it turns
// into routes, nftables and DNS, write events, write Service status
// (LoadBalancer IPs) and patch Nodes (its WireGuard public key).
func AgentRBACRules() []*rbacv1ac.PolicyRuleApplyConfiguration {
	read := []string{"get", "list", "watch"}
	return []*rbacv1ac.PolicyRuleApplyConfiguration{
		rbacv1ac.PolicyRule().WithAPIGroups("").
			WithResources("nodes", "pods", "namespaces", "services").WithVerbs(read...),
		rbacv1ac.PolicyRule().WithAPIGroups("discovery.k8s.io").
			WithResources("endpointslices").WithVerbs(read...),
		rbacv1ac.PolicyRule().WithAPIGroups("networking.k8s.io").
			WithResources("networkpolicies").WithVerbs(read...),
		rbacv1ac.PolicyRule().WithAPIGroups("", "events.k8s.io").
			WithResources("events").WithVerbs("create", "patch"),
		rbacv1ac.PolicyRule().WithAPIGroups("").
			WithResources("services/status").WithVerbs("get", "list", "watch", "patch", "update"),
		// WireGuard: each agent publishes its public key on its own Node.
		rbacv1ac.PolicyRule().WithAPIGroups("").
			WithResources("nodes").WithVerbs("patch"),
	}
}

// ApplyAgentRBAC makes ClusterRole podnet-agent and its binding to group
// podnet:agents exist exactly as AgentRBACRules say, by server-side apply:
// repeating it changes nothing.
func ApplyAgentRBAC(ctx context.Context, client kubernetes.Interface) error {
	labels := map[string]string{"app.kubernetes.io/managed-by": "podnet"}
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
	role := rbacv1ac.ClusterRole(AgentClusterRole).WithLabels(labels).WithRules(AgentRBACRules()...)
	if _, err := client.RbacV1().ClusterRoles().Apply(ctx, role, opts); err != nil {
		return fmt.Errorf("apply ClusterRole %s: %w", AgentClusterRole, err)
	}
	binding := rbacv1ac.ClusterRoleBinding(AgentClusterRole).WithLabels(labels).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup("rbac.authorization.k8s.io").
			WithKind("ClusterRole").WithName(AgentClusterRole)).
		WithSubjects(rbacv1ac.Subject().WithAPIGroup("rbac.authorization.k8s.io").
			WithKind("Group").WithName(AgentGroup))
	if _, err := client.RbacV1().ClusterRoleBindings().Apply(ctx, binding, opts); err != nil {
		return fmt.Errorf("apply ClusterRoleBinding %s: %w", AgentClusterRole, err)
	}
	return nil
}
