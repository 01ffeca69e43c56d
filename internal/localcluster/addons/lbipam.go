package addons

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/podnet/podnet/deploy/crds"
	"github.com/podnet/podnet/internal/lb/pool"
	"github.com/podnet/podnet/internal/localcluster/controlplane"
	"github.com/podnet/podnet/internal/localcluster/plan"
)

// The LoadBalancer IPAM of a local cluster: a Deployment of
// `podnet controller` (one replica, Lease-elected, as it would run in a
// real cluster), the LoadBalancerIPPool CRD and a default pool from the
// plan's LB pool.
const (
	LBNamespace  = "kube-system"
	LBDeployment = "podnet-lb-controller"
	// LBUser is the client certificate's user of the controller pods,
	// bound to the ClusterRole and the Role LBRole.
	LBUser = "podnet:lb-controller"
	LBRole = "podnet-lb-controller"
	// LBLease is the Lease the replicas elect a leader with.
	LBLease = "podnet-lb-ipam"
	// LBHealthPort serves /healthz; LBMetricsPort /metrics.
	LBHealthPort  = 10266
	LBMetricsPort = 10265
	// DefaultPool names the pool made from plan.Config.LBPool.
	DefaultPool = "default"
	// LBKubeconfigFile is the controller pods' kubeconfig in the state
	// directory.
	LBKubeconfigFile = "lb-controller.kubeconfig"
)

// LBRBACRules are what the controller may do cluster-wide: read Services,
// Namespaces and pools, write Services' and pools' status, and record
// Events. Its Lease is granted by a Role in LBNamespace only.
func LBRBACRules() []*rbacv1ac.PolicyRuleApplyConfiguration {
	read := []string{"get", "list", "watch"}
	return []*rbacv1ac.PolicyRuleApplyConfiguration{
		rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("services", "namespaces").WithVerbs(read...),
		rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("services/status").WithVerbs("update", "patch"),
		rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("events").WithVerbs("create", "patch", "update"),
		rbacv1ac.PolicyRule().WithAPIGroups(pool.Group).WithResources(pool.Resource).WithVerbs(read...),
		rbacv1ac.PolicyRule().WithAPIGroups(pool.Group).WithResources(pool.Resource+"/status").WithVerbs("update", "patch"),
	}
}

// ApplyLBRBAC grants LBUser LBRBACRules and its Lease (server-side apply).
func ApplyLBRBAC(ctx context.Context, client kubernetes.Interface) error {
	labels := map[string]string{"app.kubernetes.io/managed-by": "podnet"}
	opts := metav1.ApplyOptions{FieldManager: controlplane.FieldManager, Force: true}
	subject := rbacv1ac.Subject().WithAPIGroup("rbac.authorization.k8s.io").WithKind("User").WithName(LBUser)
	ref := func(kind string) *rbacv1ac.RoleRefApplyConfiguration {
		return rbacv1ac.RoleRef().WithAPIGroup("rbac.authorization.k8s.io").WithKind(kind).WithName(LBRole)
	}
	if _, err := client.RbacV1().ClusterRoles().Apply(ctx, rbacv1ac.ClusterRole(LBRole).WithLabels(labels).WithRules(LBRBACRules()...), opts); err != nil {
		return fmt.Errorf("apply ClusterRole %s: %w", LBRole, err)
	}
	if _, err := client.RbacV1().ClusterRoleBindings().Apply(ctx, rbacv1ac.ClusterRoleBinding(LBRole).WithLabels(labels).
		WithRoleRef(ref("ClusterRole")).WithSubjects(subject), opts); err != nil {
		return fmt.Errorf("apply ClusterRoleBinding %s: %w", LBRole, err)
	}
	lease := rbacv1ac.PolicyRule().WithAPIGroups("coordination.k8s.io").WithResources("leases").WithVerbs("get", "create", "update")
	if _, err := client.RbacV1().Roles(LBNamespace).Apply(ctx, rbacv1ac.Role(LBRole, LBNamespace).WithLabels(labels).WithRules(lease), opts); err != nil {
		return fmt.Errorf("apply Role %s/%s: %w", LBNamespace, LBRole, err)
	}
	if _, err := client.RbacV1().RoleBindings(LBNamespace).Apply(ctx, rbacv1ac.RoleBinding(LBRole, LBNamespace).WithLabels(labels).
		WithRoleRef(ref("Role")).WithSubjects(subject), opts); err != nil {
		return fmt.Errorf("apply RoleBinding %s/%s: %w", LBNamespace, LBRole, err)
	}
	return nil
}

