package localcluster

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/localcluster/addons"
	"github.com/podnet/podnet/internal/localcluster/controlplane"
	"github.com/podnet/podnet/internal/localcluster/crinode"
	"github.com/podnet/podnet/internal/localcluster/guard"
	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/proc"
	"github.com/podnet/podnet/internal/wireguard"
)

// The containerd nodes of `podnet up --node-runtime containerd`: a real
// kubelet and containerd per node (package crinode), images from a
// registry in the outside world, and podnet installed as a user installs
// it, from deploy/ with kubectl.

// The image archives `make image` writes (bin/images), and the binaries
// the nodes run from tools/bin.
const (
	PodnetImageArchive = "podnet.tar"
	TestImageArchive   = "test.tar"
	// PodnetImageName is podnet's image without its tag.
	PodnetImageName = "ghcr.io/podnet/podnet"
	// RegistryProc is the registry's process name.
	RegistryProc = "registry"
	// WireGuardUserspaceComponent is deploy/'s kustomize component that
	// mounts the host's /dev/net/tun into the agents.
	WireGuardUserspaceComponent = "components/wireguard-userspace"
)

var containerdBinaries = []string{"kubelet", "containerd", "containerd-shim-runc-v2", "ctr"}

// checkContainerd says what a containerd cluster lacks: the binaries of
// make tools, runc, the images of make image and deploy/.
func checkContainerd(cfg *Config, o UpOptions) error {
	if !cfg.Containerd() {
		return nil
	}
	var missing []string
	for _, b := range containerdBinaries {
		if _, err := os.Stat(filepath.Join(o.ToolsBin, b)); err != nil {
			missing = append(missing, filepath.Join(o.ToolsBin, b)+" (make tools)")
		}
	}
	if _, err := os.Stat(o.runc()); err != nil {
		missing = append(missing, "runc (apt-get install runc)")
	}
	for _, a := range []string{PodnetImageArchive, TestImageArchive} {
		if _, err := os.Stat(filepath.Join(o.ImagesDir, a)); err != nil {
			missing = append(missing, filepath.Join(o.ImagesDir, a)+" (make image)")
		}
	}
	if _, err := os.Stat(filepath.Join(o.DeployDir, "kustomization.yaml")); err != nil {
		missing = append(missing, filepath.Join(o.DeployDir, "kustomization.yaml"))
	}
	if len(missing) > 0 {
		return fmt.Errorf("--node-runtime containerd needs: %s", strings.Join(missing, ", "))
	}
	return nil
}

func (o UpOptions) runc() string {
	if o.Runc != "" {
		return o.Runc
	}
	return "/usr/sbin/runc"
}

// crinodeOf is node i as package crinode sees it.
func crinodeOf(cfg *Config, i int, o UpOptions, kubeconfig string, serving *controlplane.KubeletServing) *crinode.Node {
	return &crinode.Node{
		Cluster: cfg.Name, Name: cfg.NodeName(i), IP: cfg.NodeIP(i), Dir: cfg.NodeDir(i),
		NetnsPath: netns.Path(cfg.NodeNSName(i)), MountNSPath: cfg.MountNSPath(i),
		Kubeconfig: kubeconfig, ServingCert: serving.CertFile, ServingKey: serving.KeyFile, ClientCAFile: serving.ClientCAFile,
		ClusterDNS: cfg.DNSServiceIP(), ClusterDomain: addons.ClusterDomain, ResolvConf: cfg.NodeResolvConfPath(i),
		Labels: cfg.NodeLabels(i), Registry: netip.AddrPortFrom(cfg.WorldIP, plan.RegistryPort),
		KubeletBin: filepath.Join(o.ToolsBin, "kubelet"), ContainerdBin: filepath.Join(o.ToolsBin, "containerd"),
		ShimDir: o.ToolsBin, RuncBin: o.runc(), LogsDir: cfg.LogsDir(), ProcsDir: cfg.ProcsDir(),
		ProcessEnviron: controlplane.ProcessEnv(),
	}
}

// startRegistry serves the images of make image from the world's
// underlay address (`podnet registry`).
func startRegistry(cfg *Config, o UpOptions) error {
	addr := netip.AddrPortFrom(cfg.WorldIP, plan.RegistryPort)
	o.say("starting the image registry at %s in %s (every registry's mirror for the nodes' containerd)", addr, cfg.WorldNSName())
	argv := []string{o.Podnet, "registry", "--listen", addr.String()}
	for _, a := range []string{TestImageArchive, PodnetImageArchive} {
		argv = append(argv, "--archive", filepath.Join(o.ImagesDir, a))
	}
	_, err := proc.Start(cfg.ProcsDir(), proc.Spec{Name: RegistryProc, Argv: argv, Netns: netns.Path(cfg.WorldNSName()),
		LogFile: filepath.Join(cfg.LogsDir(), RegistryProc+".log"), Env: controlplane.ProcessEnv()})
	return err
}

