package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/podnet/podnet/internal/nodecleanup"
)

// newCleanupNodeCommand is `podnet cleanup-node`: after an uninstall,
// remove from this node what the agent and podnet-cni made.
func newCleanupNodeCommand() *cobra.Command {
	cfg := nodecleanup.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "cleanup-node",
		Short: "Remove podnet's tables, links, routes and files from this node (after an uninstall)",
		Long: `Remove from this node what podnet's agent and podnet-cni made: the nftables
tables inet podnet-proxy, podnet-policy, podnet-routing and podnet-wireguard,
the VXLAN device pnvxlan, the WireGuard device pnwg0, the host-side veths of
pods (name pn..., alias podnet:...), the routes with podnet's protocol number
(80), the CNI conflist, podnet-cni, the IPAM directory, libcni's cached results
of podnet's network, /run/podnet and the node's WireGuard key and saved peers. Nothing
else is touched; running it twice is fine.
Pods still running on the node lose their network: run it once podnet is
deleted (deploy/cleanup/ runs it on every node; docs/install.md).`,
		Example: `  podnet cleanup-node
  kubectl debug node/worker-1 -it --profile=sysadmin --image=ghcr.io/podnet/podnet:TAG -- podnet cleanup-node --root=/host`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			removed, err := nodecleanup.Run(cmd.Context(), cfg)
			for _, r := range removed {
				fmt.Fprintln(cmd.OutOrStdout(), "removed", r)
			}
			if err != nil {
				return fmt.Errorf("cleanup-node: %w", err)
			}
			if len(removed) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "nothing of podnet left on this node")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.CNIConfDir, "cni-conf-dir", cfg.CNIConfDir, "where the agent wrote its conflist (empty: skip)")
	f.StringVar(&cfg.CNIBinDir, "cni-bin-dir", cfg.CNIBinDir, "where install-cni put podnet-cni (empty: skip)")
	f.StringVar(&cfg.CNIDataDir, "cni-data-dir", cfg.CNIDataDir, "podnet-cni's IPAM directory, removed whole (empty: skip)")
	f.StringVar(&cfg.RunDir, "run-dir", cfg.RunDir, "podnet's runtime directory, removed whole (empty: skip)")
	f.StringVar(&cfg.CNICacheDir, "cni-cache-dir", cfg.CNICacheDir, "libcni's cache directory, whose results/ of network --cni-network go (empty: skip)")
	f.StringVar(&cfg.CNINetwork, "cni-network", cfg.CNINetwork, "the network name in podnet's conflist (the agent's --cni-network)")
	f.StringVar(&cfg.WireGuardKeyFile, "wireguard-key-file", cfg.WireGuardKeyFile, "the node's WireGuard private key (the agent's --wireguard-key-file), removed with its directory once empty (empty: skip)")
	f.StringVar(&cfg.Root, "root", "", "where the node's file system is mounted, the directories above being inside it (/host in a kubectl debug node pod)")
	return cmd
}
