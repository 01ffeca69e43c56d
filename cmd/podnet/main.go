// Command podnet is podnet's command line. For a person it runs a local
// cluster (up, down, status, clusters, kubectl, apply) and helps see and
// debug its network (exec, logs, probe, trace, selfcheck); for podnet
// itself and for a real cluster's DaemonSet and Deployment it is also every
// daemon (agent, dns, runtime, world-dns, serve, pod-exec) and the node
// setup of its DaemonSet (install-cni, cleanup-node).
//
// This package only parses flags and prints: the work is done by the
// internal packages it calls (localcluster, trace, probe, agent, dns, ...).
// Exit status: 0 on success, 1 on failure; exec and kubectl pass on their
// program's, and probe and trace document their own (1 for no reply or
// denied, 2 for errors).
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/podnet/podnet/internal/version"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			if !ee.quiet && ee.msg != "" {
				fmt.Fprintln(os.Stderr, "podnet:", ee.msg)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "podnet:", err)
		os.Exit(1)
	}
}

// Command groups of `podnet --help`, in this order: what a person runs
// first, the daemons last.
const (
	groupCluster = "cluster"
	groupDebug   = "debug"
	groupDaemons = "daemons"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "podnet",
		Short: "Kubernetes networking: pod network, services, policy, DNS",
		Long: `podnet is Kubernetes networking: a CNI plugin with IPAM, a Service proxy on
nftables, NetworkPolicy, cluster DNS. It runs in a real cluster as a
DaemonSet, or on this machine as a local cluster of network namespaces with
a real control plane (podnet up).`,
		Example: `  sudo podnet up -f examples/seed
  podnet status
  podnet probe frontend pod/api:8080`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddGroup(
		&cobra.Group{ID: groupCluster, Title: "Local cluster:"},
		&cobra.Group{ID: groupDebug, Title: "See and debug:"},
		&cobra.Group{ID: groupDaemons, Title: "Daemons (run by podnet itself or a DaemonSet):"},
	)
	cf := &clusterFlags{}
	addClusterCommands(root, cf)
	selfcheck := newSelfcheckCommand()
	selfcheck.GroupID = groupDebug
	root.AddCommand(selfcheck, newVersionCommand())
	for _, c := range []*cobra.Command{newAgentCommand(), newDNSCommand(), newControllerCommand(), newRuntimeCommand(), newWorldDNSCommand(), newRegistryCommand(), newServeCommand(), newPodExecCommand(), newInstallCNICommand(), newCleanupNodeCommand()} {
		c.GroupID = groupDaemons
		root.AddCommand(c)
	}
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print podnet's version",
		Long:    "Print the version of this podnet binary (the agent, the CNI plugin and the DNS server of a build share it).",
		Example: "  podnet version",
		Args:    cobra.NoArgs,
		Run:     func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "podnet", version.Version) },
	}
}
