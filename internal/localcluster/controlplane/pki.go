package controlplane

import (
	"fmt"
	"net/netip"
	"path/filepath"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/pki"
)

// Identities of the control plane's clients (DESIGN-NOTES.md, "Identities").
const (
	AdminUser             = "kubernetes-admin"
	AdminGroup            = "system:masters"
	ControllerManagerUser = "system:kube-controller-manager"
	SchedulerUser         = "system:kube-scheduler"
	NodeUserPrefix        = "system:node:"
	NodesGroup            = "system:nodes"
	AgentUserPrefix       = "podnet-agent:"
	AgentGroup            = "podnet:agents"
	// KubeletClientUser is the identity kube-apiserver presents to the
	// nodes' kubelet API (exec, attach, logs, port-forward, node proxy):
	// the only user a pod runtime's kubelet API lets in. No group: it
	// is no cluster administrator.
	KubeletClientUser = "kube-apiserver-kubelet-client"
	// KubeProxyUser is the identity of kube-proxy, when a cluster runs it:
	// Kubernetes' bootstrap policy binds it to ClusterRole
	// NodeProxierClusterRole.
	KubeProxyUser          = "system:kube-proxy"
	NodeProxierClusterRole = "system:node-proxier"
)

// Files are the paths Start writes under StateDir.
type Files struct {
	PKIDir                       string // pki/
	CACert, CAKey                string // pki/ca.{crt,key}
	APIServerCert, APIServerKey  string // pki/apiserver.{crt,key}
	SAKey, SAPub                 string // pki/sa.{key,pub}
	AdminCert, AdminKey          string // pki/admin.{crt,key}
	ControllerManagerServingCert string // pki/controller-manager-serving.crt (its /healthz)
	ControllerManagerServingKey  string
	SchedulerServingCert         string // pki/scheduler-serving.crt (its /readyz)
	SchedulerServingKey          string
	KubeletClientCert            string // pki/apiserver-kubelet-client.crt (KubeletClientUser)
	KubeletClientKey             string

	AdminKubeconfig             string // kubeconfig
	ControllerManagerKubeconfig string // kubeconfigs/controller-manager.kubeconfig
	SchedulerKubeconfig         string // kubeconfigs/scheduler.kubeconfig
	SchedulerConfig             string // kube-scheduler.yaml (KubeSchedulerConfiguration)
	EtcdDataDir                 string // etcd/
}

