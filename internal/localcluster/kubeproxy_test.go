package localcluster

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/podnet/podnet/internal/localcluster/internal/lctest"
	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/pki"
	"github.com/podnet/podnet/internal/proc"
)

// kubeProxyCluster is a 2-node test cluster running kube-proxy in mode
// proxy, with a cluster CA and an admin kubeconfig in its state directory
// (what IssueKubeProxyCredentials needs; nothing runs).
func kubeProxyCluster(t *testing.T, proxy string) *Config {
	t.Helper()
	c := lctest.RandomConfig(2)
	c.StateDir = filepath.Join(t.TempDir(), "state")
	c.ServiceProxy = proxy
	ca, err := pki.EnsureCA(plan.PKIDir(c.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := ca.IssueClient("admin", "kubernetes-admin", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	kc := pki.Kubeconfig{Cluster: c.Name, User: "admin", Server: c.APIServerURL(), CAPEM: ca.CertPEM, CertPEM: admin.CertPEM, KeyPEM: admin.KeyPEM}
	if err := kc.Write(plan.AdminKubeconfigPath(c.StateDir)); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= c.Nodes; i++ {
		if err := os.MkdirAll(c.NodeDir(i), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func nodeSpecs() []proc.Spec {
	return []proc.Spec{{Name: "agent-n", Argv: []string{"podnet", "agent"}}, {Name: "runtime-n", Argv: []string{"podnet", "runtime"}}}
}

func TestWithKubeProxyLeavesAPodnetClusterAlone(t *testing.T) {
	c := kubeProxyCluster(t, ServiceProxyPodnet)
	got, err := withKubeProxy(c, 1, "/tools", nodeSpecs())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, nodeSpecs()) {
		t.Errorf("specs %+v, want them unchanged", got)
	}
	if _, err := os.Stat(c.KubeProxyConfigPath(1)); !os.IsNotExist(err) {
		t.Errorf("a kube-proxy configuration was written for a podnet cluster: %v", err)
	}
}

func TestWithKubeProxyTurnsTheAgentsProxyOffAndAddsKubeProxy(t *testing.T) {
	for _, tc := range []struct{ proxy, mode string }{
		{ServiceProxyKubeProxyNFTables, "nftables"},
		{ServiceProxyKubeProxyIPTables, "iptables"},
	} {
		t.Run(tc.proxy, func(t *testing.T) {
			c := kubeProxyCluster(t, tc.proxy)
			got, err := withKubeProxy(c, 2, "/tools", nodeSpecs())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 {
				t.Fatalf("%d specs, want the agent, the runtime and kube-proxy: %+v", len(got), got)
			}
			wantAgent := []string{"podnet", "agent", "--disable-proxy", "--metrics-addr", ":10259", "--healthz-addr", ":10266"}
			if !slices.Equal(got[0].Argv, wantAgent) {
				t.Errorf("agent argv %q, want %q", got[0].Argv, wantAgent)
			}
			kp := got[2]
			if kp.Name != "kube-proxy-"+c.NodeName(2) || !slices.Equal(kp.Argv, []string{"/tools/kube-proxy", "--config=" + c.KubeProxyConfigPath(2)}) {
				t.Errorf("kube-proxy spec %+v", kp)
			}
			data, err := os.ReadFile(c.KubeProxyConfigPath(2))
			if err != nil {
				t.Fatal(err)
			}
			kubeconfig := filepath.Join(plan.KubeconfigDir(c.StateDir), "kube-proxy-"+c.NodeName(2)+".kubeconfig")
			for _, want := range []string{"mode: " + tc.mode + "\n", `kubeconfig: "` + kubeconfig + `"`, `hostnameOverride: "` + c.NodeName(2) + `"`} {
				if !strings.Contains(string(data), want) {
					t.Errorf("kube-proxy.yaml lacks %q:\n%s", want, data)
				}
			}
			if _, err := os.Stat(kubeconfig); err != nil {
				t.Errorf("kube-proxy's kubeconfig: %v", err)
			}
		})
	}
}

// The configuration is read by the real kube-proxy (strictly: an unknown
// or misspelt field would only be warned about) and ends with the settings
// that let it run in a node namespace.
func TestKubeProxyReadsItsConfigurationStrictly(t *testing.T) {
	bin := filepath.Join(lctest.ToolsBin(), KubeProxyBinary)
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("kube-proxy test: %v (make tools builds it)", err)
	}
	c := lctest.RandomConfig(2)
	in, out := filepath.Join(t.TempDir(), "in.yaml"), filepath.Join(t.TempDir(), "out.yaml")
	if err := os.WriteFile(in, kubeProxyConfig(c, 1, "iptables", "/state/kp.kubeconfig"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--config="+in, "--write-config-to="+out)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kube-proxy --write-config-to: %v\n%s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "strict decoding") {
		t.Errorf("kube-proxy did not read the file strictly:\n%s", stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Mode                                   string
		HostnameOverride                       string
		ClusterCIDR                            string
		DetectLocalMode                        string
		ClientConnection                       struct{ Kubeconfig string }
		MetricsBindAddress, HealthzBindAddress string
		NodePortAddresses                      []string
		OOMScoreAdj                            *int
		Conntrack                              struct{ MaxPerCore, Min *int }
	}
	if err := yaml.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	zero := 0
	want := got
	want.Mode, want.HostnameOverride, want.ClusterCIDR, want.DetectLocalMode = "iptables", c.NodeName(1), c.PodCIDR.String(), "ClusterCIDR"
	want.ClientConnection.Kubeconfig = "/state/kp.kubeconfig"
	want.MetricsBindAddress, want.HealthzBindAddress = "127.0.0.1:10249", "0.0.0.0:10256"
	want.NodePortAddresses, want.OOMScoreAdj = []string{"primary"}, &zero
	want.Conntrack.MaxPerCore, want.Conntrack.Min = &zero, &zero
	if !reflect.DeepEqual(got, want) {
		t.Errorf("kube-proxy resolved its configuration to\n%+v\nwant\n%+v\n%s", got, want, data)
	}
}

func TestCheckKubeProxyNamesWhatIsMissing(t *testing.T) {
	c := lctest.RandomConfig(1)
	empty := t.TempDir()
	if err := checkKubeProxy(c, empty); err != nil {
		t.Errorf("a podnet cluster needs no kube-proxy: %v", err)
	}
	c.ServiceProxy = ServiceProxyKubeProxyNFTables
	err := checkKubeProxy(c, empty)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(empty, "kube-proxy")) || !strings.Contains(err.Error(), "make tools") {
		t.Errorf("without kube-proxy: %v, want its path and `make tools`", err)
	}
	if err := os.WriteFile(filepath.Join(empty, "kube-proxy"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir())
	if err := checkKubeProxy(c, empty); err != nil {
		t.Errorf("nftables mode needs no iptables: %v", err)
	}
	c.ServiceProxy = ServiceProxyKubeProxyIPTables
	if err := checkKubeProxy(c, empty); err == nil || !strings.Contains(err.Error(), "iptables") || !strings.Contains(err.Error(), "make deps") {
		t.Errorf("iptables mode without iptables: %v, want the command and `make deps`", err)
	}
}

func TestParseMetricFindsTheSeriesWithItsLabels(t *testing.T) {
	const text = `# HELP kubeproxy_sync_proxy_rules_last_timestamp_seconds [ALPHA] The last time proxy rules were successfully synced
# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge
kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv6"} 1.7e+09
kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"} 1.8e+09
`
	v, err := parseMetric(strings.NewReader(text), kubeProxySyncedMetric)
	if err != nil || v != 1.8e9 {
		t.Errorf("parseMetric = %v, %v; want the IPv4 series, 1.8e9", v, err)
	}
	if _, err := parseMetric(strings.NewReader(text), "kubeproxy_sync_proxy_rules_last_timestamp_seconds"); err == nil {
		t.Error("a name without its labels matched a labelled series")
	}
}

// Up does not wait out its timeout for a kube-proxy that died: it says
// so at once, with the end of its log.
func TestWaitKubeProxiesNamesAKubeProxyThatExited(t *testing.T) {
	c := kubeProxyCluster(t, ServiceProxyKubeProxyNFTables)
	name := KubeProxyProcName(c.NodeName(1))
	rec, err := proc.Start(c.ProcsDir(), proc.Spec{Name: name, Argv: []string{"sh", "-c", "echo cannot write nf_conntrack_max; exit 1"},
		LogFile: filepath.Join(c.LogsDir(), name+".log")})
	if err != nil {
		t.Fatal(err)
	}
	for proc.Alive(rec) {
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	err = waitKubeProxies(context.Background(), c, time.Minute)
	if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "cannot write nf_conntrack_max") {
		t.Errorf("waitKubeProxies = %v, want the process, that it exited and its log", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s to notice", d)
	}
	c.ServiceProxy = ServiceProxyPodnet
	if err := waitKubeProxies(context.Background(), c, time.Second); err != nil {
		t.Errorf("a podnet cluster has no kube-proxy to wait for: %v", err)
	}
}
