package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/podexec"
	"github.com/podnet/podnet/internal/podruntime"
	"github.com/podnet/podnet/internal/probe"
	"github.com/podnet/podnet/internal/proc"
)

// clusterFlags are shared by every command that talks to a local cluster.
type clusterFlags struct {
	name     string
	stateDir string
	toolsBin string
}

func (f *clusterFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.name, "cluster", "podnet", "local cluster name")
	cmd.PersistentFlags().StringVar(&f.stateDir, "state-dir", "", "cluster state directory (default /var/lib/podnet/<cluster>)")
	exe, _ := os.Executable()
	cmd.PersistentFlags().StringVar(&f.toolsBin, "tools-bin", filepath.Join(filepath.Dir(exe), "..", "tools", "bin"), "directory with etcd, kube-apiserver, ..., kubectl (make tools)")
}

func (f *clusterFlags) config() *localcluster.Config {
	cfg := localcluster.DefaultConfig(f.name)
	if f.stateDir != "" {
		if abs, err := filepath.Abs(f.stateDir); err == nil {
			cfg.StateDir = abs
		}
	}
	return cfg
}

// load returns the running cluster's saved config.
func (f *clusterFlags) load() (*localcluster.Config, error) {
	dir := f.config().StateDir
	cfg, err := localcluster.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("no local cluster %q (%v); start one with `podnet up`", f.name, err)
	}
	return cfg, nil
}