// startContainerdNode starts node i's containerd, imports podnet's image
// into it and starts its kubelet.
func startContainerdNode(ctx context.Context, cfg *Config, i int, o UpOptions) error {
	node := cfg.NodeName(i)
	kubeletKC, _, serving, err := issueNode(cfg, i)
	if err != nil {
		return err
	}
	if err := os.WriteFile(cfg.NodeResolvConfPath(i), []byte(addons.NodeResolvConf(cfg)), 0o644); err != nil {
		return err
	}
	n := crinodeOf(cfg, i, o, kubeletKC, serving)
	if err := crinode.Start(ctx, n); err != nil {
		return fmt.Errorf("containerd: %w (see %s)", err, filepath.Join(cfg.LogsDir(), crinode.ContainerdProcName(node)+".log"))
	}
	if err := crinode.ImportImages(ctx, n, filepath.Join(o.ToolsBin, "ctr"), filepath.Join(o.ImagesDir, PodnetImageArchive)); err != nil {
		return err
	}
	return crinode.StartKubelet(n)
}

// deleteContainerdNodes removes what crinode made for every node.
func deleteContainerdNodes(cfg *Config) error {
	var errs []error
	for i := 1; i <= cfg.Nodes; i++ {
		if err := crinode.Delete(cfg.NodeDir(i), cfg.MountNSPath(i), (&crinode.Node{Name: cfg.NodeName(i)}).CgroupRoot()); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", cfg.NodeName(i), err))
		}
	}
	return errors.Join(errs...)
}

// grantKubeletAPI lets the API server's kubelet client (its certificate's
// user) use every node's kubelet API, which the kubelets ask the API
// server about (authorization mode Webhook), as kubeadm grants it.
func grantKubeletAPI(ctx context.Context, client kubernetes.Interface) error {
	const name = "podnet:kube-apiserver-kubelet-client"
	b := rbacv1ac.ClusterRoleBinding(name).WithLabels(map[string]string{"app.kubernetes.io/managed-by": "podnet"}).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup("rbac.authorization.k8s.io").WithKind("ClusterRole").WithName("system:kubelet-api-admin")).
		WithSubjects(rbacv1ac.Subject().WithAPIGroup("rbac.authorization.k8s.io").WithKind("User").WithName(controlplane.KubeletClientUser))
	_, err := client.RbacV1().ClusterRoleBindings().Apply(ctx, b, metav1.ApplyOptions{FieldManager: controlplane.FieldManager, Force: true})
	return err
}

// podnetImageTag is the tag of podnet's image in the archive (the version
// make image built it at), from its index's ref-name annotation.
func podnetImageTag(archive string) (string, error) {
	f, err := os.Open(archive)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return "", fmt.Errorf("%s: no index.json", archive)
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", archive, err)
		}
		if strings.TrimPrefix(h.Name, "./") != "index.json" {
			continue
		}
		var idx struct {
			Manifests []struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		if err := json.NewDecoder(tr).Decode(&idx); err != nil {
			return "", fmt.Errorf("%s: index.json: %w", archive, err)
		}
		for _, m := range idx.Manifests {
			if tag, ok := strings.CutPrefix(m.Annotations["org.opencontainers.image.ref.name"], PodnetImageName+":"); ok {
				return tag, nil
			}
		}
		return "", fmt.Errorf("%s: no image named %s", archive, PodnetImageName)
	}
}

// applyDeploy installs podnet into the cluster as a user would: an overlay
// of deploy/ in the state directory (the image's tag, the cluster's
// settings) applied with kubectl apply -k, confined by the guard.
func applyDeploy(ctx context.Context, cfg *Config, o UpOptions, g *guard.Guard) error {
	tag, err := podnetImageTag(filepath.Join(o.ImagesDir, PodnetImageArchive))
	if err != nil {
		return err
	}
	dir := filepath.Join(cfg.StateDir, "deploy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// kustomize takes a base by a relative path only.
	base, err := filepath.Rel(dir, o.DeployDir)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), deployOverlay(cfg, o, base, tag), 0o644); err != nil {
		return err
	}
	o.say("installing podnet %s from %s: kubectl apply -k %s", tag, o.DeployDir, dir)
	return g.Do(func() error {
		return Kubectl(cfg, o.ToolsBin, o.Out, o.Out, "apply", "--server-side", "--force-conflicts", "-k", dir)
	})
}

