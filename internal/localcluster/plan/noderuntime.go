package plan

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// What runs the pods on a local cluster's nodes (`podnet up --node-runtime`).
const (
	// NodeRuntimePodnet is podnet's own pod runtime (`podnet runtime`), with
	// the agent started by up beside it in every node namespace.
	NodeRuntimePodnet = "podnet"
	// NodeRuntimeContainerd is a real kubelet and containerd in every node
	// namespace (package crinode); podnet is installed into the cluster as
	// a user would: its image imported into each node's containerd and
	// deploy/ applied with kubectl.
	NodeRuntimeContainerd = "containerd"
)

// NodeRuntimes are the values Config.NodeRuntime accepts, default first.
var NodeRuntimes = []string{NodeRuntimePodnet, NodeRuntimeContainerd}

func (c *Config) validateNodeRuntime() error {
	if slices.Contains(NodeRuntimes, c.NodeRuntime) {
		if c.NodeRuntime == NodeRuntimeContainerd && c.ServiceProxy != ServiceProxyPodnet {
			return fmt.Errorf("nodeRuntime %q: runs podnet's own service proxy only (serviceProxy %q)", c.NodeRuntime, c.ServiceProxy)
		}
		return nil
	}
	return fmt.Errorf("nodeRuntime %q: want one of %s", c.NodeRuntime, strings.Join(NodeRuntimes, ", "))
}

// Containerd reports whether the nodes run a kubelet and containerd.
func (c *Config) Containerd() bool { return c.NodeRuntime == NodeRuntimeContainerd }

// MountNSPath is where node i's mount namespace is kept (containerd nodes).
func (c *Config) MountNSPath(i int) string {
	return filepath.Join(c.StateDir, "mntns", c.NodeName(i))
}

// RegistryPort is the port of the world's image registry (containerd
// nodes), on the world's underlay address.
const RegistryPort = 5000
