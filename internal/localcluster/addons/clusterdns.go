package addons

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/podnet/podnet/internal/localcluster/controlplane"
	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/pki"
)

// The cluster DNS of a local cluster: a Deployment of `podnet dns` behind
// the kube-dns Service at the tenth address of the service range, as
// CoreDNS runs in a kubeadm cluster.
const (
	// ClusterDomain is the cluster's DNS zone.
	ClusterDomain = "cluster.local"
	// DNSNamespace, DNSDeployment and DNSService name the cluster DNS.
	DNSNamespace  = "kube-system"
	DNSDeployment = "podnet-dns"
	DNSService    = "kube-dns"
	// DNSReplicas is the Deployment's replica count.
	DNSReplicas = 2
	// DNSAppLabel is the label key and value of the DNS pods and Service
	// (k8s-app=kube-dns, what tools and NetworkPolicies look for).
	DNSAppLabelKey   = "k8s-app"
	DNSAppLabelValue = "kube-dns"
	// DNSHealthPort serves /health and /ready (and /metrics) in DNS pods.
	DNSHealthPort = 8080
	// DNSUser is the client certificate's user of the DNS pods, bound to
	// the ClusterRole DNSClusterRole.
	DNSUser        = "podnet:dns"
	DNSClusterRole = "podnet-dns"
	// DNSKubeconfigFile is the DNS pods' kubeconfig in the state directory.
	DNSKubeconfigFile = "dns.kubeconfig"
)

// DNSKubeconfigPath is the DNS pods' kubeconfig of the cluster in stateDir.
func DNSKubeconfigPath(stateDir string) string { return filepath.Join(stateDir, DNSKubeconfigFile) }

// NodeResolvConf is the content of every node's resolver configuration
// (plan.Config.NodeResolvConfPath): the world's DNS server only.
func NodeResolvConf(cfg *plan.Config) string {
	return "# The node's resolver in a podnet local cluster: the outside world's DNS server.\n" +
		"nameserver " + cfg.WorldDNSIP.String() + "\n"
}

// DNSRBACRules are what the cluster DNS may do: read the objects it turns
// into records.
func DNSRBACRules() []*rbacv1ac.PolicyRuleApplyConfiguration {
	read := []string{"get", "list", "watch"}
	return []*rbacv1ac.PolicyRuleApplyConfiguration{
		rbacv1ac.PolicyRule().WithAPIGroups("").
			WithResources("services", "pods", "namespaces", "nodes").WithVerbs(read...),
		rbacv1ac.PolicyRule().WithAPIGroups("discovery.k8s.io").
			WithResources("endpointslices").WithVerbs(read...),
		rbacv1ac.PolicyRule().WithAPIGroups("networking.k8s.io").
			WithResources("servicecidrs").WithVerbs(read...),
	}
}

// ApplyDNSRBAC makes ClusterRole podnet-dns and its binding to the user
// podnet:dns exist exactly as DNSRBACRules say (server-side apply).
func ApplyDNSRBAC(ctx context.Context, client kubernetes.Interface) error {
	labels := map[string]string{"app.kubernetes.io/managed-by": "podnet"}
	opts := metav1.ApplyOptions{FieldManager: controlplane.FieldManager, Force: true}
	role := rbacv1ac.ClusterRole(DNSClusterRole).WithLabels(labels).WithRules(DNSRBACRules()...)
	if _, err := client.RbacV1().ClusterRoles().Apply(ctx, role, opts); err != nil {
		return fmt.Errorf("apply ClusterRole %s: %w", DNSClusterRole, err)
	}
	binding := rbacv1ac.ClusterRoleBinding(DNSClusterRole).WithLabels(labels).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup("rbac.authorization.k8s.io").
			WithKind("ClusterRole").WithName(DNSClusterRole)).
		WithSubjects(rbacv1ac.Subject().WithAPIGroup("rbac.authorization.k8s.io").
			WithKind("User").WithName(DNSUser))
	if _, err := client.RbacV1().ClusterRoleBindings().Apply(ctx, binding, opts); err != nil {
		return fmt.Errorf("apply ClusterRoleBinding %s: %w", DNSClusterRole, err)
	}
	return nil
}

