package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/podexec"
)

// addClusterCommands adds the commands a person runs against a local
// cluster, in their groups, each with the cluster flags.
func addClusterCommands(root *cobra.Command, cf *clusterFlags) {
	for _, c := range []struct {
		cmd   *cobra.Command
		group string
		tools bool // runs a bundled binary: lists --tools-bin
	}{
		{newUpCommand(cf), groupCluster, true},
		{newDownCommand(cf), groupCluster, false},
		{newAddNodeCommand(cf), groupCluster, true},
		{newRotateKeysCommand(cf), groupCluster, false},
		{newStatusCommand(cf), groupCluster, false},
		{newKubectlCommand(cf), groupCluster, true},
		{newApplyCommand(cf), groupCluster, true},
		{newExecCommand(cf), groupDebug, false},
		{newLogsCommand(cf), groupDebug, false},
		{newProbeCommand(cf), groupDebug, false},
		{newTraceCommand(cf), groupDebug, false},
		{newFlowsCommand(cf), groupDebug, false},
		{newUICommand(cf), groupDebug, false},
	} {
		cf.register(c.cmd, c.tools)
		c.cmd.GroupID = c.group
		root.AddCommand(c.cmd)
	}
	clusters := newClustersCommand()
	clusters.GroupID = groupCluster
	root.AddCommand(clusters)
}

func newUpCommand(cf *clusterFlags) *cobra.Command {
	var o upOptions
	var nodes int
	var podCIDR, serviceCIDR, nodeNetwork, worldNetwork, serviceProxy, zones, nodeRuntime, encryption, routingMode string
	var encryptionStrict bool
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a local cluster: control plane, nodes and pods in network namespaces",
		Long: `Start a local cluster on this machine: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler in the root namespace, one network
namespace per node with a pod runtime and the podnet agent, cluster DNS, and
an "outside world" namespace with no route out. It waits until every node is
Ready, applies the -f manifests and prints what to try next.

It needs root. Before anything is made it refuses address ranges that
overlap this machine's addresses, routes or resolvers, and a cluster of the
same name that still runs. The state (kubeconfig, certificates, logs,
process records) goes to --state-dir.

--service-proxy chooses what proxies Services on every node: podnet (the
agent's own proxy, the default), or upstream kube-proxy (tools/bin) in
nftables or iptables mode, run in each node namespace next to the agent,
whose proxy is then off. Routing, NetworkPolicy and DNS stay podnet's, so
the same cluster compares the proxies side by side (docs/services.md).

--zones a,b deals the nodes to zones in turn (node i in the ((i-1) mod n)th
zone): each Node is labelled topology.kubernetes.io/zone and
topology.kubernetes.io/region=local from its registration, and its name
ends in its zone (<cluster>-node-1.a), so trafficDistribution and topology
spread constraints can be watched working. All zones share the one node
network (docs/local-cluster.md, Zones).`,
		Example: `  podnet up
  podnet up -f examples/seed
  podnet up --cluster dev --nodes 3 --routing-mode vxlan
  podnet up --encryption wireguard --encryption-strict   # pod traffic between nodes through WireGuard
  podnet up --nodes 4 --zones a,b                 # podnet-node-1.a, podnet-node-2.b, podnet-node-3.a, podnet-node-4.b
  podnet up --service-proxy kube-proxy-iptables   # upstream kube-proxy instead of the agents' proxy
  podnet up --node-runtime containerd -f examples/seed   # real kubelet + containerd nodes, podnet from deploy/
  podnet up --cluster second --node-network 172.29.0.0/24 --pod-cidr 10.162.0.0/16 --service-cidr 10.163.0.0/16 --world-network 198.51.100.0/24`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := cf.config()
			cfg.Nodes, cfg.ServiceProxy, cfg.Zones, cfg.NodeRuntime = nodes, serviceProxy, localcluster.ParseZones(zones), nodeRuntime
			cfg.RoutingMode, cfg.Encryption, cfg.EncryptionStrict = routingMode, encryption, encryptionStrict
			if err := cfg.SetRanges(localcluster.Ranges{PodCIDR: podCIDR, ServiceCIDR: serviceCIDR, NodeNetwork: nodeNetwork, WorldNetwork: worldNetwork}); err != nil {
				return err
			}
			if err := o.setBinaries(cmd, cf); err != nil {
				return err
			}
			exe := o.Podnet
			var err error
			if o.ImagesDir == "" {
				o.ImagesDir = filepath.Join(filepath.Dir(exe), "images")
			}
			if o.DeployDir == "" {
				o.DeployDir = filepath.Join(filepath.Dir(filepath.Dir(exe)), "deploy")
			}
			if o.ImagesDir, err = filepath.Abs(o.ImagesDir); err != nil {
				return err
			}
			if o.DeployDir, err = filepath.Abs(o.DeployDir); err != nil {
				return err
			}
			if err := localcluster.Up(cmd.Context(), cfg, o.UpOptions); err != nil {
				return err
			}
			printNext(cmd, cfg)
			return nil
		},
	}
	cmd.Flags().IntVar(&nodes, "nodes", localcluster.DefaultNodes, "number of nodes")
	cmd.Flags().StringVar(&podCIDR, "pod-cidr", "", "cluster pod CIDR (default 10.244.0.0/16; a /24 per node)")
	cmd.Flags().StringVar(&serviceCIDR, "service-cidr", "", "service CIDR (default 10.96.0.0/16)")
	cmd.Flags().StringVar(&nodeNetwork, "node-network", "", "node network, a /24 (default 172.30.0.0/24: API server .1, nodes from .11, world .254, LoadBalancer pool .200/29)")
	cmd.Flags().StringVar(&zones, "zones", "", "zones to deal the nodes to in turn, comma-separated DNS labels, at most one per node (default: no zones)")
	cmd.Flags().StringVar(&worldNetwork, "world-network", "", "the outside world's addresses, a /24 (default 203.0.113.0/24)")
	cmd.Flags().StringArrayVarP(&o.Manifests, "filename", "f", nil, "manifest file or directory to apply once the nodes are Ready (repeatable)")
	cmd.Flags().StringVar(&routingMode, "routing-mode", "direct", "how nodes reach each other's pods: direct or vxlan")
	cmd.Flags().StringVar(&encryption, "encryption", "", "encrypt pod traffic between nodes: wireguard (user-space WireGuard in each agent; default: off)")
	cmd.Flags().BoolVar(&encryptionStrict, "encryption-strict", false, "with --encryption: drop traffic to remote pods that cannot be encrypted rather than send it in the clear")
	cmd.Flags().StringVar(&o.CNIBin, "cni-bin-dir", "", "directory with podnet-cni (default: next to podnet)")
	cmd.Flags().StringVar(&nodeRuntime, "node-runtime", localcluster.NodeRuntimePodnet,
		"what runs the pods: podnet (its own pod runtime, with the agent beside it) or containerd (a real kubelet and containerd per node, podnet installed from deploy/ as a DaemonSet; needs make image)")
	cmd.Flags().StringVar(&o.ImagesDir, "images-dir", "", "containerd nodes: directory with the image archives of make image (default: images/ next to podnet)")
	cmd.Flags().StringVar(&o.DeployDir, "deploy-dir", "", "containerd nodes: the install manifests applied with kubectl apply -k (default: deploy/ of podnet's checkout)")
	cmd.Flags().StringVar(&serviceProxy, "service-proxy", localcluster.ServiceProxyPodnet,
		"what proxies Services on each node: "+strings.Join(localcluster.ServiceProxies, ", ")+" (upstream kube-proxy in that mode; the agents' proxy off)")
	return cmd
}

