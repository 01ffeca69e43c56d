// Package e2e runs podnet end to end: a real local cluster (podnet up), real
// pods in network namespaces, real packets, real kubectl. It needs root and
// the control-plane binaries (make tools); `make test` provides both.
//
// Fixture conventions: the shared cluster is named e2e-<random> and uses its
// own address plan so that it never meets a cluster a developer runs with
// the defaults: pods 10.160.0.0/16, services 10.161.0.0/16, nodes
// 172.29.0.0/24 (API server .1, nodes .11 and .12, world .254), world
// 198.51.100.0/24. Tests that need a cluster of their own use 172.28.x;
// the encryption tests' clusters use 172.29.40-49.x (encryption_test.go).
//
// The shared cluster's service proxy is $PODNET_E2E_SERVICE_PROXY: podnet
// (the default, what `make test` runs), kube-proxy-nftables or
// kube-proxy-iptables (`make e2e-kube-proxy` runs the Service tests with
// each). Where the proxies differ in name only (their processes, their
// metrics) a test checks each by its own name (proxyProcName).
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/localcluster/controlplane"
)

var (
	repoRoot  string
	podnetBin string
	toolsBin  string
	skipWhy   string
	// serviceProxy is the clusters' --service-proxy
	// ($PODNET_E2E_SERVICE_PROXY, podnet when unset).
	serviceProxy string
)

// serviceProxyEnv chooses the clusters' service proxy.
const serviceProxyEnv = "PODNET_E2E_SERVICE_PROXY"

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Join(filepath.Dir(file), "..", "..")
	podnetBin = filepath.Join(repoRoot, "bin", "podnet")
	toolsBin = filepath.Join(repoRoot, "tools", "bin")
	serviceProxy = os.Getenv(serviceProxyEnv)
	if serviceProxy == "" {
		serviceProxy = localcluster.ServiceProxyPodnet
	}
	if !slices.Contains(localcluster.ServiceProxies, serviceProxy) {
		fmt.Fprintf(os.Stderr, "e2e: %s=%q: want one of %s\n", serviceProxyEnv, serviceProxy, strings.Join(localcluster.ServiceProxies, ", "))
		os.Exit(2)
	}
	switch {
	case os.Geteuid() != 0:
		skipWhy = "end-to-end: the local cluster needs root"
	default:
		for _, f := range []string{podnetBin, filepath.Join(repoRoot, "bin", "podnet-cni")} {
			if _, err := os.Stat(f); err != nil {
				skipWhy = fmt.Sprintf("end-to-end: %s is missing (run `make build tools`, or `make test`)", f)
			}
		}
		if err := controlplane.CheckBinaries(toolsBin); err != nil {
			skipWhy = fmt.Sprintf("end-to-end: %v (or `make test`)", err)
		}
	}
	code := m.Run()
	if shared != nil {
		shared.down()
	}
	if criShared != nil {
		criShared.down()
	}
	os.Exit(code)
}

// cluster is a running local cluster.
type cluster struct {
	name     string
	stateDir string
	upOut    string
	upTime   time.Duration
}

var (
	sharedOnce sync.Once
	shared     *cluster
	sharedErr  error
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sharedCluster starts (once) the cluster most tests use.
func sharedCluster(t *testing.T) *cluster {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	sharedOnce.Do(func() {
		shared, sharedErr = up("e2e-"+randHex(3), sharedPlan()...)
	})
	if sharedErr != nil {
		t.Fatalf("podnet up: %v", sharedErr)
	}
	return shared
}

// slotEnv moves the shared cluster to another address plan, so that
// several checkouts can run end-to-end tests at once on one machine.
const slotEnv = "PODNET_E2E_SLOT"

// sharedPlan is the shared cluster's address plan: slot 0 (the default)
// is the package doc's; slot s in 1..9 uses pods 10.(140+2s).0.0/16,
// services 10.(141+2s).0.0/16, nodes 172.29.s.0/24, world 198.19.(100+s).0/24.
func sharedPlan() []string {
	s, _ := strconv.Atoi(os.Getenv(slotEnv))
	if s < 1 || s > 9 {
		return []string{"--pod-cidr", "10.160.0.0/16", "--service-cidr", "10.161.0.0/16",
			"--node-network", "172.29.0.0/24", "--world-network", "198.51.100.0/24"}
	}
	return []string{"--pod-cidr", fmt.Sprintf("10.%d.0.0/16", 140+2*s), "--service-cidr", fmt.Sprintf("10.%d.0.0/16", 141+2*s),
		"--node-network", fmt.Sprintf("172.29.%d.0/24", s), "--world-network", fmt.Sprintf("198.19.%d.0/24", 100+s)}
}

func up(name string, args ...string) (*cluster, error) {
	c := &cluster{name: name}
	dir, err := os.MkdirTemp("", "podnet-e2e-")
	if err != nil {
		return nil, err
	}
	c.stateDir = filepath.Join(dir, "state")
	start := time.Now()
	out, err := c.podnet(append([]string{"up", "--nodes", "2", "--service-proxy", serviceProxy}, args...)...)
	c.upTime, c.upOut = time.Since(start), out
	if err != nil {
		c.down()
		return nil, fmt.Errorf("%v\n%s", err, out)
	}
	return c, nil
}

// upOwn starts a cluster of the test's own (podnet up args), takes it
// down when the test ends, and returns it with its configuration; what
// names the cluster in the messages.
func upOwn(t *testing.T, name, what string, args ...string) (*cluster, *localcluster.Config) {
	t.Helper()
	c, err := up(name, args...)
	if err != nil {
		t.Fatalf("podnet up %s: %v", what, err)
	}
	t.Cleanup(c.down)
	t.Logf("podnet up %s: %s", what, c.upTime.Round(100*time.Millisecond))
	cfg, err := localcluster.Load(c.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	return c, cfg
}

func (c *cluster) down() {
	out, err := c.podnet("down")
	if err != nil {
		fmt.Fprintf(os.Stderr, "podnet down %s: %v\n%s", c.name, err, out)
	}
	_ = os.RemoveAll(filepath.Dir(c.stateDir))
}

// podnet runs the CLI against this cluster and returns its combined output.
func (c *cluster) podnet(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	full := append([]string{"--cluster", c.name, "--state-dir", c.stateDir, "--tools-bin", toolsBin}, args...)
	cmd := exec.CommandContext(ctx, podnetBin, full...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

func (c *cluster) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.podnet(append([]string{"kubectl", "--"}, args...)...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// apply applies a manifest given as text.
func (c *cluster) apply(t *testing.T, manifest string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := c.podnet("apply", "-f", f); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
}

// proxyProcName is the process (record and log) that proxies Services on
// node: the podnet agent, or kube-proxy.
func proxyProcName(node string) string {
	if serviceProxy == localcluster.ServiceProxyPodnet {
		return "agent-" + node
	}
	return localcluster.KubeProxyProcName(node)
}

// eventually retries check until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = check(); err == nil {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("%s: not true after %s: %v", what, timeout, err)
}
