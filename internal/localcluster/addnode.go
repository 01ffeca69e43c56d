package localcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podnet/podnet/internal/localcluster/addons"
	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/localcluster/topology"
)

// AddNode adds one node to the running cluster cfg: its namespace on the
// underlay, its pod runtime and agent with the cluster's settings (routing
// mode, service proxy, encryption), and waits until it is Ready. It
// returns the new node's name. The cluster's saved Config counts the node
// from the moment its namespace exists, so podnet down removes a node
// whose start failed.
func AddNode(ctx context.Context, cfg *Config, o UpOptions) (string, error) {
	if cfg.Containerd() {
		return "", fmt.Errorf("cluster %q: adding a node is not supported with node runtime %q", cfg.Name, cfg.NodeRuntime)
	}
	if !Running(cfg.StateDir) {
		return "", fmt.Errorf("cluster %q is not running", cfg.Name)
	}
	if err := checkUpBinaries(o); err != nil {
		return "", err
	}
	if cfg.Nodes >= plan.MaxNodes {
		return "", fmt.Errorf("cluster %q has %d nodes, the most there can be", cfg.Name, cfg.Nodes)
	}
	cfg.Nodes++
	i := cfg.Nodes
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	node := cfg.NodeName(i)
	o.say("adding node %s at %s", node, cfg.NodeIP(i))
	if err := topology.AddNode(cfg, i); err != nil {
		return "", err
	}
	if err := cfg.Save(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(cfg.NodeDir(i), 0o755); err != nil {
		return "", err
	}
	if err := plan.WriteFile(cfg.NodeResolvConfPath(i), []byte(addons.NodeResolvConf(cfg)), 0o644); err != nil {
		return "", fmt.Errorf("node %s resolv.conf: %w", node, err)
	}
	if err := startNode(cfg, i, o); err != nil {
		return "", fmt.Errorf("node %s: %w", node, err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", AdminKubeconfigPath(cfg.StateDir))
	if err != nil {
		return "", err
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return "", err
	}
	start := time.Now()
	if err := waitNodesReady(ctx, client, cfg.Nodes, o.readyTimeout()); err != nil {
		return "", errors.Join(err, fmt.Errorf("see %s", cfg.LogsDir()))
	}
	if err := waitKubeProxies(ctx, cfg, o.readyTimeout()); err != nil {
		return "", err
	}
	o.say("node %s Ready after %s", node, time.Since(start).Round(100*time.Millisecond))
	return node, nil
}
