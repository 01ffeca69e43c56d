package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/podnet/podnet/internal/selfcheck"
)

func newSelfcheckCommand() *cobra.Command {
	opts := selfcheck.Options{}
	cmd := &cobra.Command{
		Use:   "selfcheck",
		Short: "Wire two throwaway pods with podnet-cni and show them reaching each other",
		Long: `selfcheck creates a node network namespace and two pod namespaces, adds
the pods with podnet-cni through libcni as a container runtime would, pings
and connects over TCP from one pod to the other, and removes everything.
It needs root. No packet leaves the namespaces it creates.`,
		Example: `  podnet selfcheck
  podnet selfcheck --cni-bin-dir ./bin --pod-cidr 10.253.0.0/24`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Out = cmd.OutOrStdout()
			if err := selfcheck.Run(cmd.Context(), opts); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "self-check passed: podnet-cni gives pods their own IPs and they reach each other")
			return nil
		},
	}
	exe, _ := os.Executable()
	cmd.Flags().StringVar(&opts.PluginDir, "cni-bin-dir", filepath.Dir(exe), "directory holding the podnet-cni binary")
	cmd.Flags().StringVar(&opts.PodCIDR, "pod-cidr", "10.244.0.0/24", "range the two pods get addresses from")
	return cmd
}