// IssueDNSCredentials issues the DNS pods' client certificate (user
// podnet:dns, no groups) from the cluster CA and writes
// <stateDir>/dns.kubeconfig for the API server at server. The DNS pods run
// in pod namespaces, whose traffic the node routes (and masquerades) to the
// API server's underlay address, the way the nodes' agents reach it.
func IssueDNSCredentials(stateDir, clusterName, server string) (string, error) {
	return issueCredentials(stateDir, clusterName, server, "dns", DNSUser, DNSKubeconfigPath(stateDir))
}

// issueCredentials issues a client certificate (user, no groups) from the
// cluster CA and writes a kubeconfig at path for the API server at server.
func issueCredentials(stateDir, clusterName, server, name, user, path string) (string, error) {
	ca, err := pki.LoadCA(plan.PKIDir(stateDir))
	if err != nil {
		return "", fmt.Errorf("%s credentials: %w", name, err)
	}
	kp, err := ca.IssueClient(name, user, nil)
	if err != nil {
		return "", fmt.Errorf("%s credentials: %w", name, err)
	}
	kc := pki.Kubeconfig{Cluster: clusterName, User: name, Server: server,
		CAPEM: ca.CertPEM, CertPEM: kp.CertPEM, KeyPEM: kp.KeyPEM}
	if err := kc.Write(path); err != nil {
		return "", fmt.Errorf("%s credentials: %w", name, err)
	}
	return path, nil
}

// DNSArgv is the command of the DNS pods' container: this machine's podnet
// binary serving the cluster zone on :53 and forwarding everything else to
// the world's DNS server.
func DNSArgv(cfg *plan.Config, podnet string) []string {
	return []string{podnet, "dns",
		"--kubeconfig", DNSKubeconfigPath(cfg.StateDir),
		"--listen", ":53",
		"--zone", ClusterDomain,
		"--upstream", netip.AddrPortFrom(cfg.WorldDNSIP, 53).String(),
		"--health-listen", ":" + strconv.Itoa(DNSHealthPort),
	}
}

// DNSObjects are the cluster DNS's Deployment and Service, derived from
// the address plan and the podnet binary's absolute path.
func DNSObjects(cfg *plan.Config, podnet string) (*appsv1.Deployment, *v1.Service) {
	labels := map[string]string{DNSAppLabelKey: DNSAppLabelValue, "app.kubernetes.io/name": DNSDeployment,
		"app.kubernetes.io/managed-by": "podnet"}
	selector := map[string]string{DNSAppLabelKey: DNSAppLabelValue}
	podLabels := map[string]string{DNSAppLabelKey: DNSAppLabelValue, "app.kubernetes.io/name": DNSDeployment}
	health := intstr.FromInt32(DNSHealthPort)
	dep := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: DNSDeployment, Namespace: DNSNamespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](DNSReplicas),
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: ptr.To(intstr.FromInt32(1))},
			},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: v1.PodSpec{
					// Credentials come from the client certificate in
					// dns.kubeconfig, not from a service account token.
					AutomountServiceAccountToken: ptr.To(false),
					// The DNS server must not resolve through itself.
					DNSPolicy:                     v1.DNSDefault,
					PriorityClassName:             "system-cluster-critical",
					TerminationGracePeriodSeconds: ptr.To[int64](10),
					Affinity: &v1.Affinity{PodAntiAffinity: &v1.PodAntiAffinity{
						PreferredDuringSchedulingIgnoredDuringExecution: []v1.WeightedPodAffinityTerm{{
							Weight: 100,
							PodAffinityTerm: v1.PodAffinityTerm{
								LabelSelector: &metav1.LabelSelector{MatchLabels: selector},
								TopologyKey:   "kubernetes.io/hostname",
							},
						}},
					}},
					Tolerations: []v1.Toleration{{Key: "CriticalAddonsOnly", Operator: v1.TolerationOpExists},
						{Key: "node-role.kubernetes.io/control-plane", Effect: v1.TaintEffectNoSchedule}},
					Containers: []v1.Container{{
						Name:    "dns",
						Image:   "podnet/podnet", // recorded only: the local runtime runs the command
						Command: DNSArgv(cfg, podnet),
						Ports: []v1.ContainerPort{
							{Name: "dns", ContainerPort: 53, Protocol: v1.ProtocolUDP},
							{Name: "dns-tcp", ContainerPort: 53, Protocol: v1.ProtocolTCP},
							{Name: "metrics", ContainerPort: DNSHealthPort, Protocol: v1.ProtocolTCP},
						},
						ReadinessProbe: &v1.Probe{
							ProbeHandler:  v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/ready", Port: health, Scheme: v1.URISchemeHTTP}},
							PeriodSeconds: 1, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 3,
						},
						LivenessProbe: &v1.Probe{
							ProbeHandler:        v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/health", Port: health, Scheme: v1.URISchemeHTTP}},
							InitialDelaySeconds: 10, PeriodSeconds: 10, TimeoutSeconds: 5, SuccessThreshold: 1, FailureThreshold: 5,
						},
					}},
				},
			},
		},
	}
	return dep, dnsService(cfg, selector)
}