// LBArgv is the controller container's command.
func LBArgv(cfg *plan.Config, podnet string) []string {
	return []string{podnet, "controller",
		"--kubeconfig", filepath.Join(cfg.StateDir, LBKubeconfigFile),
		"--leader-elect", "--leader-elect-namespace", LBNamespace, "--leader-elect-name", LBLease,
		"--metrics-addr", ":" + strconv.Itoa(LBMetricsPort),
		"--health-addr", ":" + strconv.Itoa(LBHealthPort),
	}
}

// LBDeploymentObject is the controller's Deployment.
func LBDeploymentObject(cfg *plan.Config, podnet string) *appsv1.Deployment {
	labels := map[string]string{"app.kubernetes.io/name": LBDeployment, "app.kubernetes.io/managed-by": "podnet"}
	selector := map[string]string{"app.kubernetes.io/name": LBDeployment}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: LBDeployment, Namespace: LBNamespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: selector},
				Spec: v1.PodSpec{
					// Credentials come from the client certificate in the
					// kubeconfig, not from a service account token.
					AutomountServiceAccountToken:  ptr.To(false),
					PriorityClassName:             "system-cluster-critical",
					TerminationGracePeriodSeconds: ptr.To[int64](10),
					Tolerations: []v1.Toleration{{Key: "CriticalAddonsOnly", Operator: v1.TolerationOpExists},
						{Key: "node-role.kubernetes.io/control-plane", Effect: v1.TaintEffectNoSchedule}},
					Containers: []v1.Container{{
						Name: "controller", Image: "podnet/podnet", // recorded only: the local runtime runs the command
						Command: LBArgv(cfg, podnet),
						Ports: []v1.ContainerPort{{Name: "metrics", ContainerPort: LBMetricsPort, Protocol: v1.ProtocolTCP},
							{Name: "health", ContainerPort: LBHealthPort, Protocol: v1.ProtocolTCP}},
						LivenessProbe: &v1.Probe{
							ProbeHandler:        v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(LBHealthPort)}},
							InitialDelaySeconds: 10, PeriodSeconds: 10, TimeoutSeconds: 5, FailureThreshold: 5,
						},
					}},
				},
			},
		},
	}
}

// CreateDefaultPool creates the pool DefaultPool from the plan's
// LoadBalancer pool, unless it exists; the CRD must be installed.
func CreateDefaultPool(ctx context.Context, cfg *plan.Config, dyn dynamic.Interface) error {
	def := &pool.Pool{ObjectMeta: metav1.ObjectMeta{Name: DefaultPool, Labels: map[string]string{"app.kubernetes.io/managed-by": "podnet"}},
		Spec: pool.Spec{Blocks: []pool.Block{{CIDR: cfg.LBPool.Masked().String()}}}}
	if _, err := pool.Create(ctx, dyn, def); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// DeployLBIPAM installs the pool CRD, makes the default pool from the
// plan's LB pool when it does not exist (a user's edits stay), grants and
// issues the controller's credentials and deploys it.
func DeployLBIPAM(ctx context.Context, cfg *plan.Config, client kubernetes.Interface, dyn dynamic.Interface, podnet string) error {
	if err := pool.InstallCRDs(ctx, dyn, crds.All()...); err != nil {
		return err
	}
	if err := CreateDefaultPool(ctx, cfg, dyn); err != nil {
		return err
	}
	if _, err := issueCredentials(cfg.StateDir, cfg.Name, cfg.APIServerURL(), "lb-controller", LBUser,
		filepath.Join(cfg.StateDir, LBKubeconfigFile)); err != nil {
		return err
	}
	if err := ApplyLBRBAC(ctx, client); err != nil {
		return err
	}
	if err := applyDeployment(ctx, client, LBDeploymentObject(cfg, podnet)); err != nil {
		return fmt.Errorf("LoadBalancer IPAM %w", err)
	}
	return nil
}
