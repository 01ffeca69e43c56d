// Command podnet is podnet's command line: it runs the local cluster and
// its daemons, and helps a person see and debug the network. This first
// version carries the node self-check; the local cluster's commands (up,
// down, status, exec, probe, ...) join it as they land.
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

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "podnet",
		Short:         "Kubernetes networking: pod network, services, policy, DNS",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cf := &clusterFlags{}
	cf.register(root)
	addClusterCommands(root, cf)
	root.AddCommand(newSelfcheckCommand(), newAgentCommand(), newDNSCommand(), newRuntimeCommand(), newServeCommand(), newPodExecCommand(), &cobra.Command{
		Use:   "version",
		Short: "Print podnet's version",
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "podnet", version.Version) },
	})
	return root
}
