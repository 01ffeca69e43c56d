package localcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/podnet/podnet/internal/localcluster/controlplane"
	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/proc"
)

// A cluster whose Config.ServiceProxy is a kube-proxy mode runs upstream
// kube-proxy (tools/bin, built from the pinned k8s.io/kubernetes) in every
// node namespace, and the node's podnet agent with its proxy off: routing,
// masquerade, NetworkPolicy and the CNI configuration stay podnet's.

// KubeProxyBinary is upstream kube-proxy, in UpOptions.ToolsBin.
const KubeProxyBinary = "kube-proxy"

// Where kube-proxy listens inside a node namespace: its own defaults, so
// that what a kube-proxy user knows holds (health checks of load balancers
// go to :10256 of every node). The agent, which has them in podnet mode,
// moves its metrics and health to the ports below.
const (
	KubeProxyMetricsAddr            = "127.0.0.1:10249"
	KubeProxyHealthzAddr            = "0.0.0.0:10256"
	AgentMetricsAddrBesideKubeProxy = ":10259"
	AgentHealthzAddrBesideKubeProxy = ":10266"
)

// iptablesCommands are what kube-proxy's iptables mode runs (Debian's
// iptables package: `make deps`).
var iptablesCommands = []string{"iptables", "iptables-save", "iptables-restore"}

// KubeProxyProcName is the process name (record and log) of node's kube-proxy.
func KubeProxyProcName(node string) string { return "kube-proxy-" + node }

// checkKubeProxy checks that a cluster that runs kube-proxy has it, and
// the iptables commands for its iptables mode.
func checkKubeProxy(cfg *Config, toolsBin string) error {
	mode, ok := cfg.KubeProxyMode()
	if !ok {
		return nil
	}
	bin := filepath.Join(toolsBin, KubeProxyBinary)
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("--service-proxy %s: missing %s (run `make tools`)", cfg.ServiceProxy, bin)
	}
	if mode == "iptables" {
		for _, c := range iptablesCommands {
			if _, err := exec.LookPath(c); err != nil {
				return fmt.Errorf("--service-proxy %s: %w (install Debian's iptables: `make deps`)", cfg.ServiceProxy, err)
			}
		}
	}
	return nil
}

// withKubeProxy returns node i's process specs (its agent first) as the
// cluster's service proxy wants them: unchanged for podnet; for a
// kube-proxy mode, the agent with its proxy off and its ports moved, and a
// kube-proxy with its credentials and configuration file.
func withKubeProxy(cfg *Config, i int, toolsBin string, specs []proc.Spec) ([]proc.Spec, error) {
	mode, ok := cfg.KubeProxyMode()
	if !ok {
		return specs, nil
	}
	node := cfg.NodeName(i)
	kubeconfig, err := controlplane.IssueKubeProxyCredentials(cfg.StateDir, node)
	if err != nil {
		return nil, err
	}
	path := cfg.KubeProxyConfigPath(i)
	if err := plan.WriteFile(path, kubeProxyConfig(cfg, i, mode, kubeconfig), 0o644); err != nil {
		return nil, fmt.Errorf("kube-proxy configuration: %w", err)
	}
	specs[0].Argv = append(specs[0].Argv, "--disable-proxy",
		"--metrics-addr", AgentMetricsAddrBesideKubeProxy, "--healthz-addr", AgentHealthzAddrBesideKubeProxy)
	return append(specs, proc.Spec{Name: KubeProxyProcName(node),
		Argv: []string{filepath.Join(toolsBin, KubeProxyBinary), "--config=" + path}}), nil
}

// kubeProxyConfig is node i's KubeProxyConfiguration. kube-proxy runs in
// the node's network namespace but, like every process of the cluster,
// shares the machine's other namespaces, so it must not write what is
// global: conntrack.maxPerCore and min 0 leave nf_conntrack_max and the
// conntrack hash size alone (both belong to the whole machine; a node
// namespace cannot write them, and kube-proxy would exit). The timeouts
// it sets (tcpEstablishedTimeout, tcpCloseWaitTimeout) are sysctls of the
// network namespace, the node's own. oomScoreAdj 0: a learning cluster's
// processes get no protection from the OOM killer that the machine's do
// not. nodePortAddresses primary: NodePorts on the node's InternalIP, as
// podnet's proxy does by default (and kube-proxy's nftables mode).
func kubeProxyConfig(cfg *Config, i int, mode, kubeconfig string) []byte {
	return fmt.Appendf(nil, `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: %s
clientConnection:
  kubeconfig: %q
hostnameOverride: %q
clusterCIDR: %q
detectLocalMode: ClusterCIDR
nodePortAddresses: [primary]
metricsBindAddress: %q
healthzBindAddress: %q
oomScoreAdj: 0
conntrack:
  maxPerCore: 0
  min: 0
`, mode, kubeconfig, cfg.NodeName(i), cfg.PodCIDR.String(), KubeProxyMetricsAddr, KubeProxyHealthzAddr)
}

// kubeProxySyncedMetric is kube-proxy's time of its last successful sync
// of the IPv4 rules (the local cluster's family); it is set once the first
// sync has written them.
const kubeProxySyncedMetric = `kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"}`

// waitKubeProxies waits until every node's kube-proxy has written its
// rules once, failing early, with the end of its log, if one exits.
func waitKubeProxies(ctx context.Context, cfg *Config, timeout time.Duration) error {
	if _, ok := cfg.KubeProxyMode(); !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for i := 1; i <= cfg.Nodes; i++ {
		rec, err := proc.Read(cfg.ProcsDir(), KubeProxyProcName(cfg.NodeName(i)))
		if err != nil {
			return err
		}
		nsPath := netns.Path(cfg.NodeNSName(i))
		for {
			if !proc.Alive(rec) {
				return fmt.Errorf("%s (pid %d) exited; last lines of %s:\n%s", rec.Name, rec.PID, rec.LogFile, proc.LogTail(rec, 15))
			}
			v, err := kubeProxyMetric(ctx, nsPath, kubeProxySyncedMetric)
			if err == nil && v > 0 {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s has not synced its rules after %s (%v); see %s", rec.Name, timeout, err, rec.LogFile)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

// kubeProxyMetric reads one series (a name with its labels, as
// Prometheus' text format writes them) from the /metrics of the kube-proxy
// in the namespace at nsPath; it fails when the series is missing.
func kubeProxyMetric(ctx context.Context, nsPath, name string) (float64, error) {
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
		DialContext: controlplane.Dialer(nsPath)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+KubeProxyMetricsAddr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return parseMetric(io.LimitReader(resp.Body, 16<<20), name)
}

// parseMetric finds `series value` in Prometheus text.
func parseMetric(r io.Reader, name string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no metric " + name)
}
