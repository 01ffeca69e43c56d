package podruntime

import (
	"log/slog"
	"net/netip"
	"path/filepath"

	"github.com/podnet/podnet/internal/kubeletapi"
)

// Config configures the runtime of one node.
type Config struct {
	Kubeconfig string
	NodeName   string
	// NodeIP is the node's InternalIP.
	NodeIP netip.Addr
	// NodeLabels are set on the Node when it registers and kept on it at
	// every restart, like the kubelet's --node-labels (the local cluster's
	// topology.kubernetes.io/zone and region). NodeRestriction lets a node
	// set only some labels on itself: kubernetes.io/hostname, the
	// topology.kubernetes.io/* ones, node.kubernetes.io/* and a few more.
	NodeLabels map[string]string
	// StateDir holds the node's pods: StateDir/pods/<ns>_<name>_<uid>/.
	StateDir string
	// CNIConfDir and CNIBinDir are where the CNI conflist and plugins are.
	CNIConfDir string
	CNIBinDir  string
	// NetNSPrefix starts every pod namespace name ("<cluster>-pod-").
	NetNSPrefix string
	// Self is the podnet binary (for pod-exec and the built-in server).
	Self string
	// ClusterDNS and ClusterDomain go into pods' resolv.conf (ClusterFirst).
	ClusterDNS    []netip.Addr
	ClusterDomain string
	// HostResolvConf is used for dnsPolicy Default.
	HostResolvConf string
	// KubeletAPI serves exec, attach, logs and port-forward to the API
	// server when its Addr is set; the port goes into the Node's
	// daemonEndpoints.
	KubeletAPI kubeletapi.Config
	Log        *slog.Logger
}

func (c *Config) podDir(ns, name, uid string) string {
	return filepath.Join(c.StateDir, "pods", ns+"_"+name+"_"+uid)
}

// PodDir is where the runtime of node stateDir keeps a pod's files.
func PodDir(stateDir, ns, name, uid string) string {
	return filepath.Join(stateDir, "pods", ns+"_"+name+"_"+uid)
}

// NetNSName is the network namespace name of a pod.
func NetNSName(prefix, uid string) string {
	u := ""
	for _, c := range uid {
		if c != '-' {
			u += string(c)
		}
	}
	if len(u) > 12 {
		u = u[:12]
	}
	return prefix + u
}
