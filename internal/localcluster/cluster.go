package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/kubeletapi"
	"github.com/podnet/podnet/internal/localcluster/addons"
	"github.com/podnet/podnet/internal/localcluster/controlplane"
	"github.com/podnet/podnet/internal/localcluster/crinode"
	"github.com/podnet/podnet/internal/localcluster/guard"
	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/localcluster/safety"
	"github.com/podnet/podnet/internal/localcluster/topology"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/podruntime"
	"github.com/podnet/podnet/internal/proc"
	"github.com/podnet/podnet/internal/wireguard"
)

// UpOptions are the inputs of Up besides the Config.
type UpOptions struct {
	// ToolsBin holds controlplane.Binaries: etcd, kube-apiserver,
	// kube-controller-manager, kube-scheduler and kubectl (make tools).
	ToolsBin string
	// Podnet is the podnet binary; CNIBin the directory with podnet-cni.
	Podnet string
	CNIBin string
	// Manifests are applied with kubectl once the nodes are Ready.
	Manifests []string
	Out       io.Writer
	// ReadyTimeout bounds the wait for nodes to become Ready.
	ReadyTimeout time.Duration
	// ImagesDir holds the image archives of make image, DeployDir the
	// install manifests (deploy/), and Runc is runc (default
	// /usr/sbin/runc): what containerd nodes need (Config.NodeRuntime).
	ImagesDir, DeployDir, Runc string
}

// say writes one line of progress to Out, if set.
func (o *UpOptions) say(format string, args ...any) {
	if o.Out != nil {
		fmt.Fprintf(o.Out, format+"\n", args...)
	}
}

// Running reports whether any process recorded for the cluster is alive.
func Running(stateDir string) bool {
	recs, _ := proc.ReadAll(plan.ProcsDir(stateDir))
	for _, r := range recs {
		if proc.Alive(r) {
			return true
		}
	}
	return false
}

// Up creates the cluster: topology, control plane, one pod runtime and one
// agent per node; it waits until every node is Ready, deploys the cluster
// DNS and applies the manifests. On failure it removes everything it made.
func Up(ctx context.Context, cfg *Config, o UpOptions) (err error) {
	start := time.Now()
	if err := prepareUp(cfg, o); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			o.say("up failed; removing what was made")
			if derr := Down(cfg); derr != nil {
				err = errors.Join(err, fmt.Errorf("cleanup: %w", derr))
			}
		}
	}()
	if err := cfg.Save(); err != nil {
		return err
	}
	if err := createNetwork(cfg, o); err != nil {
		return err
	}
	g, err := createGuard(ctx, cfg, o)
	if err != nil {
		return err
	}
	client, err := startCluster(ctx, cfg, o, g)
	if err != nil {
		return err
	}
	o.say("all %d nodes Ready after %s", cfg.Nodes, time.Since(start).Round(100*time.Millisecond))
	if cfg.Containerd() {
		if err := finishContainerdInstall(ctx, cfg, client, o, start); err != nil {
			return err
		}
	} else {
		if err := deployDNS(ctx, cfg, client, o, start); err != nil {
			return err
		}
		if err := deployLBIPAM(ctx, cfg, client, o); err != nil {
			return err
		}
	}
	for _, m := range o.Manifests {
		if err := g.Do(func() error { return Kubectl(cfg, o.ToolsBin, o.Out, o.Out, "apply", "-f", m) }); err != nil {
			return fmt.Errorf("apply %s: %w", m, err)
		}
	}
	return nil
}

