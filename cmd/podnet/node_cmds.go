package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/podnet/podnet/internal/kubeletapi"
	"github.com/podnet/podnet/internal/podexec"
	"github.com/podnet/podnet/internal/podruntime"
	"github.com/podnet/podnet/internal/testserver"
)

func newRuntimeCommand() *cobra.Command {
	var cfg podruntime.Config
	var nodeIP string
	var dns []string
	cmd := &cobra.Command{
		Use:   "runtime",
		Short: "Run the local cluster's pod runtime for one node (started by podnet up)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ip, err := netip.ParseAddr(nodeIP)
			if err != nil {
				return fmt.Errorf("--node-ip: %w", err)
			}
			cfg.NodeIP = ip
			for _, s := range dns {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return fmt.Errorf("--cluster-dns: %w", err)
				}
				cfg.ClusterDNS = append(cfg.ClusterDNS, a)
			}
			if cfg.Self, err = os.Executable(); err != nil {
				return err
			}
			cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return podruntime.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "the node's kubeconfig")
	f.StringVar(&cfg.NodeName, "node-name", "", "this node's name")
	f.StringVar(&nodeIP, "node-ip", "", "this node's InternalIP")
	f.StringToStringVar(&cfg.NodeLabels, "node-labels", nil, "labels the Node registers with and keeps, key=value,... (the kubelet's --node-labels; the NodeRestriction admission plugin allows topology.kubernetes.io/* among others)")
	f.StringVar(&cfg.StateDir, "state-dir", "", "the node's state directory")
	f.StringVar(&cfg.CNIConfDir, "cni-conf-dir", "", "CNI configuration directory")
	f.StringVar(&cfg.CNIBinDir, "cni-bin-dir", "", "CNI plugin directory")
	f.StringVar(&cfg.NetNSPrefix, "netns-prefix", "podnet-pod-", "prefix of pod network namespace names")
	f.StringSliceVar(&dns, "cluster-dns", []string{"10.96.0.10"}, "cluster DNS server(s) for ClusterFirst pods")
	f.StringVar(&cfg.ClusterDomain, "cluster-domain", "cluster.local", "cluster DNS domain")
	f.StringVar(&cfg.HostResolvConf, "host-resolv-conf", "", "resolv.conf for dnsPolicy Default pods")
	kubeletAPIFlags(f, &cfg.KubeletAPI)
	return cmd
}

// kubeletAPIFlags are the runtime's kubelet API settings (kubectl exec,
// attach, logs, port-forward through the API server); without an address
// it is not served.
func kubeletAPIFlags(f *pflag.FlagSet, c *kubeletapi.Config) {
	f.StringVar(&c.Addr, "kubelet-api-address", "", "serve the kubelet API on this host:port (the node's InternalIP and 10250); empty: not served")
	f.StringVar(&c.CertFile, "kubelet-api-cert", "", "the kubelet API's serving certificate (PEM; valid for the node's InternalIP)")
	f.StringVar(&c.KeyFile, "kubelet-api-key", "", "the serving certificate's key (PEM)")
	f.StringVar(&c.ClientCAFile, "kubelet-api-client-ca", "", "CA certificates (PEM) that clients' certificates must chain to")
	f.StringSliceVar(&c.AllowedUsers, "kubelet-api-allowed-users", nil, "client certificate CNs allowed to use the kubelet API (kube-apiserver's --kubelet-client-certificate)")
}

func newServeCommand() *cobra.Command {
	var c testserver.Config
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the built-in test server (HTTP on TCP ports, echo of the client on UDP ports)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.Pod == "" {
				c.Pod, _ = os.Hostname()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			fmt.Fprintf(cmd.ErrOrStderr(), "podnet serve: pod %s, tcp %v, udp %v\n", c.Pod, c.TCPPorts, c.UDPPorts)
			return testserver.Serve(ctx, c)
		},
	}
	cmd.Flags().StringVar(&c.Pod, "name", "", "name to answer with (default: hostname)")
	cmd.Flags().IntSliceVar(&c.TCPPorts, "tcp", nil, "TCP ports to serve HTTP on")
	cmd.Flags().IntSliceVar(&c.UDPPorts, "udp", nil, "UDP ports to answer on")
	return cmd
}

func newPodExecCommand() *cobra.Command {
	var o podexec.Options
	cmd := &cobra.Command{
		Use:   "pod-exec [flags] -- PROGRAM [ARGS...]",
		Short: "Enter a pod's namespaces and run a program (used by the pod runtime)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return podexec.Exec(o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.NetNS, "netns", "", "network namespace path")
	f.StringVar(&o.ResolvConf, "resolv-conf", "", "file to bind over /etc/resolv.conf")
	f.StringVar(&o.Hosts, "hosts", "", "file to bind over /etc/hosts")
	f.StringVar(&o.Hostname, "hostname", "", "hostname in a new UTS namespace")
	f.StringVar(&o.Dir, "dir", "", "working directory")
	f.SetInterspersed(false)
	return cmd
}
