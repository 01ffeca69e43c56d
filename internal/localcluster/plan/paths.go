package plan

import (
	"os"
	"path/filepath"
)

// The state directory's layout (DESIGN-NOTES.md, "State directory layout").

// ProcsDir holds one record per process of the cluster (package proc).
func ProcsDir(stateDir string) string { return filepath.Join(stateDir, "procs") }

// LogsDir holds one log per process.
func LogsDir(stateDir string) string { return filepath.Join(stateDir, "logs") }

// PKIDir holds the cluster CA and every certificate it issued.
func PKIDir(stateDir string) string { return filepath.Join(stateDir, "pki") }

// KubeconfigDir holds the kubeconfigs of the control plane's and the
// nodes' components.
func KubeconfigDir(stateDir string) string { return filepath.Join(stateDir, "kubeconfigs") }

// AdminKubeconfigPath is the admin (system:masters) kubeconfig, the one
// `podnet kubectl` uses.
func AdminKubeconfigPath(stateDir string) string { return filepath.Join(stateDir, "kubeconfig") }

// ProcsDir is ProcsDir(c.StateDir).
func (c *Config) ProcsDir() string { return ProcsDir(c.StateDir) }

// LogsDir is LogsDir(c.StateDir).
func (c *Config) LogsDir() string { return LogsDir(c.StateDir) }

// NodeDir is node i's state directory.
func (c *Config) NodeDir(i int) string { return filepath.Join(c.StateDir, "nodes", c.NodeName(i)) }

// NodeResolvConfPath is node i's resolver configuration: what a
// dnsPolicy: Default pod on it gets (the kubelet's --resolv-conf). In the
// local cluster it names the world's DNS server, never the host's resolver.
func (c *Config) NodeResolvConfPath(i int) string { return filepath.Join(c.NodeDir(i), "resolv.conf") }

// WriteFile writes data to path through a rename, leaving an unchanged
// file alone.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