// prepareUp checks what Up needs, removes the leftovers of a crashed run
// of the cluster, refuses a cluster that overlaps the host, and makes the
// state directory. Nothing of the new cluster exists before it succeeds.
func prepareUp(cfg *Config, o UpOptions) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if Running(cfg.StateDir) {
		return fmt.Errorf("cluster %q is already running (state in %s); run `podnet down --cluster %s` first", cfg.Name, cfg.StateDir, cfg.Name)
	}
	if err := checkUpBinaries(o); err != nil {
		return err
	}
	if err := guard.Supported(); err != nil {
		return fmt.Errorf("%w (podnet up confines its root-namespace processes with it; see docs/local-cluster.md, Safety)", err)
	}
	if err := checkKubeProxy(cfg, o.ToolsBin); err != nil {
		return err
	}
	if err := checkContainerd(cfg, o); err != nil {
		return err
	}
	// Leftovers of a crashed run of this cluster (processes are gone: the
	// check above): remove them so the conflict check sees a clean host.
	// The guard first: its mount is inside the state directory.
	_ = guard.Delete(cfg)
	if _, serr := os.Stat(cfg.StateDir); serr == nil {
		if old, lerr := Load(cfg.StateDir); lerr == nil {
			_ = topology.Delete(old)
			_ = guard.Delete(old)
		}
		_ = os.RemoveAll(cfg.StateDir)
	}
	_ = topology.Delete(cfg)
	if err := safety.CheckHostConflicts(cfg); err != nil {
		return err
	}
	return os.MkdirAll(cfg.StateDir, 0o700)
}

func checkUpBinaries(o UpOptions) error {
	if err := controlplane.CheckBinaries(o.ToolsBin); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(o.CNIBin, "podnet-cni")); err != nil {
		return fmt.Errorf("missing %s (run `make build`)", filepath.Join(o.CNIBin, "podnet-cni"))
	}
	if _, err := os.Stat(o.Podnet); err != nil {
		return fmt.Errorf("missing the podnet binary %s", o.Podnet)
	}
	return nil
}

// createNetwork creates the topology and starts the world's DNS server in
// it.
func createNetwork(cfg *Config, o UpOptions) error {
	o.say("creating the network: bridge %s, world namespace %s, %d node namespaces on %s", cfg.BridgeName(), cfg.WorldNSName(), cfg.Nodes, cfg.NodeNetwork)
	if err := topology.Create(cfg); err != nil {
		return err
	}
	o.say("starting the outside world's DNS server at %s in %s (authoritative for %s; the cluster DNS's upstream)", cfg.WorldDNSIP, cfg.WorldNSName(), addons.WorldZone)
	if err := addons.StartWorldDNS(cfg, o.Podnet); err != nil {
		return err
	}
	if err := addons.CheckWorldDNS(cfg, 5*time.Second); err != nil {
		return fmt.Errorf("%w (see %s)", err, filepath.Join(cfg.LogsDir(), addons.WorldDNSProc+".log"))
	}
	return nil
}

// startCluster starts the control plane and every node, and waits until
// the nodes are Ready. It returns an admin client.
func startCluster(ctx context.Context, cfg *Config, o UpOptions, g *guard.Guard) (kubernetes.Interface, error) {
	o.say("starting the control plane (etcd, kube-apiserver at %s, kube-controller-manager, kube-scheduler)", cfg.APIServerURL())
	cp, err := controlplane.Start(ctx, controlplane.Config{
		ClusterName: cfg.Name, StateDir: cfg.StateDir, BinDir: o.ToolsBin,
		APIAddress: cfg.RootIP, APIPort: cfg.APIServerPort,
		ServiceCIDR: cfg.ServiceCIDR, PodCIDR: cfg.PodCIDR, NodeCIDRMaskSize: cfg.NodeCIDRMaskSize, Confine: g,
		Progress: func(s string) { o.say("  %s", s) },
	})
	if err != nil {
		return nil, err
	}
	rc, err := cp.RESTConfig()
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	if err := ApplyAgentNodePolicy(ctx, client); err != nil {
		return nil, fmt.Errorf("agents' Node policy: %w", err)
	}
	o.say("  control plane: admission policy %s holds the agents' Node writes to their own WireGuard annotations", AgentNodePolicy)
	if cfg.Containerd() {
		if err := startContainerdNodes(ctx, cfg, o, g, client); err != nil {
			return nil, err
		}
	} else {
		for i := 1; i <= cfg.Nodes; i++ {
			if err := startNode(cfg, i, o); err != nil {
				return nil, fmt.Errorf("node %s: %w", cfg.NodeName(i), err)
			}
		}
		o.say("started a pod runtime and a podnet agent in each node namespace; service proxy: %s; waiting for %d nodes to be Ready", plan.DescribeServiceProxy(cfg.ServiceProxy), cfg.Nodes)
	}
	timeout := o.readyTimeout()
	if err := waitNodesReady(ctx, client, cfg.Nodes, timeout); err != nil {
		return nil, fmt.Errorf("%w (see %s)", err, cfg.LogsDir())
	}
	if err := waitKubeProxies(ctx, cfg, timeout); err != nil {
		return nil, err
	}
	return client, nil
}

