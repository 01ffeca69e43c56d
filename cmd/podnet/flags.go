package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podnet/podnet/internal/localcluster"
)

// stateRoot holds one state directory per local cluster (a variable for
// the tests).
var stateRoot = localcluster.DefaultStateRoot

// clusterFlags are the flags of the commands that talk to a local cluster:
// --cluster and --state-dir, and --tools-bin for those that run a bundled
// binary. They are registered on each such command, not on the root, so
// the daemons and the other commands neither take nor list them.
type clusterFlags struct {
	name     string
	stateDir string
	toolsBin string
}

// Environment variables that, when set, are the defaults of the cluster
// flags, the way KUBECONFIG is kubectl's: a shell that works with another
// cluster exports them once, and commands typed as the docs show them
// (`podnet probe ...`) talk to that cluster (test/e2e's doc test does this).
const (
	envCluster  = "PODNET_CLUSTER"
	envStateDir = "PODNET_STATE_DIR"
	envToolsBin = "PODNET_TOOLS_BIN"
)

// envOr is the environment variable key when it is set and not empty, else
// def.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// register adds the cluster flags to cmd, with their defaults from the
// environment (envCluster, ...). --tools-bin is listed when the command
// runs a bundled binary (tools) and accepted but hidden on the others, so
// that a script may give the same three flags to every cluster command
// (test/e2e and bench/ do).
func (f *clusterFlags) register(cmd *cobra.Command, tools bool) {
	cmd.Flags().StringVar(&f.name, "cluster", envOr(envCluster, "podnet"), "local cluster name (env "+envCluster+")")
	cmd.Flags().StringVar(&f.stateDir, "state-dir", os.Getenv(envStateDir), "cluster state directory (env "+envStateDir+"; default "+stateRoot+"/<cluster>)")
	exe, _ := os.Executable()
	cmd.Flags().StringVar(&f.toolsBin, "tools-bin", envOr(envToolsBin, filepath.Join(filepath.Dir(exe), "..", "tools", "bin")), "directory with etcd, kube-apiserver, ..., kubectl (env "+envToolsBin+"; make tools)")
	if !tools {
		_ = cmd.Flags().MarkHidden("tools-bin")
	}
}

func (f *clusterFlags) config() *localcluster.Config {
	cfg := localcluster.DefaultConfig(f.name)
	cfg.StateDir = filepath.Join(stateRoot, f.name)
	if f.stateDir != "" {
		if abs, err := filepath.Abs(f.stateDir); err == nil {
			cfg.StateDir = abs
		}
	}
	return cfg
}

// load returns the running cluster's saved config.
func (f *clusterFlags) load() (*localcluster.Config, error) {
	dir := f.config().StateDir
	cfg, err := localcluster.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("no local cluster %q (%w); start one with `podnet up`", f.name, err)
	}
	return cfg, nil
}

func (f *clusterFlags) client() (*localcluster.Config, kubernetes.Interface, error) {
	cfg, err := f.load()
	if err != nil {
		return nil, nil, err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", localcluster.AdminKubeconfigPath(cfg.StateDir))
	if err != nil {
		return nil, nil, err
	}
	c, err := kubernetes.NewForConfig(rc)
	return cfg, c, err
}

// kubeconfig is the local cluster's admin kubeconfig (which need not
// exist).
func (f *clusterFlags) kubeconfig() string {
	return localcluster.AdminKubeconfigPath(f.config().StateDir)
}

// namespaceFlag is -n of the commands that name a pod. Not given, it is the
// namespace of the current context of the kubeconfig the command uses, as
// with kubectl, else "default".
type namespaceFlag struct {
	value      string
	kubeconfig func() string
}

func (n *namespaceFlag) register(cmd *cobra.Command, usage string) {
	cmd.Flags().StringVarP(&n.value, "namespace", "n", "", usage+" (default: the kubeconfig's current-context namespace, else default)")
}

func (n *namespaceFlag) get() string {
	if n.value != "" {
		return n.value
	}
	return kubeconfigNamespace(n.kubeconfig())
}

// kubeconfigNamespace is the namespace of the current context of the
// kubeconfig at path, or "default" when it has none or cannot be read.
func kubeconfigNamespace(path string) string {
	if path == "" {
		return "default"
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return "default"
	}
	if c := cfg.Contexts[cfg.CurrentContext]; c != nil && c.Namespace != "" {
		return c.Namespace
	}
	return "default"
}
