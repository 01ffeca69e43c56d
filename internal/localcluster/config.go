package localcluster

import "github.com/podnet/podnet/internal/localcluster/plan"

// Config describes one local cluster; see plan.Config. It is an alias, so
// the CLI and the tests need only this package to start and find a
// cluster.
type Config = plan.Config

// Ranges are the ranges podnet up's flags choose, as given; see
// plan.Config.SetRanges.
type Ranges = plan.Ranges

// DefaultNodes is the node count of DefaultConfig.
const DefaultNodes = plan.DefaultNodes

// DefaultConfig returns the default configuration of the cluster called
// name (plan.DefaultConfig).
func DefaultConfig(name string) *Config { return plan.DefaultConfig(name) }

// Load reads and validates the Config saved in stateDir (plan.Load).
func Load(stateDir string) (*Config, error) { return plan.Load(stateDir) }

// AdminKubeconfigPath is the admin kubeconfig of the cluster in stateDir,
// the one `podnet kubectl` uses.
func AdminKubeconfigPath(stateDir string) string { return plan.AdminKubeconfigPath(stateDir) }

// DefaultStateRoot holds one state directory per cluster.
const DefaultStateRoot = plan.DefaultStateRoot

// The service proxies of Config.ServiceProxy (plan.ServiceProxies).
const (
	ServiceProxyPodnet            = plan.ServiceProxyPodnet
	ServiceProxyKubeProxyNFTables = plan.ServiceProxyKubeProxyNFTables
	ServiceProxyKubeProxyIPTables = plan.ServiceProxyKubeProxyIPTables
)

// ServiceProxies are the values Config.ServiceProxy accepts, default first.
var ServiceProxies = plan.ServiceProxies

// The node runtimes of Config.NodeRuntime (plan.NodeRuntimes).
const (
	NodeRuntimePodnet     = plan.NodeRuntimePodnet
	NodeRuntimeContainerd = plan.NodeRuntimeContainerd
)

// DescribeServiceProxy says in a few words what runs as the service proxy
// (plan.DescribeServiceProxy).
func DescribeServiceProxy(proxy string) string { return plan.DescribeServiceProxy(proxy) }

// Region is the topology.kubernetes.io/region of every node of a cluster
// with zones (plan.Region).
const Region = plan.Region

// ParseZones splits a --zones value (plan.ParseZones).
func ParseZones(s string) []string { return plan.ParseZones(s) }
