package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/podnet/podnet/internal/atomicfile"
)

// cniPlugin is podnet-cni's file name, next to podnet in the image and in
// the node's CNI bin dir.
const cniPlugin = "podnet-cni"

// newInstallCNICommand is `podnet install-cni`, the agent DaemonSet's init
// container: it puts the image's podnet-cni into the node's CNI bin dir.
func newInstallCNICommand() *cobra.Command {
	var binDir, source string
	cmd := &cobra.Command{
		Use:   "install-cni",
		Short: "Install podnet-cni into the node's CNI bin dir (the agent DaemonSet's init container)",
		Long: `Copy podnet-cni into the CNI bin dir atomically: a temporary file in the same
directory, synced, then renamed over podnet-cni, so that a container runtime
executing the plugin meanwhile runs the old or the new one whole. A file that
already has the same content and mode is left alone.`,
		Example: "  podnet install-cni --cni-bin-dir /opt/cni/bin",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if source == "" {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("install-cni: %w", err)
				}
				source = filepath.Join(filepath.Dir(exe), cniPlugin)
			}
			wrote, err := installCNI(source, binDir)
			if err != nil {
				return fmt.Errorf("install-cni: %w", err)
			}
			dst := filepath.Join(binDir, cniPlugin)
			if wrote {
				fmt.Fprintf(cmd.OutOrStdout(), "installed %s from %s\n", dst, source)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s is up to date\n", dst)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&binDir, "cni-bin-dir", "/opt/cni/bin", "the node's CNI plugin directory (the container runtime's bin_dir)")
	cmd.Flags().StringVar(&source, "source", "", "the podnet-cni to install (default: next to this podnet executable)")
	return cmd
}

// installCNI makes binDir/podnet-cni a copy of source (mode 0755) and
// reports whether it wrote.
func installCNI(source, binDir string) (bool, error) {
	b, err := os.ReadFile(source)
	if err != nil {
		return false, err
	}
	if len(b) == 0 {
		return false, fmt.Errorf("%s is empty", source)
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return false, err
	}
	return atomicfile.WriteIfChanged(filepath.Join(binDir, cniPlugin), b, 0o755)
}