// deployDNS deploys the cluster DNS and waits for it; a DNS that does not
// become ready is only a warning: the cluster works without names, and the
// pods' logs say why.
func deployDNS(ctx context.Context, cfg *Config, client kubernetes.Interface, o UpOptions, start time.Time) error {
	o.say("deploying the cluster DNS: Deployment %s/%s (%d replicas) behind Service %s at %s", addons.DNSNamespace, addons.DNSDeployment, addons.DNSReplicas, addons.DNSService, cfg.DNSServiceIP())
	if err := addons.DeployDNS(ctx, cfg, client, o.Podnet); err != nil {
		return err
	}
	if err := addons.WaitDNSReady(ctx, client, time.Minute); err != nil {
		o.say("warning: %v; see `podnet kubectl -- -n %s get pods -l %s=%s` and `podnet logs -n %s POD`", err, addons.DNSNamespace, addons.DNSAppLabelKey, addons.DNSAppLabelValue, addons.DNSNamespace)
	} else {
		o.say("cluster DNS ready after %s", time.Since(start).Round(100*time.Millisecond))
	}
	return nil
}

// issueNode issues node i's client credentials (the kubelet's or the pod
// runtime's, and the agent's kubeconfigs) and its kubelet API serving
// certificate, for either node runtime.
func issueNode(cfg *Config, i int) (nodeKC, agentKC string, serving *controlplane.KubeletServing, err error) {
	if nodeKC, agentKC, err = controlplane.IssueNodeCredentials(cfg.StateDir, cfg.NodeName(i)); err != nil {
		return "", "", nil, err
	}
	serving, err = controlplane.IssueKubeletServing(cfg.StateDir, cfg.NodeName(i), cfg.NodeIP(i))
	return nodeKC, agentKC, serving, err
}