func printNext(cmd *cobra.Command, cfg *localcluster.Config) {
	exe, _ := os.Executable()
	onPath, _ := exec.LookPath("podnet")
	writeNext(cmd.OutOrStdout(), cfg, exe, onPath)
}

// writeNext prints what to try on the cluster that just came up, in the
// form the docs use (podnet on PATH), and how to get there when the podnet
// on PATH (onPath, "" for none) is not this one (exe).
func writeNext(w io.Writer, cfg *localcluster.Config, exe, onPath string) {
	c := ""
	if cfg.Name != "podnet" {
		c = " --cluster " + cfg.Name
	}
	fmt.Fprintf(w, `
Cluster %q is up. Try:
  export KUBECONFIG=%s
  kubectl get pods -A -o wide                       (or: podnet%s kubectl -- get pods -A -o wide)
  kubectl exec -it POD -- ping -c1 OTHER-POD-IP
  kubectl exec -it POD -- wget -O- SERVICE
  kubectl exec -it POD -- nslookup kubernetes.default   (cluster DNS)
  kubectl describe pod POD
  kubectl logs POD
  podnet%s probe POD pod/OTHER-POD:PORT              (or svc/SERVICE:PORT)
  podnet%s trace POD pod/OTHER-POD:PORT              (why NetworkPolicy allows or denies it)
  podnet%s down
`, cfg.Name, localcluster.AdminKubeconfigPath(cfg.StateDir), c, c, c, c)
	if !samePath(exe, onPath) {
		what := "podnet is not on your PATH"
		if onPath != "" {
			what = "the podnet on your PATH is " + onPath + ", not this one"
		}
		fmt.Fprintf(w, "%s: `make install` (as root) links /usr/local/bin/podnet to %s (or type that path instead of podnet)\n", what, exe)
	}
}

