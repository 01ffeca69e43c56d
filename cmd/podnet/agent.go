package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/podnet/podnet/internal/agent"
	"github.com/podnet/podnet/internal/proxy"
	"github.com/podnet/podnet/internal/routing"
	"github.com/podnet/podnet/internal/wireguard"
)

func parsePrefixes(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR prefix", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func newAgentCommand() *cobra.Command {
	var cfg agent.Config
	var clusterCIDRs, serviceCIDRs, nodePortAddresses []string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the podnet node agent (routing between nodes, masquerade, CNI config, service proxy, NetworkPolicy, LoadBalancer IP announcement)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.ClusterCIDRs, err = parsePrefixes(clusterCIDRs); err != nil {
				return fmt.Errorf("--cluster-cidr: %w", err)
			}
			if cfg.ServiceCIDRs, err = parsePrefixes(serviceCIDRs); err != nil {
				return fmt.Errorf("--service-cidr: %w", err)
			}
			if cfg.NodePortAddresses, err = proxy.ParseNodePortAddresses(nodePortAddresses); err != nil {
				return fmt.Errorf("--nodeport-addresses: %w", err)
			}
			if cfg.NodeName == "" {
				cfg.NodeName = os.Getenv("NODE_NAME")
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return agent.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig path (default: in-cluster configuration)")
	f.StringVar(&cfg.APIServerHost, "apiserver-host", "", "the API server's address, replacing the configuration's (the kubernetes Service's ClusterIP in a pod), for a node without kube-proxy; with --apiserver-port")
	f.StringVar(&cfg.APIServerPort, "apiserver-port", "", "the API server's port, with --apiserver-host")
	f.StringVar(&cfg.NodeName, "node-name", "", "this node's name (default: $NODE_NAME)")
	f.StringVar(&cfg.RoutingMode, "routing-mode", routing.ModeDirect, "how nodes reach each other's pods: direct or vxlan")
	f.StringSliceVar(&clusterCIDRs, "cluster-cidr", []string{"10.244.0.0/16"}, "the cluster's pod CIDRs")
	f.StringSliceVar(&serviceCIDRs, "service-cidr", []string{"10.96.0.0/16"}, "the cluster's service CIDRs")
	f.StringVar(&cfg.CNIConfDir, "cni-conf-dir", "/etc/cni/net.d", "where to write the CNI conflist (empty: do not write)")
	f.StringVar(&cfg.CNINetwork, "cni-network", "podnet", "network name in the CNI conflist")
	f.StringVar(&cfg.CNIDataDir, "cni-data-dir", "/var/lib/cni/podnet", "podnet-cni's IPAM directory")
	f.IntVar(&cfg.MTU, "mtu", 0, "pod interface MTU (default 1500, less 50 in vxlan mode, less 80 with encryption)")
	f.StringVar(&cfg.Encryption, "encryption", "", "encrypt pod traffic between nodes: wireguard (default: off)")
	f.BoolVar(&cfg.WireGuard.Strict, "encryption-strict", false, "with --encryption: drop (and count) traffic to remote pods that cannot go through the tunnel instead of sending it in the clear")
	f.StringVar(&cfg.WireGuard.KeyFile, "wireguard-key-file", wireguard.DefaultKeyFile, "this node's WireGuard private key (made when missing; root-only)")
	f.IntVar(&cfg.WireGuard.Port, "wireguard-port", wireguard.DefaultPort, "UDP port of the WireGuard device")
	f.DurationVar(&cfg.WireGuard.RotateEvery, "wireguard-key-rotation", 0, "make a new WireGuard key when the key is this old (0: only on request, podnet rotate-keys)")
	f.StringVar(&cfg.WireGuard.Implementation, "wireguard-implementation", wireguard.ImplAuto, "kernel, userspace (wireguard-go on a TUN device in the agent) or auto (the kernel's when it has WireGuard)")
	f.StringVar(&cfg.WireGuard.UAPIName, "wireguard-socket-name", wireguard.Device, "the user-space device's control socket, /var/run/wireguard/NAME.sock (wgctrl and wg show use NAME); nodes sharing a file system need different names")
	f.BoolVar(&cfg.DisableProxy, "disable-proxy", false, "do not run the service proxy (when kube-proxy runs instead)")
	f.BoolVar(&cfg.DisablePolicy, "disable-policy", false, "do not enforce NetworkPolicy")
	f.BoolVar(&cfg.DisableFlows, "disable-flows", false, "make no flow records (NFLOG drops, conntrack events; GET /flows)")
	f.BoolVar(&cfg.DisableFlowConntrack, "disable-flow-conntrack", false, "flow records of drops only, none of connections (no conntrack events)")
	f.StringSliceVar(&nodePortAddresses, "nodeport-addresses", nil,
		"CIDRs selecting this node's local addresses that NodePorts answer on, and the keywords primary (the node's InternalIPs) and all (0.0.0.0/0,::/0); a family without a CIDR gets none (default: the node's InternalIPs)")
	f.BoolVar(&cfg.LBAnnounce, "lb-announce", false, "answer ARP/NDP for the LoadBalancer IPs this node owns, with heartbeats between agents for failover")
	f.Uint16Var(&cfg.LBHeartbeatPort, "lb-heartbeat-port", 7947, "UDP port of the LoadBalancer heartbeats on the node's InternalIP")
	f.StringVar(&cfg.LBKeyFile, "lb-key-file", "", "file with the heartbeat key shared by all agents (default: the Secret podnet-lb-heartbeat in --lb-key-namespace, created when missing)")
	f.StringVar(&cfg.LBKeyNamespace, "lb-key-namespace", "kube-system", "namespace of the heartbeat key's Secret when there is no --lb-key-file")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", ":10249", "address for Prometheus /metrics (empty: off)")
	f.StringVar(&cfg.HealthzAddr, "healthz-addr", ":10256", "address for /healthz (empty: off)")
	f.BoolVarP(&verbose, "verbose", "v", false, "log every sync")
	return cmd
}