// dnsService is the kube-dns Service at the tenth service IP.
func dnsService(cfg *plan.Config, selector map[string]string) *v1.Service {
	return &v1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: DNSService, Namespace: DNSNamespace,
			Labels: map[string]string{DNSAppLabelKey: DNSAppLabelValue, "kubernetes.io/name": "podnet-dns",
				"app.kubernetes.io/managed-by": "podnet"}},
		Spec: v1.ServiceSpec{
			Type:      v1.ServiceTypeClusterIP,
			ClusterIP: cfg.DNSServiceIP().String(),
			Selector:  selector,
			Ports: []v1.ServicePort{
				{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP, TargetPort: intstr.FromString("dns")},
				{Name: "dns-tcp", Port: 53, Protocol: v1.ProtocolTCP, TargetPort: intstr.FromString("dns-tcp")},
			},
		},
	}
}

// DeployDNS issues the DNS credentials, grants them, and creates (or
// updates) the DNS Deployment and the kube-dns Service.
func DeployDNS(ctx context.Context, cfg *plan.Config, client kubernetes.Interface, podnet string) error {
	if _, err := IssueDNSCredentials(cfg.StateDir, cfg.Name, cfg.APIServerURL()); err != nil {
		return err
	}
	if err := ApplyDNSRBAC(ctx, client); err != nil {
		return err
	}
	dep, svc := DNSObjects(cfg, podnet)
	if err := applyDeployment(ctx, client, dep); err != nil {
		return fmt.Errorf("DNS %w", err)
	}
	svcs := client.CoreV1().Services(DNSNamespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		old, err := svcs.Get(ctx, svc.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = svcs.Create(ctx, svc, metav1.CreateOptions{FieldManager: controlplane.FieldManager})
			return err
		} else if err != nil {
			return err
		}
		if old.Spec.ClusterIP != svc.Spec.ClusterIP {
			return fmt.Errorf("it has ClusterIP %s, want %s", old.Spec.ClusterIP, svc.Spec.ClusterIP)
		}
		svc.ResourceVersion = old.ResourceVersion
		svc.Spec.ClusterIPs = old.Spec.ClusterIPs
		_, err = svcs.Update(ctx, svc, metav1.UpdateOptions{FieldManager: controlplane.FieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("DNS Service %s/%s: %w", DNSNamespace, svc.Name, err)
	}
	return nil
}

// applyDeployment creates dep or updates it to dep, getting and updating
// again on a conflict: the controllers write the same object (status,
// revision annotations) at any moment.
func applyDeployment(ctx context.Context, client kubernetes.Interface, dep *appsv1.Deployment) error {
	deps := client.AppsV1().Deployments(dep.Namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		old, err := deps.Get(ctx, dep.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = deps.Create(ctx, dep, metav1.CreateOptions{FieldManager: controlplane.FieldManager})
			return err
		} else if err != nil {
			return err
		}
		dep.ResourceVersion = old.ResourceVersion
		_, err = deps.Update(ctx, dep, metav1.UpdateOptions{FieldManager: controlplane.FieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("Deployment %s/%s: %w", dep.Namespace, dep.Name, err)
	}
	return nil
}

// WaitDNSReady waits until the DNS Deployment has all replicas available.
func WaitDNSReady(ctx context.Context, client kubernetes.Interface, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := "not created yet"
	for {
		d, err := client.AppsV1().Deployments(DNSNamespace).Get(ctx, DNSDeployment, metav1.GetOptions{})
		if err == nil {
			if d.Status.AvailableReplicas >= DNSReplicas {
				return nil
			}
			last = fmt.Sprintf("%d of %d replicas available", d.Status.AvailableReplicas, DNSReplicas)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster DNS not ready after %s: %s", timeout, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
