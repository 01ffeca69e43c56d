package main

import (
	"context"
	"errors"
	"fmt"
	"net"
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
	"github.com/podnet/podnet/internal/proc"
	"github.com/podnet/podnet/internal/testserver"
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
			if err := cfg.SetRanges(localcluster.Ranges{PodCIDR: podCIDR, ServiceCIDR: serviceCIDR, NodeNetwork: nodeNetwork, WorldNetwork: worldNetwork}); err != nil {
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
			logs, _ := filepath.Glob(filepath.Join(p.Dir, "logs", "*.log"))
			if container != "" {
				logs = []string{filepath.Join(p.Dir, "logs", container+".log")}
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
			o := podexec.Options{NetNS: p.NetNS, ResolvConf: filepath.Join(p.Dir, "resolv.conf")}
			if !p.HostNetwork {
				o.Hosts = filepath.Join(p.Dir, "hosts")
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
	var ns, protocol string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "probe [-n NS] POD TARGET:PORT",
		Short: "Connect from inside a pod; exit 0 when a reply came back, 1 when not, 2 on error",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := findPod(cmd, cf, ns, args[0])
			if err != nil {
				return exitError{code: 2, msg: err.Error()}
			}
			reply, err := probeFrom(p.NetNS, protocol, args[1], timeout)
			out := cmd.OutOrStdout()
			if err != nil {
				fmt.Fprintf(out, "%s %s -> %s: no reply: %v\n", protocol, args[0], args[1], err)
				return exitError{code: 1, quiet: true}
			}
			if pod, client, ok := testserver.ParseReply(reply); ok {
				fmt.Fprintf(out, "%s %s -> %s: answered by pod %s, which saw the client as %s\n", protocol, args[0], args[1], pod, client)
			} else {
				fmt.Fprintf(out, "%s %s -> %s: reply %q\n", protocol, args[0], args[1], strings.TrimSpace(reply))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace")
	cmd.Flags().StringVar(&protocol, "protocol", "tcp", "tcp or udp")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Second, "how long to wait for a reply")
	return cmd
}

// probeFrom connects from inside the namespace at nsPath. TCP sends an HTTP
// request (the built-in server answers with who it is; any reply counts);
// UDP sends a datagram and waits for one back.
func probeFrom(nsPath, protocol, target string, timeout time.Duration) (string, error) {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return "", err
	}
	// An address, never a name: resolving a name here would ask this
	// machine's resolver, not the cluster's DNS (use `podnet exec POD --
	// curl NAME` for names).
	if _, err := netip.ParseAddr(host); err != nil {
		return "", fmt.Errorf("target %q: give an IP address (names would be resolved by this machine, not the cluster)", target)
	}
	var conn net.Conn
	err = netns.Do(nsPath, func() (err error) {
		conn, err = (&net.Dialer{Timeout: timeout}).Dial(protocol, target)
		return err
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if protocol == "udp" {
		if _, err := conn.Write([]byte("probe\n")); err != nil {
			return "", err
		}
	} else {
		if _, err := fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", host); err != nil {
			return "", err
		}
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if n == 0 {
		return "", err
	}
	reply := string(buf[:n])
	if i := strings.Index(reply, "\r\n\r\n"); i >= 0 {
		reply = reply[i+4:]
	}
	return reply, nil
}