// samePath says whether a and b are the same file (symbolic links
// followed).
func samePath(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

// setBinaries fills in where podnet, podnet-cni and the tools are, and
// where progress goes.
func (o *upOptions) setBinaries(cmd *cobra.Command, cf *clusterFlags) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if o.ToolsBin, err = filepath.Abs(cf.toolsBin); err != nil {
		return err
	}
	o.Podnet, o.Out = exe, cmd.OutOrStdout()
	if o.CNIBin == "" {
		o.CNIBin = filepath.Dir(exe)
	}
	o.CNIBin, err = filepath.Abs(o.CNIBin)
	return err
}

// upOptions are localcluster.UpOptions with the CLI's defaults.
type upOptions struct{ localcluster.UpOptions }

func newAddNodeCommand(cf *clusterFlags) *cobra.Command {
	var o upOptions
	cmd := &cobra.Command{
		Use:   "add-node",
		Short: "Add a node to the running local cluster",
		Long: `Add one node to the running local cluster: its network namespace on the
underlay, its pod runtime and agent with the cluster's settings (routing
mode, service proxy, encryption), and wait until it is Ready. The node is
named and addressed after the last one. podnet down removes it with the
rest. (Nodes run by containerd, --node-runtime containerd, cannot be added
yet.)`,
		Example: `  podnet add-node
  podnet add-node --cluster dev`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := cf.load()
			if err != nil {
				return err
			}
			if err := o.setBinaries(cmd, cf); err != nil {
				return err
			}
			node, err := localcluster.AddNode(cmd.Context(), cfg, o.UpOptions)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %s added (%s)\n", node, cfg.NodeIP(cfg.Nodes))
			return nil
		},
	}
	cmd.Flags().StringVar(&o.CNIBin, "cni-bin-dir", "", "directory with podnet-cni (default: next to podnet)")
	return cmd
}

func newDownCommand(cf *clusterFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Remove the local cluster: processes, namespaces, links, routes, state",
		Long: `Remove everything the local cluster made: its processes (only those it
recorded, by pid and start time), network namespaces, links, routes,
nftables tables, mounts and the state directory. It works after a crash,
and by name when no state is left.`,
		Example: `  podnet down
  podnet down --cluster dev`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := localcluster.Load(cf.config().StateDir)
			if err != nil {
				cfg = cf.config() // nothing saved: clean by name anyway
			}
			if err := localcluster.Down(cfg); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster %q removed\n", cfg.Name)
			return nil
		},
	}
}

func newKubectlCommand(cf *clusterFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "kubectl -- ARGS...",
		Short: "Run the bundled kubectl against the local cluster",
		Long: `Run the kubectl from --tools-bin with the local cluster's admin kubeconfig.
Everything after -- goes to kubectl unchanged; its exit status is podnet's.`,
		Example: `  podnet kubectl -- get nodes -o wide
  podnet kubectl -- get pods -A -o wide
  podnet kubectl --cluster dev -- describe networkpolicy api-allow`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := cf.load()
			if err != nil {
				return err
			}
			return exitErr(localcluster.Kubectl(cfg, cf.toolsBin, cmd.OutOrStdout(), cmd.ErrOrStderr(), args...))
		},
	}
}

