package plan

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// The service proxies a local cluster can run on its nodes (Config.ServiceProxy,
// `podnet up --service-proxy`).
const (
	// ServiceProxyPodnet is the podnet agent's own proxy (table podnet-proxy).
	ServiceProxyPodnet = "podnet"
	// ServiceProxyKubeProxyNFTables is upstream kube-proxy in nftables mode
	// (tables ip/ip6 kube-proxy), with the agents' proxy off.
	ServiceProxyKubeProxyNFTables = "kube-proxy-nftables"
	// ServiceProxyKubeProxyIPTables is upstream kube-proxy in iptables mode
	// (the iptables binary; Debian's default backend writes the nat and
	// filter tables through nf_tables), with the agents' proxy off.
	ServiceProxyKubeProxyIPTables = "kube-proxy-iptables"
)

// ServiceProxies are the values Config.ServiceProxy accepts, default first.
var ServiceProxies = []string{ServiceProxyPodnet, ServiceProxyKubeProxyNFTables, ServiceProxyKubeProxyIPTables}

// kubeProxyPrefix begins every ServiceProxy value that runs kube-proxy;
// the rest is kube-proxy's --proxy-mode.
const kubeProxyPrefix = "kube-proxy-"

// KubeProxyMode is kube-proxy's mode (nftables or iptables) when the
// cluster runs kube-proxy on its nodes; ok is false when the podnet agents
// proxy Services themselves.
func (c *Config) KubeProxyMode() (mode string, ok bool) {
	return strings.CutPrefix(c.ServiceProxy, kubeProxyPrefix)
}

// validateServiceProxy says what is wrong with ServiceProxy, or nil.
func (c *Config) validateServiceProxy() error {
	if slices.Contains(ServiceProxies, c.ServiceProxy) {
		return nil
	}
	return fmt.Errorf("serviceProxy %q: want one of %s", c.ServiceProxy, strings.Join(ServiceProxies, ", "))
}

// KubeProxyConfigPath is node i's kube-proxy configuration file (a
// KubeProxyConfiguration), when the cluster runs kube-proxy.
func (c *Config) KubeProxyConfigPath(i int) string {
	return filepath.Join(c.NodeDir(i), "kube-proxy.yaml")
}

// DescribeServiceProxy says in a few words what runs as proxy, for
// `podnet up` and `podnet status`.
func DescribeServiceProxy(proxy string) string {
	if mode, ok := strings.CutPrefix(proxy, kubeProxyPrefix); ok {
		return fmt.Sprintf("%s (upstream kube-proxy in %s mode in each node namespace; the agents' proxy is off)", proxy, mode)
	}
	return proxy + " (the podnet agent in each node namespace, table podnet-proxy)"
}