// deployOverlay is the kustomization.yaml of the cluster's install: base (deploy/)
// with podnet's image at tag and the cluster's settings in the
// podnet-config ConfigMaps (deploy/base/config.yaml and deploy/dns/config.yaml
// say what each key means). With encryption, the agents run the
// user-space WireGuard device, as the podnet runtime's do (this kernel may
// have no WireGuard), so the overlay adds deploy/'s component that gives
// them /dev/net/tun; each node's key stays in that node (package crinode
// binds a directory of the node's over /var/lib/podnet/wireguard).
func deployOverlay(cfg *Config, o UpOptions, base, tag string) []byte {
	mode := cfg.AgentRoutingMode()
	components, impl := "", wireguard.ImplAuto // deploy/'s default
	if cfg.Encryption != "" {
		components = fmt.Sprintf("components:\n  - %s\n", path.Join(base, WireGuardUserspaceComponent))
		impl = wireguard.ImplUserspace
	}
	return fmt.Appendf(nil, `# podnet installed into the local cluster %q as a user installs it (podnet up --node-runtime containerd).
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %s
%simages:
  - name: %s
    newTag: %q
patches:
  - patch: |-
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: podnet-config
        namespace: podnet-system
      data:
        cluster-cidr: %q
        service-cidr: %q
        routing-mode: %q
        lb-announce: "true"
        apiserver-host: %q
        apiserver-port: "%d"
        encryption: %q
        encryption-strict: "%t"
        wireguard-implementation: %q
  - patch: |-
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: podnet-config
        namespace: kube-system
      data:
        dns-upstream: %q
        dns-zone: %q
  - patch: |-
      apiVersion: v1
      kind: Service
      metadata:
        name: kube-dns
        namespace: kube-system
      spec:
        clusterIP: %q
`, cfg.Name, base, components, PodnetImageName, tag, cfg.PodCIDR, cfg.ServiceCIDR, mode, cfg.RootIP, cfg.APIServerPort,
		cfg.Encryption, cfg.EncryptionStrict, impl, cfg.WorldDNSIP, addons.ClusterDomain, cfg.DNSServiceIP())
}

// startContainerdNodes starts the registry, then every node's containerd
// and kubelet, and installs podnet from deploy/: the agents it runs make
// the nodes Ready.
func startContainerdNodes(ctx context.Context, cfg *Config, o UpOptions, g *guard.Guard, client kubernetes.Interface) error {
	if err := startRegistry(cfg, o); err != nil {
		return err
	}
	if err := grantKubeletAPI(ctx, client); err != nil {
		return err
	}
	for i := 1; i <= cfg.Nodes; i++ {
		if err := startContainerdNode(ctx, cfg, i, o); err != nil {
			return fmt.Errorf("node %s: %w", cfg.NodeName(i), err)
		}
	}
	o.say("started containerd and a kubelet in each node namespace; waiting for them to register")
	if err := waitNodesRegistered(ctx, client, cfg.Nodes, o.readyTimeout()); err != nil {
		return fmt.Errorf("%w (see %s)", err, cfg.LogsDir())
	}
	if err := applyDeploy(ctx, cfg, o, g); err != nil {
		return err
	}
	o.say("waiting for the podnet agents to make the %d nodes Ready", cfg.Nodes)
	return nil
}

// finishContainerdInstall makes the default LoadBalancer pool (deploy/
// installed its CRD) and waits for the cluster DNS deploy/ runs.
func finishContainerdInstall(ctx context.Context, cfg *Config, client kubernetes.Interface, o UpOptions, start time.Time) error {
	rc, err := (&controlplane.Config{}).RESTConfig(AdminKubeconfigPath(cfg.StateDir))
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return err
	}
	o.say("making LoadBalancer pool %q = %s", addons.DefaultPool, cfg.LBPool)
	if err := addons.CreateDefaultPool(ctx, cfg, dyn); err != nil {
		return fmt.Errorf("LoadBalancer pool: %w", err)
	}
	if err := addons.WaitDNSReady(ctx, client, 2*time.Minute); err != nil {
		o.say("warning: %v; see `kubectl -n %s get pods -l %s=%s`", err, addons.DNSNamespace, addons.DNSAppLabelKey, addons.DNSAppLabelValue)
	} else {
		o.say("cluster DNS ready after %s", time.Since(start).Round(100*time.Millisecond))
	}
	return nil
}

// RestartContainerd restarts node i's containerd (crinode.RestartContainerd).
func RestartContainerd(ctx context.Context, cfg *Config, i int, toolsBin string) error {
	n := crinodeOf(cfg, i, UpOptions{ToolsBin: toolsBin}, "", &controlplane.KubeletServing{})
	return crinode.RestartContainerd(ctx, n)
}

// Ctr is tools/bin/ctr talking to node i's containerd, in the CRI's
// namespace (k8s.io).
func Ctr(cfg *Config, i int, toolsBin string, args ...string) *exec.Cmd {
	n := crinodeOf(cfg, i, UpOptions{ToolsBin: toolsBin}, "", &controlplane.KubeletServing{})
	return exec.Command(filepath.Join(toolsBin, "ctr"), append([]string{"--address", n.ContainerdSocket(), "--namespace", "k8s.io"}, args...)...)
}