func newApplyCommand(cf *clusterFlags) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "apply -f PATH",
		Short: "Apply manifests to the local cluster",
		Long: `Apply manifest files or directories to the local cluster: kubectl apply -f
with the cluster's admin kubeconfig.`,
		Example: `  podnet apply -f examples/seed
  podnet apply -f web.yaml -f policy.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := cf.load()
			if err != nil {
				return err
			}
			if len(files) == 0 {
				return errors.New("give at least one -f PATH")
			}
			args := []string{"apply"}
			for _, f := range files {
				args = append(args, "-f", f)
			}
			return exitErr(localcluster.Kubectl(cfg, cf.toolsBin, cmd.OutOrStdout(), cmd.ErrOrStderr(), args...))
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "manifest file or directory")
	return cmd
}

// findPod finds a pod of the local cluster and where its node keeps it.
func findPod(cmd *cobra.Command, cf *clusterFlags, ns, name string) (localcluster.PodLocation, error) {
	cfg, client, err := cf.client()
	if err != nil {
		return localcluster.PodLocation{}, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
	defer cancel()
	return localcluster.FindPod(ctx, client, cfg, ns, name)
}

func newLogsCommand(cf *clusterFlags) *cobra.Command {
	var container string
	nsf := &namespaceFlag{kubeconfig: cf.kubeconfig}
	cmd := &cobra.Command{
		Use:   "logs [-n NS] POD",
		Short: "Show a pod's container log",
		Long: `Show the output of a pod's containers, read from its node's files (all
containers, each under a header, unless -c names one).`,
		Example: `  podnet logs frontend
  podnet logs -n secure -c db database`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns := nsf.get()
			p, err := findPod(cmd, cf, ns, args[0])
			if err != nil {
				return err
			}
			logs, _ := filepath.Glob(filepath.Join(p.Dir, "logs", "*.log"))
			if container != "" {
				logs = []string{filepath.Join(p.Dir, "logs", container+".log")}
			}
			if len(logs) == 0 {
				if cfg, err := cf.load(); err == nil && cfg.Containerd() {
					return fmt.Errorf("the kubelet keeps pod %s/%s's logs on containerd nodes: kubectl logs -n %s %s", ns, args[0], ns, args[0])
				}
				return fmt.Errorf("no logs for pod %s/%s yet", ns, args[0])
			}
			for _, l := range logs {
				b, err := os.ReadFile(l)
				if err != nil {
					return err
				}
				if len(logs) > 1 {
					fmt.Fprintf(cmd.OutOrStdout(), "==> %s <==\n", strings.TrimSuffix(filepath.Base(l), ".log"))
				}
				_, _ = cmd.OutOrStdout().Write(b)
			}
			return nil
		},
	}
	nsf.register(cmd, "namespace of POD")
	cmd.Flags().StringVarP(&container, "container", "c", "", "container (default: all)")
	return cmd
}

func newExecCommand(cf *clusterFlags) *cobra.Command {
	nsf := &namespaceFlag{kubeconfig: cf.kubeconfig}
	cmd := &cobra.Command{
		Use:   "exec [-n NS] POD -- CMD [ARGS...]",
		Short: "Run a program inside a pod's namespaces (ping, curl, dig, ip, ...)",
		Long: `Run any program of this machine inside a pod's network namespace, with the
pod's /etc/resolv.conf, /etc/hosts and hostname, as kubectl exec would: ping,
curl, dig, ip and ss see what the pod sees. The program's exit status is
podnet's.`,
		Example: `  podnet exec frontend -- ip addr
  podnet exec frontend -- nslookup kubernetes.default
  podnet exec -n secure database -- ip route`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := findPod(cmd, cf, nsf.get(), args[0])
			if err != nil {
				return err
			}
			// Host-network pods share the node's network, /etc/hosts and
			// hostname but have a resolv.conf of their own (dnsPolicy).
			dir, cleanup, err := podFilesDir(p.Dir)
			if err != nil {
				return err
			}
			defer cleanup()
			o := podexec.Options{NetNS: p.NetNS, ResolvConf: filepath.Join(dir, "resolv.conf")}
			if !p.HostNetwork {
				o.Hosts = filepath.Join(dir, "hosts")
				o.Hostname = p.Name
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			argv := args[1:]
			if len(argv) > 0 && argv[0] == "--" {
				argv = argv[1:]
			}
			if len(argv) == 0 {
				return errors.New("give the program to run after --")
			}
			c := podexec.Command(self, o, argv)
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr()
			return exitErr(c.Run())
		},
	}
	nsf.register(cmd, "namespace of POD")
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// podFilesDir is a directory with the pod's resolv.conf and hosts that
// pod-exec can bind: dir itself, or for a containerd pod (a container's
// /etc seen through /proc, in another mount namespace, which cannot be
// bound from here) a temporary copy, which cleanup removes.
func podFilesDir(dir string) (string, func(), error) {
	if !strings.HasPrefix(dir, "/proc/") {
		return dir, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "podnet-exec-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(tmp) }
	for _, f := range []string{"resolv.conf", "hosts"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err == nil {
			err = os.WriteFile(filepath.Join(tmp, f), b, 0o644)
		}
		if err != nil {
			cleanup()
			return "", nil, err
		}
	}
	return tmp, cleanup, nil
}

// exitError carries a child's exit code to main.
type exitError struct {
	code  int
	msg   string
	quiet bool // already explained on stdout
}

func (e exitError) Error() string {
	if e.msg != "" {
		return e.msg
	}
	return "exit status " + strconv.Itoa(e.code)
}

func exitErr(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return exitError{code: ee.ExitCode()}
	}
	return err
}