// startNode issues node i's credentials and starts its agent and runtime in
// its namespace.
func startNode(cfg *Config, i int, o UpOptions) error {
	node := cfg.NodeName(i)
	runtimeKC, agentKC, kubelet, err := issueNode(cfg, i)
	if err != nil {
		return err
	}
	lbKey, err := lbHeartbeatKey(cfg.StateDir)
	if err != nil {
		return err
	}
	dir := cfg.NodeDir(i)
	confDir, ipamDir := filepath.Join(dir, "cni", "net.d"), filepath.Join(dir, "cni", "ipam")
	for _, d := range []string{confDir, ipamDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	mode := cfg.AgentRoutingMode()
	nsPath := netns.Path(cfg.NodeNSName(i))
	specs := []proc.Spec{
		{Name: "agent-" + node, Argv: []string{o.Podnet, "agent", "--kubeconfig", agentKC, "--node-name", node,
			"--routing-mode", mode, "--cluster-cidr", cfg.PodCIDR.String(), "--service-cidr", cfg.ServiceCIDR.String(),
			"--cni-conf-dir", confDir, "--cni-network", "podnet", "--cni-data-dir", ipamDir, "--lb-announce", "--lb-key-file", lbKey}},
		{Name: "runtime-" + node, Argv: []string{o.Podnet, "runtime", "--kubeconfig", runtimeKC, "--node-name", node,
			"--node-ip", cfg.NodeIP(i).String(), "--state-dir", dir, "--cni-conf-dir", confDir, "--cni-bin-dir", o.CNIBin,
			"--netns-prefix", cfg.Name + "-pod-", "--cluster-dns", cfg.DNSServiceIP().String(),
			"--cluster-domain", addons.ClusterDomain, "--host-resolv-conf", cfg.NodeResolvConfPath(i),
			"--kubelet-api-address", netip.AddrPortFrom(cfg.NodeIP(i), kubeletapi.DefaultPort).String(),
			"--kubelet-api-cert", kubelet.CertFile, "--kubelet-api-key", kubelet.KeyFile,
			"--kubelet-api-client-ca", kubelet.ClientCAFile, "--kubelet-api-allowed-users", kubelet.AllowedUser}},
	}
	if cfg.Encryption != "" {
		specs[0].Argv = append(specs[0].Argv, "--encryption", cfg.Encryption, "--wireguard-implementation", "userspace",
			"--wireguard-key-file", cfg.WireGuardKeyFile(i), "--wireguard-socket-name", cfg.WireGuardSocketName(i))
		if cfg.EncryptionStrict {
			specs[0].Argv = append(specs[0].Argv, "--encryption-strict")
		}
	}
	if l := cfg.NodeLabels(i); len(l) > 0 {
		specs[1].Argv = append(specs[1].Argv, "--node-labels", crinode.LabelsArg(l)) // the runtime registers the Node
	}
	if specs, err = withKubeProxy(cfg, i, o.ToolsBin, specs); err != nil {
		return err
	}
	for _, s := range specs {
		s.LogFile = filepath.Join(cfg.LogsDir(), s.Name+".log")
		s.Netns = nsPath
		s.Env = controlplane.ProcessEnv()
		if _, err := proc.Start(cfg.ProcsDir(), s); err != nil {
			return err
		}
	}
	return nil
}

func (o UpOptions) readyTimeout() time.Duration {
	if o.ReadyTimeout == 0 {
		return 2 * time.Minute
	}
	return o.ReadyTimeout
}

// waitNodesRegistered waits until want Nodes exist.
func waitNodesRegistered(ctx context.Context, c kubernetes.Interface, want int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err == nil && len(nodes.Items) >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			n := 0
			if nodes != nil {
				n = len(nodes.Items)
			}
			return fmt.Errorf("%d of %d nodes registered after %s", n, want, timeout)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func waitNodesReady(ctx context.Context, c kubernetes.Interface, want int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	for {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err == nil {
			ready := 0
			var notReady []string
			for _, n := range nodes.Items {
				ok := false
				for _, cnd := range n.Status.Conditions {
					if cnd.Type == v1.NodeReady && cnd.Status == v1.ConditionTrue {
						ok = true
					} else if cnd.Type == v1.NodeReady {
						notReady = append(notReady, n.Name+": "+cnd.Message)
					}
				}
				if ok {
					ready++
				}
			}
			if ready >= want {
				return nil
			}
			last = fmt.Sprintf("%d of %d nodes Ready %v", ready, want, notReady)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nodes not Ready after %s: %s", timeout, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Down removes everything the cluster made: processes (by recorded pid and
// start time only), namespaces, links, routes, the control sockets of the
// agents' WireGuard devices, and the state directory. It works after a
// crash and when nothing is left.
func Down(cfg *Config) error {
	var errs []error
	if err := proc.StopAll(cfg.ProcsDir(), 5*time.Second); err != nil {
		errs = append(errs, err)
	}
	// Containers normally die with their runtime; any that outlived it
	// (recorded by pid and start time) are ended now.
	for i := 1; i <= cfg.Nodes; i++ { // nodes are numbered from 1
		if err := proc.StopAll(podruntime.ContainersDir(cfg.NodeDir(i)), 5*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeWireGuardSockets(cfg); err != nil {
		errs = append(errs, err)
	}
	if cfg.Containerd() {
		if err := deleteContainerdNodes(cfg); err != nil {
			errs = append(errs, err)
		}
	}
	if err := guard.Delete(cfg); err != nil { // after the processes: a group with any cannot go
		errs = append(errs, err)
	}
	if err := topology.Delete(cfg); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(cfg.StateDir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeWireGuardSockets removes the nodes' WireGuard control sockets
// (/var/run/wireguard, shared by all nodes) that agents which were killed
// rather than stopped left behind; a stopped agent removes its own, and
// the devices themselves (persistent TUNs) go with the node namespaces.
// Only sockets nobody listens on go.
func removeWireGuardSockets(cfg *Config) error {
	var errs []error
	for i := 1; i <= cfg.Nodes; i++ {
		if _, err := wireguard.RemoveStaleSocket(cfg.WireGuardSocketName(i)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Kubectl runs the bundled kubectl with the cluster's admin kubeconfig.
func Kubectl(cfg *Config, toolsBin string, stdout, stderr io.Writer, args ...string) error {
	cmd := exec.Command(filepath.Join(toolsBin, controlplane.Kubectl), append([]string{"--kubeconfig", AdminKubeconfigPath(cfg.StateDir)}, args...)...)
	cmd.Stdin = os.Stdin
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd.Run()
}
