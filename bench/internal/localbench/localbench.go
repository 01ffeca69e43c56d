// Package localbench holds what the benchmarks that run against a running
// local cluster (`podnet up`) share: finding the cluster and an admin
// client config from its state directory, percentiles of samples, and
// the machine's load average to print next to the numbers (the machine
// is shared and noisy; a result without it cannot be judged), and a
// node agent's process record, to signal it and start it again the way
// `podnet up` started it.
//
// The admin kubeconfig it reads is the cluster's own (system:masters):
// a benchmark using it can do anything in the cluster, so it must delete
// what it creates.
package localbench

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/localcluster/controlplane"
	"github.com/podnet/podnet/internal/proc"
)

// Connect loads the local cluster called name (stateDir "" for its
// default state directory) and returns its config and a client config
// with the cluster's admin credentials, allowed qps requests per second.
func Connect(name, stateDir string, qps float32) (*localcluster.Config, *rest.Config, error) {
	dir := localcluster.DefaultConfig(name).StateDir
	if stateDir != "" {
		var err error
		if dir, err = filepath.Abs(stateDir); err != nil {
			return nil, nil, fmt.Errorf("state directory: %w", err)
		}
	}
	cfg, err := localcluster.Load(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("no local cluster %q (%w); start one with `podnet up`", name, err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", localcluster.AdminKubeconfigPath(cfg.StateDir))
	if err != nil {
		return nil, nil, fmt.Errorf("admin kubeconfig of %s: %w", name, err)
	}
	rc.QPS, rc.Burst = qps, int(2*qps)
	return cfg, rc, nil
}

// Percentile is the p-th percentile (nearest rank) of d, which must not
// be empty; with 20 samples p99 is the largest.
func Percentile[T cmp.Ordered](d []T, p float64) T {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(i, 0)]
}

// LoadAvg is the 1, 5 and 15 minute load average, "?" if unreadable.
func LoadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

// AgentRecord is the process record `podnet up` wrote for node i's agent;
// it fails unless that process is running (package proc's identity check).
func AgentRecord(cfg *localcluster.Config, i int) (*proc.Record, error) {
	rec, err := proc.Read(cfg.ProcsDir(), "agent-"+cfg.NodeName(i))
	if err != nil {
		return nil, fmt.Errorf("agent record of %s: %w", cfg.NodeName(i), err)
	}
	if !proc.Alive(rec) {
		return nil, fmt.Errorf("agent of %s (pid %d) is not running", cfg.NodeName(i), rec.PID)
	}
	return rec, nil
}

// RestartAgent starts node i's agent again from its record (argv, log,
// namespace), with the environment `podnet up` gives it, and returns the
// new record. It refuses while the recorded agent still runs.
func RestartAgent(cfg *localcluster.Config, i int) (*proc.Record, error) {
	rec, err := proc.Read(cfg.ProcsDir(), "agent-"+cfg.NodeName(i))
	if err != nil {
		return nil, fmt.Errorf("agent record: %w", err)
	}
	return proc.Start(cfg.ProcsDir(), proc.Spec{Name: rec.Name, Argv: rec.Argv, LogFile: rec.LogFile,
		Netns: rec.Netns, Env: controlplane.ProcessEnv()})
}