func (f *clusterFlags) client() (*localcluster.Config, kubernetes.Interface, error) {
	cfg, err := f.load()
	if err != nil {
		return nil, nil, err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", localcluster.AdminKubeconfigPath(cfg.StateDir))
	if err != nil {
		return nil, nil, err
	}
	c, err := kubernetes.NewForConfig(rc)
	return cfg, c, err
}

func addClusterCommands(root *cobra.Command, cf *clusterFlags) {
	root.AddCommand(newUpCommand(cf), newDownCommand(cf), newStatusCommand(cf), newKubectlCommand(cf),
		newApplyCommand(cf), newLogsCommand(cf), newExecCommand(cf), newProbeCommand(cf), newTraceCommand(cf),
		newWorldDNSCommand())
}

func newUpCommand(cf *clusterFlags) *cobra.Command {
	var o localcluster.UpOptions
	var nodes int
	var podCIDR, serviceCIDR, nodeNetwork, worldNetwork string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a local cluster: control plane, nodes and pods in network namespaces",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := cf.config()
			cfg.Nodes = nodes
			if err := applyAddressFlags(cfg, podCIDR, serviceCIDR, nodeNetwork, worldNetwork); err != nil {
				return err
			}
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
			if o.CNIBin, err = filepath.Abs(o.CNIBin); err != nil {
				return err
			}
			if err := localcluster.Up(cmd.Context(), cfg, o); err != nil {
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
	cmd.Flags().StringVar(&worldNetwork, "world-network", "", "the outside world's addresses, a /24 (default 203.0.113.0/24)")
	cmd.Flags().StringArrayVarP(&o.Manifests, "filename", "f", nil, "manifest file or directory to apply once the nodes are Ready (repeatable)")
	cmd.Flags().StringVar(&o.RoutingMode, "routing-mode", "direct", "how nodes reach each other's pods: direct or vxlan")
	cmd.Flags().StringVar(&o.CNIBin, "cni-bin-dir", "", "directory with podnet-cni (default: next to podnet)")
	return cmd
}

// applyAddressFlags overrides the default address plan.
func applyAddressFlags(cfg *localcluster.Config, pod, svc, nodeNet, world string) error {
	parse := func(flag, v string, dst *netip.Prefix) error {
		if v == "" {
			return nil
		}
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return fmt.Errorf("--%s: %q is not a CIDR prefix", flag, v)
		}
		*dst = p.Masked()
		return nil
	}
	if err := parse("pod-cidr", pod, &cfg.PodCIDR); err != nil {
		return err
	}
	if err := parse("service-cidr", svc, &cfg.ServiceCIDR); err != nil {
		return err
	}
	if err := parse("world-network", world, &cfg.WorldNetwork); err != nil {
		return err
	}
	if world != "" {
		cfg.WorldDNSIP = nth(cfg.WorldNetwork, 53)
	}
	if err := parse("node-network", nodeNet, &cfg.NodeNetwork); err != nil {
		return err
	}
	if nodeNet != "" {
		if !cfg.NodeNetwork.Addr().Is4() || cfg.NodeNetwork.Bits() != 24 {
			return fmt.Errorf("--node-network must be an IPv4 /24, not %s", cfg.NodeNetwork)
		}
		cfg.RootIP, cfg.FirstNodeIP, cfg.WorldIP = nth(cfg.NodeNetwork, 1), nth(cfg.NodeNetwork, 11), nth(cfg.NodeNetwork, 254)
		cfg.LBPool = netip.PrefixFrom(nth(cfg.NodeNetwork, 200), 29)
	}
	return nil
}

// nth returns the n-th address of an IPv4 prefix.
func nth(p netip.Prefix, n int) netip.Addr {
	b := p.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func printNext(cmd *cobra.Command, cfg *localcluster.Config) {
	c := ""
	if cfg.Name != "podnet" {
		c = " --cluster " + cfg.Name
	}
	fmt.Fprintf(cmd.OutOrStdout(), `
Cluster %q is up. Try:
  podnet%s kubectl -- get nodes -o wide
  podnet%s kubectl -- get pods -A -o wide
  podnet%s exec POD -- ip addr
  podnet%s exec POD -- nslookup kubernetes.default   (cluster DNS)
  podnet%s probe POD OTHER-POD-IP:80
  podnet%s trace POD OTHER-POD:80      (why NetworkPolicy allows or denies it)
  podnet%s logs POD
  podnet%s down
kubeconfig for your own kubectl: %s
`, cfg.Name, c, c, c, c, c, c, c, c, localcluster.AdminKubeconfigPath(cfg.StateDir))
}

func newDownCommand(cf *clusterFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Remove the local cluster: processes, namespaces, links, routes, state",
		Args:  cobra.NoArgs,
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

func newStatusCommand(cf *clusterFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the local cluster's processes, addresses and nodes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, client, err := cf.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "cluster %s: API %s, pods %s, services %s, nodes on %s\n", cfg.Name, cfg.APIServerURL(), cfg.PodCIDR, cfg.ServiceCIDR, cfg.NodeNetwork)
			recs, _ := proc.ReadAll(filepath.Join(cfg.StateDir, "procs"))
			for _, r := range recs {
				state := "running"
				if !proc.Alive(r) {
					state = "DEAD"
				}
				fmt.Fprintf(out, "  %-34s pid %-8d %s\n", r.Name, r.PID, state)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil {
				return fmt.Errorf("API server: %w", err)
			}
			for _, n := range nodes.Items {
				ready := "NotReady"
				for _, c := range n.Status.Conditions {
					if c.Type == "Ready" && c.Status == "True" {
						ready = "Ready"
					}
				}
				fmt.Fprintf(out, "  node %-20s %-8s podCIDR %s\n", n.Name, ready, n.Spec.PodCIDR)
			}
			return nil
		},
	}
}

func newKubectlCommand(cf *clusterFlags) *cobra.Command {
	return &cobra.Command{
		Use:                "kubectl -- ARGS...",
		Short:              "Run the bundled kubectl against the local cluster",
		DisableFlagParsing: false,
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
		Args:  cobra.NoArgs,
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

// podRef finds a pod and where its node keeps it.
type podRef struct {
	cfg      *localcluster.Config
	ns, name string
	uid      string
	node     string
	nodeIdx  int
	hostNet  bool
	podIP    string
}

func findPod(cmd *cobra.Command, cf *clusterFlags, ns, name string) (*podRef, error) {
	cfg, client, err := cf.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
	defer cancel()
	p, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if p.Spec.NodeName == "" {
		return nil, fmt.Errorf("pod %s/%s is not scheduled yet", ns, name)
	}
	ref := &podRef{cfg: cfg, ns: ns, name: name, uid: string(p.UID), node: p.Spec.NodeName, hostNet: p.Spec.HostNetwork, podIP: p.Status.PodIP}
	for i := 1; i <= cfg.Nodes; i++ {
		if cfg.NodeName(i) == p.Spec.NodeName {
			ref.nodeIdx = i
		}
	}
	if ref.nodeIdx == 0 {
		return nil, fmt.Errorf("pod %s/%s runs on %s, which is not a node of this cluster", ns, name, p.Spec.NodeName)
	}
	return ref, nil
}

func (p *podRef) dir() string {
	return podruntime.PodDir(p.cfg.NodeDir(p.nodeIdx), p.ns, p.name, p.uid)
}

func (p *podRef) netnsPath() string {
	if p.hostNet {
		return netns.Path(p.cfg.NodeNSName(p.nodeIdx))
	}
	return netns.Path(p.cfg.PodNSName(p.uid))
}

func newLogsCommand(cf *clusterFlags) *cobra.Command {
	var ns, container string
	cmd := &cobra.Command{
		Use:   "logs [-n NS] POD",
		Short: "Show a pod's container log",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := findPod(cmd, cf, ns, args[0])
			if err != nil {
				return err
			}
			logs, _ := filepath.Glob(filepath.Join(p.dir(), "logs", "*.log"))
			if container != "" {
				logs = []string{filepath.Join(p.dir(), "logs", container+".log")}
			}
			if len(logs) == 0 {
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
	cmd.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace")
	cmd.Flags().StringVarP(&container, "container", "c", "", "container (default: all)")
	return cmd
}

func newExecCommand(cf *clusterFlags) *cobra.Command {
	var ns string
	cmd := &cobra.Command{
		Use:   "exec [-n NS] POD -- CMD [ARGS...]",
		Short: "Run a program inside a pod's namespaces (ping, curl, dig, ip, ...)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := findPod(cmd, cf, ns, args[0])
			if err != nil {
				return err
			}
			// Host-network pods share the node's network, /etc/hosts and
			// hostname but have a resolv.conf of their own (dnsPolicy).
			o := podexec.Options{NetNS: p.netnsPath(), ResolvConf: filepath.Join(p.dir(), "resolv.conf")}
			if !p.hostNet {
				o.Hosts = filepath.Join(p.dir(), "hosts")
				o.Hostname = p.name
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
	cmd.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace")
	cmd.Flags().SetInterspersed(false)
	return cmd
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

func newProbeCommand(cf *clusterFlags) *cobra.Command {
	return newProbeCommandWith(func(cmd *cobra.Command, ns, name string) (string, error) {
		p, err := findPod(cmd, cf, ns, name)
		if err != nil {
			return "", err
		}
		return p.netnsPath(), nil
	})
}

// newProbeCommandWith builds the command on a function that finds a pod's
// network namespace (the tests' seam).
func newProbeCommandWith(podNetNS func(cmd *cobra.Command, ns, name string) (string, error)) *cobra.Command {
	var ns, protocol string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "probe [-n NS] POD TARGET:PORT",
		Short: "Connect from inside a pod; exit 0 when a reply came back, 1 when not, 2 on error",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 2 {
				return exitError{code: 2, msg: fmt.Sprintf("probe takes POD and TARGET:PORT, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			nsPath, err := podNetNS(cmd, ns, args[0])
			if err != nil {
				return exitError{code: 2, msg: err.Error()}
			}
			reply, err := probe.From(nsPath, protocol, args[1], timeout)
			out := cmd.OutOrStdout()
			var noReply *probe.NoReplyError
			switch {
			case errors.As(err, &noReply):
				fmt.Fprintf(out, "%s %s -> %s: %v\n", protocol, args[0], args[1], err)
				return exitError{code: 1, quiet: true}
			case err != nil:
				return exitError{code: 2, msg: err.Error()}
			case reply.Pod != "":
				fmt.Fprintf(out, "%s %s -> %s: answered by pod %s, which saw the client as %s\n", protocol, args[0], args[1], reply.Pod, reply.Client)
			default:
				fmt.Fprintf(out, "%s %s -> %s: reply %q\n", protocol, args[0], args[1], strings.TrimSpace(reply.Body))
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitError{code: 2, msg: err.Error()} })
	cmd.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace")
	cmd.Flags().StringVar(&protocol, "protocol", "tcp", "tcp or udp")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Second, "how long to wait for a reply")
	return cmd
}