// ensurePKI makes (or reuses) the CA, every control-plane certificate,
// the service-account key pair, the kubeconfigs and the scheduler's
// configuration file.
func ensurePKI(cfg *Config) (*Files, error) {
	dir := plan.PKIDir(cfg.StateDir)
	ca, err := pki.EnsureCA(dir)
	if err != nil {
		return nil, err
	}
	f := &Files{
		PKIDir:          dir,
		CACert:          ca.CertFile(),
		CAKey:           ca.KeyFile(),
		AdminKubeconfig: plan.AdminKubeconfigPath(cfg.StateDir),
		SchedulerConfig: filepath.Join(cfg.StateDir, "kube-scheduler.yaml"),
		EtcdDataDir:     filepath.Join(cfg.StateDir, "etcd"),
	}

	apiIPs := append([]netip.Addr{cfg.APIAddress}, cfg.ExtraAPIAddresses...)
	apiIPs = append(apiIPs, netip.MustParseAddr("127.0.0.1"), cfg.ServiceCIDR.Masked().Addr().Next())
	serving, err := ca.IssueServing("apiserver", "kube-apiserver", []string{
		"kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local", "localhost",
	}, uniqueAddrs(apiIPs))
	if err != nil {
		return nil, err
	}
	f.APIServerCert, f.APIServerKey = serving.CertFile, serving.KeyFile

	local := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	kcmServing, err := ca.IssueServing("controller-manager-serving", "kube-controller-manager", []string{"localhost"}, local)
	if err != nil {
		return nil, err
	}
	f.ControllerManagerServingCert, f.ControllerManagerServingKey = kcmServing.CertFile, kcmServing.KeyFile
	schedServing, err := ca.IssueServing("scheduler-serving", "kube-scheduler", []string{"localhost"}, local)
	if err != nil {
		return nil, err
	}
	f.SchedulerServingCert, f.SchedulerServingKey = schedServing.CertFile, schedServing.KeyFile

	kubeletClient, err := ca.IssueClient("apiserver-kubelet-client", KubeletClientUser, nil)
	if err != nil {
		return nil, err
	}
	f.KubeletClientCert, f.KubeletClientKey = kubeletClient.CertFile, kubeletClient.KeyFile

	if f.SAKey, f.SAPub, err = pki.EnsureServiceAccountKey(dir); err != nil {
		return nil, err
	}

	server := cfg.APIServerURL()
	kubeconfigs := []struct {
		name, cn string
		orgs     []string
		path     *string
	}{
		{"admin", AdminUser, []string{AdminGroup}, &f.AdminKubeconfig},
		{"controller-manager", ControllerManagerUser, nil, &f.ControllerManagerKubeconfig},
		{"scheduler", SchedulerUser, nil, &f.SchedulerKubeconfig},
	}
	for _, k := range kubeconfigs {
		kp, err := ca.IssueClient(k.name, k.cn, k.orgs)
		if err != nil {
			return nil, err
		}
		if k.name == "admin" {
			f.AdminCert, f.AdminKey = kp.CertFile, kp.KeyFile
		} else {
			*k.path = filepath.Join(plan.KubeconfigDir(cfg.StateDir), k.name+".kubeconfig")
		}
		kc := pki.Kubeconfig{Cluster: cfg.ClusterName, User: k.name, Server: server,
			CAPEM: ca.CertPEM, CertPEM: kp.CertPEM, KeyPEM: kp.KeyPEM}
		if err := kc.Write(*k.path); err != nil {
			return nil, err
		}
	}
	if err := plan.WriteFile(f.SchedulerConfig, schedulerConfig(f.SchedulerKubeconfig), 0o644); err != nil {
		return nil, fmt.Errorf("scheduler config: %w", err)
	}
	return f, nil
}

// IssueNodeCredentials issues the client certificates of one node's pod
// runtime (system:node:<node>, group system:nodes) and agent
// (podnet-agent:<node>, group podnet:agents) from the cluster CA in
// stateDir/pki, and writes their kubeconfigs, kubeconfigs/node-<node> and
// kubeconfigs/agent-<node>.kubeconfig, pointing at the API server of the
// admin kubeconfig. The control plane's PKI must exist (Start
// makes it). Calling it again reuses valid files.
func IssueNodeCredentials(stateDir, nodeName string) (runtimeKubeconfig, agentKubeconfig string, err error) {
	paths, err := issueKubeconfigs(stateDir, nodeName,
		clientIdentity{"node-" + nodeName, NodeUserPrefix + nodeName, NodesGroup},
		clientIdentity{"agent-" + nodeName, AgentUserPrefix + nodeName, AgentGroup})
	if err != nil {
		return "", "", err
	}
	return paths[0], paths[1], nil
}

// IssueKubeProxyCredentials issues the client certificate of one node's
// kube-proxy, user system:kube-proxy (in no group: Kubernetes' bootstrap
// ClusterRoleBinding system:node-proxier grants that user the ClusterRole
// of the same name), and writes kubeconfigs/kube-proxy-<node>.kubeconfig,
// as IssueNodeCredentials does.
func IssueKubeProxyCredentials(stateDir, nodeName string) (kubeconfig string, err error) {
	paths, err := issueKubeconfigs(stateDir, nodeName, clientIdentity{"kube-proxy-" + nodeName, KubeProxyUser, ""})
	if err != nil {
		return "", err
	}
	return paths[0], nil
}

// clientIdentity is one client certificate (pki/<file>.{crt,key}) and its
// kubeconfig, kubeconfigs/<file>.kubeconfig; group may be empty.
type clientIdentity struct{ file, cn, group string }

