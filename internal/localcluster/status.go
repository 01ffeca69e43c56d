package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/localcluster/guard"
	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/proc"
)

// Status is a snapshot of a local cluster, as `podnet status` shows it.
// Its JSON (and YAML) form is a stable interface for scripts: fields may be
// added, never renamed or removed.
type Status struct {
	Name       string          `json:"name"`
	APIServer  string          `json:"apiServer"`
	StateDir   string          `json:"stateDir"`
	Kubeconfig string          `json:"kubeconfig"`
	Addresses  AddressPlan     `json:"addresses"`
	Processes  []ProcessStatus `json:"processes"`
	// Nodes is empty when the API server did not answer.
	Nodes []NodeStatus `json:"nodes"`
	// Guard is what confines the root-namespace processes (package
	// guard); its droppedPackets should stay 0.
	Guard GuardStatus `json:"guard"`

	// ServiceProxy is what proxies Services on the nodes: one of
	// ServiceProxies (podnet, kube-proxy-nftables, kube-proxy-iptables).
	ServiceProxy string `json:"serviceProxy"`
	// NodeRuntime is what runs the pods: podnet or containerd
	// (plan.NodeRuntimes).
	NodeRuntime string `json:"nodeRuntime"`
	// Zones are the cluster's zones (podnet up --zones); none: absent.
	Zones []string `json:"zones,omitempty"`
}

// GuardStatus is the guard's table, group and counter (guard.Stats).
type GuardStatus = guard.Stats

// AddressPlan is the cluster's address plan (see Config).
type AddressPlan struct {
	PodCIDR      netip.Prefix `json:"podCIDR"`
	ServiceCIDR  netip.Prefix `json:"serviceCIDR"`
	NodeNetwork  netip.Prefix `json:"nodeNetwork"`
	WorldNetwork netip.Prefix `json:"worldNetwork"`
	LBPool       netip.Prefix `json:"lbPool"`
	ClusterDNS   netip.Addr   `json:"clusterDNS"`
}

// Process states.
const (
	StateRunning = "running"
	StateDead    = "dead"
)

// ProcessStatus is one process the cluster started.
type ProcessStatus struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	// State is StateRunning or StateDead.
	State string `json:"state"`
}

// NodeStatus is one Node as the API server has it.
type NodeStatus struct {
	Name       string   `json:"name"`
	Ready      bool     `json:"ready"`
	InternalIP string   `json:"internalIP,omitempty"`
	PodCIDRs   []string `json:"podCIDRs"`
	// Zone is the Node's topology.kubernetes.io/zone label; absent when
	// it has none.
	Zone string `json:"zone,omitempty"`
}

// ReadStatus reads the cluster's processes from its state directory, its
// guard from the root namespace (guard.Read) and its Nodes from the API
// server. When the API server cannot be asked, it returns what it has (no
// nodes) and the error; a guard that cannot be read says why in its Error.
func ReadStatus(ctx context.Context, c *Config, client kubernetes.Interface) (*Status, error) {
	return ReadStatusWith(ctx, c, client, guard.Read)
}

// ReadStatusWith is ReadStatus with the guard read by readGuard.
func ReadStatusWith(ctx context.Context, c *Config, client kubernetes.Interface,
	readGuard func(context.Context, *Config) GuardStatus) (*Status, error) {
	s := &Status{
		Name: c.Name, APIServer: c.APIServerURL(), StateDir: c.StateDir, Kubeconfig: AdminKubeconfigPath(c.StateDir),
		ServiceProxy: c.ServiceProxy, NodeRuntime: c.NodeRuntime, Zones: c.Zones,
		Addresses: AddressPlan{PodCIDR: c.PodCIDR, ServiceCIDR: c.ServiceCIDR, NodeNetwork: c.NodeNetwork,
			WorldNetwork: c.WorldNetwork, LBPool: c.LBPool, ClusterDNS: c.DNSServiceIP()},
		Processes: []ProcessStatus{},
		Nodes:     []NodeStatus{},
	}
	recs, _ := proc.ReadAll(c.ProcsDir()) // an unreadable record is no process of ours
	for _, r := range recs {
		state := StateRunning
		if !proc.Alive(r) {
			state = StateDead
		}
		s.Processes = append(s.Processes, ProcessStatus{Name: r.Name, PID: r.PID, State: state})
	}
	s.Guard = readGuard(ctx, c)
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return s, fmt.Errorf("API server: %w", err)
	}
	for _, n := range nodes.Items {
		s.Nodes = append(s.Nodes, nodeStatus(&n))
	}
	sort.Slice(s.Nodes, func(i, j int) bool { return s.Nodes[i].Name < s.Nodes[j].Name })
	return s, nil
}

func nodeStatus(n *v1.Node) NodeStatus {
	ns := NodeStatus{Name: n.Name, PodCIDRs: n.Spec.PodCIDRs, Zone: n.Labels[v1.LabelTopologyZone]}
	if len(ns.PodCIDRs) == 0 && n.Spec.PodCIDR != "" {
		ns.PodCIDRs = []string{n.Spec.PodCIDR}
	}
	if ns.PodCIDRs == nil {
		ns.PodCIDRs = []string{}
	}
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady && c.Status == v1.ConditionTrue {
			ns.Ready = true
		}
	}
	for _, a := range n.Status.Addresses {
		if a.Type == v1.NodeInternalIP && ns.InternalIP == "" {
			ns.InternalIP = a.Address
		}
	}
	return ns
}

// Cluster states in a Summary.
const (
	ClusterRunning  = "running"  // every recorded process is alive
	ClusterDegraded = "degraded" // some are
	ClusterStopped  = "stopped"  // none is (after a crash or a reboot: podnet down cleans up)
)

// Summary is one cluster found on this machine.
type Summary struct {
	Name      string `json:"name"`
	Nodes     int    `json:"nodes"`
	State     string `json:"state"`
	APIServer string `json:"apiServer"`
	StateDir  string `json:"stateDir"`
}

// List finds the clusters whose saved config is in a directory under root
// (DefaultStateRoot unless a --state-dir put it elsewhere), sorted by
// name. A missing root holds none. Directories without a config are not
// clusters; a config that cannot be read is reported in the error, and the
// others are still listed.
func List(root string) ([]Summary, error) {
	paths, err := filepath.Glob(filepath.Join(root, "*", plan.ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	if _, err := os.Stat(root); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	var out []Summary
	var errs []error
	for _, p := range paths {
		c, err := Load(filepath.Dir(p))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, Summary{Name: c.Name, Nodes: c.Nodes, State: processState(c), APIServer: c.APIServerURL(), StateDir: c.StateDir})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, errors.Join(errs...)
}

// processState says how many of the cluster's recorded processes are alive.
func processState(c *Config) string {
	recs, _ := proc.ReadAll(c.ProcsDir())
	alive := 0
	for _, r := range recs {
		if proc.Alive(r) {
			alive++
		}
	}
	switch {
	case alive > 0 && alive == len(recs):
		return ClusterRunning
	case alive > 0:
		return ClusterDegraded
	}
	return ClusterStopped
}