// issueKubeconfigs issues the identities of a node's components from the
// cluster CA in stateDir/pki and writes their kubeconfigs, pointing at the
// API server of the admin kubeconfig. It returns their paths in order.
func issueKubeconfigs(stateDir, nodeName string, ids ...clientIdentity) ([]string, error) {
	if errs := validation.IsDNS1123Subdomain(nodeName); len(errs) > 0 {
		return nil, fmt.Errorf("node credentials: node name %q: %s", nodeName, errs[0])
	}
	ca, err := pki.LoadCA(plan.PKIDir(stateDir))
	if err != nil {
		return nil, fmt.Errorf("node credentials for %s: %w", nodeName, err)
	}
	admin, err := clientcmd.LoadFromFile(plan.AdminKubeconfigPath(stateDir))
	if err != nil {
		return nil, fmt.Errorf("node credentials for %s: %w", nodeName, err)
	}
	ctx, ok := admin.Contexts[admin.CurrentContext]
	if !ok || admin.Clusters[ctx.Cluster] == nil {
		return nil, fmt.Errorf("node credentials for %s: %s has no current cluster", nodeName, plan.AdminKubeconfigPath(stateDir))
	}
	server := admin.Clusters[ctx.Cluster].Server
	var paths []string
	for _, id := range ids {
		var orgs []string
		if id.group != "" {
			orgs = []string{id.group}
		}
		kp, err := ca.IssueClient(id.file, id.cn, orgs)
		if err != nil {
			return nil, fmt.Errorf("node credentials for %s: %w", nodeName, err)
		}
		path := filepath.Join(plan.KubeconfigDir(stateDir), id.file+".kubeconfig")
		kc := pki.Kubeconfig{Cluster: ctx.Cluster, User: id.file, Server: server,
			CAPEM: ca.CertPEM, CertPEM: kp.CertPEM, KeyPEM: kp.KeyPEM}
		if err := kc.Write(path); err != nil {
			return nil, fmt.Errorf("node credentials for %s: %w", nodeName, err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// KubeletServing is what a node's kubelet API serves and trusts.
type KubeletServing struct {
	// CertFile and KeyFile: pki/kubelet-<node>.{crt,key}, CN
	// system:node:<node>, valid for the node's name and InternalIP.
	CertFile, KeyFile string
	// ClientCAFile is the cluster CA, which signed the API server's
	// kubelet client certificate.
	ClientCAFile string
	// AllowedUser is KubeletClientUser.
	AllowedUser string
}

// IssueKubeletServing issues node's kubelet API serving certificate from
// the cluster CA in stateDir/pki, for the name and address kube-apiserver
// dials (--kubelet-preferred-address-types=InternalIP, verified against
// --kubelet-certificate-authority). Calling it again reuses valid files.
func IssueKubeletServing(stateDir, nodeName string, nodeIP netip.Addr) (*KubeletServing, error) {
	if errs := validation.IsDNS1123Subdomain(nodeName); len(errs) > 0 {
		return nil, fmt.Errorf("kubelet serving certificate: node name %q: %s", nodeName, errs[0])
	}
	ca, err := pki.LoadCA(plan.PKIDir(stateDir))
	if err != nil {
		return nil, fmt.Errorf("kubelet serving certificate for %s: %w", nodeName, err)
	}
	kp, err := ca.IssueServing("kubelet-"+nodeName, NodeUserPrefix+nodeName, []string{nodeName}, []netip.Addr{nodeIP})
	if err != nil {
		return nil, fmt.Errorf("kubelet serving certificate for %s: %w", nodeName, err)
	}
	return &KubeletServing{CertFile: kp.CertFile, KeyFile: kp.KeyFile, ClientCAFile: ca.CertFile(),
		AllowedUser: KubeletClientUser}, nil
}

// schedulerConfig is kube-scheduler's configuration: its --kubeconfig
// and --leader-elect flags are deprecated in favour of this file.
func schedulerConfig(kubeconfig string) []byte {
	return fmt.Appendf(nil, `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
leaderElection:
  leaderElect: false
`, kubeconfig)
}

func uniqueAddrs(as []netip.Addr) []netip.Addr {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, a := range as {
		if a.IsValid() && !seen[a.Unmap()] {
			seen[a.Unmap()] = true
			out = append(out, a.Unmap())
		}
	}
	return out
}
