package controlplane

// Fixture conventions for the control-plane tests:
//   - state lives in t.TempDir(); nothing is written under /var/lib/podnet;
//   - kube-apiserver listens on 127.0.0.1 on a free port, etcd and the
//     health ports of kube-controller-manager and kube-scheduler on other
//     free loopback ports, so no traffic leaves loopback;
//   - the service range is 10.96.0.0/16 and the pod range 10.244.0.0/16 cut
//     into /26 per node (not the default /24, to see the flag arrive); they
//     exist only in the API: no route or address is created for them;
//   - the binaries come from tools/bin (`make tools`); without them, or
//     without root, the process tests skip and say which.

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/localcluster/internal/lctest"
	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/pki"
	"github.com/podnet/podnet/internal/proc"
)

// testConfig is a valid configuration that starts nothing by itself.
func testConfig(t *testing.T) Config {
	t.Helper()
	ports, err := freePorts("", 1)
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		ClusterName:      "pnt-cp",
		StateDir:         t.TempDir(),
		BinDir:           lctest.ToolsBin(),
		APIAddress:       netip.MustParseAddr("127.0.0.1"),
		APIPort:          ports[0],
		ServiceCIDR:      netip.MustParsePrefix("10.96.0.0/16"),
		PodCIDR:          netip.MustParsePrefix("10.244.0.0/16"),
		NodeCIDRMaskSize: 26,
		Timeout:          90 * time.Second,
		Progress:         func(s string) { t.Log(s) },
	}
}

func TestControlPlaneConfigValidateReportsEveryProblem(t *testing.T) {
	cfg := Config{
		StateDir:         "relative",
		APIAddress:       netip.MustParseAddr("0.0.0.0"),
		APIPort:          70000,
		ServiceCIDR:      netip.MustParsePrefix("10.96.0.1/16"),
		PodCIDR:          netip.MustParsePrefix("10.0.0.0/8"),
		NodeCIDRMaskSize: 4,
		EtcdPort:         -1,
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, want := range []string{"stateDir", "binDir", "apiAddress", "apiPort", "etcdPort",
		"serviceCIDR 10.96.0.1/16", "nodeCIDRMaskSize"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	good := testConfig(t)
	good.Defaults()
	if err := good.Validate(); err != nil {
		t.Errorf("test configuration rejected: %v", err)
	}
}

func TestControlPlaneFlagsFollowTheContract(t *testing.T) {
	cfg := testConfig(t)
	cfg.Defaults()
	cfg.EtcdPort, cfg.EtcdPeerPort = 12379, 12380
	f, err := ensurePKI(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"etcd listens on loopback only", etcdArgs(&cfg, f), []string{
			"--listen-client-urls=http://127.0.0.1:12379",
			"--listen-peer-urls=http://127.0.0.1:12380",
			"--data-dir=" + filepath.Join(cfg.StateDir, "etcd"),
		}},
		{"kube-apiserver authorizes with Node,RBAC and restricts nodes", apiServerArgs(&cfg, f), []string{
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(cfg.APIPort),
			"--etcd-servers=http://127.0.0.1:12379",
			"--service-cluster-ip-range=10.96.0.0/16",
			"--authorization-mode=Node,RBAC",
			"--enable-admission-plugins=NodeRestriction",
			"--allow-privileged=true",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--client-ca-file=" + f.CACert,
			"--kubelet-client-certificate=" + filepath.Join(cfg.StateDir, "pki", "apiserver-kubelet-client.crt"),
			"--kubelet-client-key=" + filepath.Join(cfg.StateDir, "pki", "apiserver-kubelet-client.key"),
			"--kubelet-certificate-authority=" + filepath.Join(cfg.StateDir, "pki", "ca.crt"),
			"--kubelet-preferred-address-types=InternalIP",
		}},
		{"kube-controller-manager allocates node CIDRs", controllerManagerArgs(&cfg, f, 10257), []string{
			"--allocate-node-cidrs=true",
			"--cluster-cidr=10.244.0.0/16",
			"--node-cidr-mask-size=26",
			"--service-cluster-ip-range=10.96.0.0/16",
			"--use-service-account-credentials=true",
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--secure-port=10257",
			"--root-ca-file=" + f.CACert,
			"--cluster-signing-key-file=" + f.CAKey,
		}},
		{"kube-scheduler serves health on loopback", schedulerArgs(f, 10259), []string{
			"--bind-address=127.0.0.1",
			"--secure-port=10259",
			"--config=" + f.SchedulerConfig,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, w := range tc.want {
				if !slices.Contains(tc.args, w) {
					t.Errorf("missing %s in %q", w, tc.args)
				}
			}
		})
	}
	sched, err := os.ReadFile(f.SchedulerConfig)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sched), "leaderElect: false") || !strings.Contains(string(sched), f.SchedulerKubeconfig) {
		t.Errorf("scheduler configuration:\n%s", sched)
	}
}

func TestControlPlanePKIFollowsTheContract(t *testing.T) {
	cfg := testConfig(t)
	cfg.Defaults()
	cfg.APIAddress = netip.MustParseAddr("172.30.0.1")
	f, err := ensurePKI(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(f.PKIDir)
	if err != nil {
		t.Fatal(err)
	}
	serving := testCert(t, f.APIServerCert)
	for _, name := range []string{"172.30.0.1", "127.0.0.1", "10.96.0.1", "kubernetes.default.svc.cluster.local", "localhost"} {
		if _, err := serving.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: name,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("API server certificate not valid for %s: %v", name, err)
		}
	}
	for _, name := range []string{"ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "sa.key", "sa.pub",
		"admin.crt", "admin.key", "controller-manager.crt", "scheduler.crt"} {
		if _, err := os.Stat(filepath.Join(cfg.StateDir, "pki", name)); err != nil {
			t.Errorf("contract file pki/%s: %v", name, err)
		}
	}

	runtimeKC, agentKC, err := IssueNodeCredentials(cfg.StateDir, "pnt-node-1")
	if err != nil {
		t.Fatal(err)
	}
	kubeProxyKC, err := IssueKubeProxyCredentials(cfg.StateDir, "pnt-node-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, wantPath, cn, group string
	}{
		{runtimeKC, "kubeconfigs/node-pnt-node-1.kubeconfig", "system:node:pnt-node-1", "system:nodes"},
		{agentKC, "kubeconfigs/agent-pnt-node-1.kubeconfig", "podnet-agent:pnt-node-1", "podnet:agents"},
		{kubeProxyKC, "kubeconfigs/kube-proxy-pnt-node-1.kubeconfig", "system:kube-proxy", ""},
		{f.AdminKubeconfig, "kubeconfig", "kubernetes-admin", "system:masters"},
		{f.ControllerManagerKubeconfig, "kubeconfigs/controller-manager.kubeconfig", "system:kube-controller-manager", ""},
		{f.SchedulerKubeconfig, "kubeconfigs/scheduler.kubeconfig", "system:kube-scheduler", ""},
	} {
		t.Run(tc.wantPath+" is "+tc.cn, func(t *testing.T) {
			if tc.path != filepath.Join(cfg.StateDir, tc.wantPath) {
				t.Errorf("path %s, want %s", tc.path, tc.wantPath)
			}
			rc, err := clientcmd.BuildConfigFromFlags("", tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if rc.Host != "https://172.30.0.1:"+strconv.Itoa(cfg.APIPort) {
				t.Errorf("server %s", rc.Host)
			}
			cert, err := pki.ParseCertPEM(rc.CertData)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("client certificate does not verify: %v", err)
			}
			var groups []string
			if tc.group != "" {
				groups = []string{tc.group}
			}
			if cert.Subject.CommonName != tc.cn || !slices.Equal(cert.Subject.Organization, groups) {
				t.Errorf("CN %q O %q, want %q %q", cert.Subject.CommonName, cert.Subject.Organization, tc.cn, groups)
			}
			if st, err := os.Stat(tc.path); err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("kubeconfig mode: %v %v", st.Mode(), err)
			}
		})
	}
	kubeletClient := testCert(t, f.KubeletClientCert)
	if _, err := kubeletClient.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil ||
		kubeletClient.Subject.CommonName != KubeletClientUser || len(kubeletClient.Subject.Organization) != 0 {
		t.Errorf("kube-apiserver's kubelet client: CN %q O %q (want %s, no group): %v", kubeletClient.Subject.CommonName,
			kubeletClient.Subject.Organization, KubeletClientUser, err)
	}
	if _, _, err := IssueNodeCredentials(cfg.StateDir, "Not_A_Node"); err == nil {
		t.Error("invalid node name accepted")
	}
	if _, _, err := IssueNodeCredentials(t.TempDir(), "pnt-node-1"); err == nil {
		t.Error("node credentials issued without a control-plane PKI")
	}
	if _, err := IssueKubeProxyCredentials(cfg.StateDir, "Not_A_Node"); err == nil {
		t.Error("invalid node name accepted for kube-proxy")
	}
}

func TestKubeletServingCertificateIsTheNodes(t *testing.T) {
	cfg := testConfig(t)
	cfg.Defaults()
	if _, err := ensurePKI(&cfg); err != nil {
		t.Fatal(err)
	}
	ks, err := IssueKubeletServing(cfg.StateDir, "pnt-node-1", netip.MustParseAddr("172.30.0.11"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(filepath.Join(cfg.StateDir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	cert := testCert(t, ks.CertFile)
	// kube-apiserver dials the InternalIP; the name is there for clients
	// that dial by hostname.
	for _, name := range []string{"172.30.0.11", "pnt-node-1"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: name,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("kubelet serving certificate not valid for %s: %v", name, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "172.30.0.12"}); err == nil {
		t.Error("node 1's certificate is valid for another node's address")
	}
	if cert.Subject.CommonName != "system:node:pnt-node-1" || ks.ClientCAFile != ca.CertFile() || ks.AllowedUser != KubeletClientUser {
		t.Errorf("CN %q, client CA %s, allowed %q", cert.Subject.CommonName, ks.ClientCAFile, ks.AllowedUser)
	}
	if _, err := os.Stat(ks.KeyFile); err != nil {
		t.Error(err)
	}
	if _, err := IssueKubeletServing(t.TempDir(), "pnt-node-1", netip.MustParseAddr("172.30.0.11")); err == nil {
		t.Error("issued without a control-plane PKI")
	}
}

func TestControlPlaneNeverUsesAProxy(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://203.0.113.9:3128")
	t.Setenv("http_proxy", "http://203.0.113.9:3128")
	t.Setenv("PODNET_TEST_KEEP", "yes")
	env := ProcessEnv()
	for _, kv := range env {
		if strings.Contains(strings.ToLower(kv), "proxy=") {
			t.Errorf("process environment keeps %s", kv)
		}
	}
	if !slices.Contains(env, "PODNET_TEST_KEEP=yes") {
		t.Error("process environment lost an unrelated variable")
	}
	cfg := testConfig(t)
	cfg.Defaults()
	f, err := ensurePKI(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cfg.RESTConfig(f.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://172.30.0.1:6443/readyz", nil)
	if u, err := rc.Proxy(req); u != nil || err != nil {
		t.Errorf("admin client proxies through %v (%v)", u, err)
	}
}

func TestControlPlaneStartFailureNamesTheProcessAndQuotesItsLog(t *testing.T) {
	bin := t.TempDir()
	for _, name := range Binaries {
		script := "#!/bin/sh\nexec sleep 60\n"
		if name == ProcEtcd {
			script = "#!/bin/sh\necho \"etcdserver: simulated disk failure\" >&2\nexit 1\n"
		}
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(t)
	cfg.BinDir = bin
	_, err := Start(context.Background(), cfg)
	if err == nil {
		t.Fatal("a control plane whose etcd exits started")
	}
	first, _, _ := strings.Cut(err.Error(), "\n")
	if !strings.HasPrefix(first, "etcd (pid ") || !strings.Contains(first, "exited while starting") ||
		!strings.Contains(first, filepath.Join(plan.LogsDir(cfg.StateDir), "etcd.log")) {
		t.Errorf("first line of the error does not name etcd, what happened and its log: %q", first)
	}
	if !strings.Contains(err.Error(), "simulated disk failure") {
		t.Errorf("error does not quote the log:\n%v", err)
	}
	if recs, _ := proc.ReadAll(plan.ProcsDir(cfg.StateDir)); len(recs) != 0 {
		t.Errorf("records left after a failed start: %d", len(recs))
	}

	missing := testConfig(t)
	missing.BinDir = t.TempDir()
	if _, err := Start(context.Background(), missing); err == nil ||
		!strings.Contains(err.Error(), filepath.Join(missing.BinDir, "kube-apiserver")) ||
		!strings.Contains(err.Error(), "make tools") {
		t.Errorf("missing binaries: %v", err)
	}
}

// recordingConfiner runs every start it is given and says no process is
// held.
type recordingConfiner struct{ started int }

func (c *recordingConfiner) Do(start func() error) error { c.started++; return start() }
func (c *recordingConfiner) Holds(pid int) error {
	return fmt.Errorf("pid %d is not in the test's group", pid)
}

// Every process starts inside Confine.Do, and one that Confine does not
// hold fails the start, which leaves nothing running.
func TestControlPlaneStartRefusesAProcessThatIsNotConfined(t *testing.T) {
	bin := t.TempDir()
	for _, name := range Binaries {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(t)
	cfg.BinDir = bin
	confiner := &recordingConfiner{}
	cfg.Confine = confiner
	_, err := Start(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "etcd (pid ") || !strings.Contains(err.Error(), "is not confined: pid") {
		t.Fatalf("start with an unconfined etcd: %v", err)
	}
	if confiner.started != 1 {
		t.Errorf("Confine.Do ran %d times, want once (etcd, then the start stopped)", confiner.started)
	}
	recs, _ := proc.ReadAll(plan.ProcsDir(cfg.StateDir))
	for _, r := range recs {
		if proc.Alive(r) {
			t.Errorf("%s (pid %d) left running", r.Name, r.PID)
		}
	}

	both := testConfig(t)
	both.Confine, both.Netns = confiner, "/proc/self/ns/net"
	if err := both.Validate(); err == nil || !strings.Contains(err.Error(), "confine and netns") {
		t.Errorf("Confine with Netns accepted: %v", err)
	}
}

func testCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.ParseCertPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// needControlPlane skips unless the test can start processes: root,
// and every binary in tools/bin.
func needControlPlane(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("control-plane test: needs root (it runs etcd and kube-apiserver as the contract's root-only state)")
	}
	if err := CheckBinaries(lctest.ToolsBin()); err != nil {
		t.Skipf("control-plane test: %v", err)
	}
}

func TestControlPlaneRunsAKubernetesAPI(t *testing.T) {
	needControlPlane(t)
	cfg := testConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	start := time.Now()
	cp, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cp.Stop()
		}
	})
	tm := cp.Timings
	t.Logf("timings: pki %s, etcd %s, kube-apiserver ready %s after start, rbac %s, controllers %s, total %s",
		tm.PKI, tm.Etcd, tm.PKI+tm.Etcd+tm.APIServer, tm.RBAC, tm.Controllers, tm.Total)

	rc, err := cp.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	admin := kubernetes.NewForConfigOrDie(rc)

	t.Run("a second start in the same state dir is refused", func(t *testing.T) {
		_, err := Start(ctx, cfg)
		if err == nil || !strings.Contains(err.Error(), "already running") {
			t.Fatalf("second start: %v", err)
		}
		for _, rec := range cp.Procs {
			if !proc.Alive(rec) {
				t.Errorf("%s died after a refused second start", rec.Name)
			}
		}
	})

	t.Run("a Deployment gets a ReplicaSet and its Pods", func(t *testing.T) {
		testDeployment(ctx, t, admin)
	})
	t.Run("a Node without podCIDR gets one from the pod CIDR", func(t *testing.T) {
		testNodeCIDR(ctx, t, admin, cfg)
	})
	t.Run("a Service gets a ClusterIP in the service CIDR", func(t *testing.T) {
		svc, err := admin.CoreV1().Services("default").Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
				Ports: []corev1.ServicePort{{Port: 80}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
		if err != nil || !cfg.ServiceCIDR.Contains(ip) {
			t.Errorf("ClusterIP %q not in %s", svc.Spec.ClusterIP, cfg.ServiceCIDR)
		}
	})
	t.Run("the kubernetes Service points at the API server", func(t *testing.T) {
		testKubernetesService(ctx, t, admin, cfg)
	})
	t.Run("an agent reads endpointslices and cannot create pods", func(t *testing.T) {
		testAgentRBAC(ctx, t, cfg.StateDir)
	})
	t.Run("a node registers itself and no other node", func(t *testing.T) {
		testNodeIdentity(ctx, t, cfg.StateDir)
	})
	t.Run("kube-proxy is a node-proxier: reads what it proxies, not secrets", func(t *testing.T) {
		testKubeProxyRBAC(ctx, t, cfg.StateDir)
	})

	recs := slices.Clone(cp.Procs)
	if len(recs) != 4 {
		t.Errorf("recorded %d processes, want 4", len(recs))
	}
	stopStart := time.Now()
	if err := cp.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	t.Logf("stop took %s", time.Since(stopStart))
	for _, rec := range recs {
		if proc.Alive(rec) {
			t.Errorf("%s (pid %d) alive after Stop", rec.Name, rec.PID)
		}
		lctest.Eventually(t, 10*time.Second, rec.Name+" reaped", func() error {
			if _, err := os.Stat("/proc/" + strconv.Itoa(rec.PID)); !errors.Is(err, os.ErrNotExist) {
				if st, _ := proc.StartTime(rec.PID); st == rec.StartTime {
					return errors.New("pid still exists")
				}
			}
			return nil
		})
	}
	if left, _ := proc.ReadAll(plan.ProcsDir(cfg.StateDir)); len(left) != 0 {
		t.Errorf("records left after Stop: %d", len(left))
	}

	t.Run("a restart keeps the cluster's objects and certificates", func(t *testing.T) {
		caBefore, err := os.ReadFile(filepath.Join(cfg.StateDir, "pki", "ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		again, err := Start(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := again.Stop(); err != nil {
				t.Error(err)
			}
		}()
		t.Logf("restart: all healthy in %s (kube-apiserver %s)", again.Timings.Total, again.Timings.APIServer)
		caAfter, err := os.ReadFile(filepath.Join(cfg.StateDir, "pki", "ca.crt"))
		if err != nil || string(caAfter) != string(caBefore) {
			t.Errorf("the CA changed across a restart (%v)", err)
		}
		rc, err := again.RESTConfig()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kubernetes.NewForConfigOrDie(rc).AppsV1().Deployments("pnt-cp").Get(ctx, "web", metav1.GetOptions{}); err != nil {
			t.Errorf("Deployment from before the restart: %v", err)
		}
	})
	t.Logf("whole test %s", time.Since(start))
}

// TestControlPlaneInANamespaceAdvertisesItsAddress runs the control plane
// inside a fresh network namespace whose lo holds the contract's API
// address, 172.30.0.1, so kube-apiserver can advertise it and the
// kubernetes Service gets its endpoint, without touching the root
// namespace.
func TestControlPlaneInANamespaceAdvertisesItsAddress(t *testing.T) {
	needControlPlane(t)
	name := netns.UniqueName("pnt-cp-")
	nsPath, err := netns.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Delete(name) })
	apiAddr := netip.MustParseAddr("172.30.0.1")
	err = netns.Do(nsPath, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.AddrAdd(lo, &netlink.Addr{IPNet: lctest.IPNet(netip.PrefixFrom(apiAddr, 32))})
	})
	if err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t)
	cfg.Netns = nsPath
	cfg.APIAddress = apiAddr
	cfg.APIPort = plan.DefaultAPIServerPort // the namespace is ours alone
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cp, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	t.Logf("control plane in a namespace: all healthy after %s", cp.Timings.Total)
	for _, rec := range cp.Procs {
		var got, want unix.Stat_t
		if err := unix.Stat("/proc/"+strconv.Itoa(rec.PID)+"/ns/net", &got); err != nil {
			t.Fatal(err)
		}
		if err := unix.Stat(nsPath, &want); err != nil {
			t.Fatal(err)
		}
		if got.Ino != want.Ino {
			t.Errorf("%s runs outside the namespace", rec.Name)
		}
	}
	rc, err := cp.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	testKubernetesService(ctx, t, kubernetes.NewForConfigOrDie(rc), cp.Config)
	if err := cp.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, rec := range cp.Procs {
		if proc.Alive(rec) {
			t.Errorf("%s alive after Stop", rec.Name)
		}
	}
}

func testDeployment(ctx context.Context, t *testing.T, admin kubernetes.Interface) {
	ns := "pnt-cp"
	if _, err := admin.CoreV1().Namespaces().Create(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	replicas := int32(2)
	labels := map[string]string{"app": "web"}
	dep, err := admin.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: "podnet/test-server", Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	lctest.Eventually(t, 60*time.Second, "ReplicaSet and 2 Pods", func() error {
		rss, err := admin.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		var rsUID string
		for _, rs := range rss.Items {
			if ref := metav1.GetControllerOf(&rs); ref != nil && ref.UID == dep.UID {
				rsUID = string(rs.UID)
			}
		}
		if rsUID == "" {
			return errors.New("no ReplicaSet owned by the Deployment")
		}
		pods, err := admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		n := 0
		for _, p := range pods.Items {
			if ref := metav1.GetControllerOf(&p); ref != nil && string(ref.UID) == rsUID {
				n++
			}
		}
		if n != 2 {
			return errors.New(strconv.Itoa(n) + " pods owned by the ReplicaSet")
		}
		return nil
	})
	t.Logf("ReplicaSet and 2 Pods after %s", time.Since(t0).Round(time.Millisecond))
}

func testNodeCIDR(ctx context.Context, t *testing.T, admin kubernetes.Interface, cfg Config) {
	if _, err := admin.CoreV1().Nodes().Create(ctx,
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "pnt-node-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	lctest.Eventually(t, 60*time.Second, "spec.podCIDR allocated", func() error {
		n, err := admin.CoreV1().Nodes().Get(ctx, "pnt-node-a", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if n.Spec.PodCIDR == "" {
			return errors.New("no podCIDR yet")
		}
		p, err := netip.ParsePrefix(n.Spec.PodCIDR)
		if err != nil {
			return err
		}
		if !cfg.PodCIDR.Contains(p.Addr()) || p.Bits() != cfg.NodeCIDRMaskSize {
			t.Errorf("podCIDR %s, want a /%d of %s", p, cfg.NodeCIDRMaskSize, cfg.PodCIDR)
		}
		if !slices.Contains(n.Spec.PodCIDRs, n.Spec.PodCIDR) {
			t.Errorf("podCIDRs %v lacks %s", n.Spec.PodCIDRs, n.Spec.PodCIDR)
		}
		return nil
	})
	t.Logf("podCIDR allocated after %s", time.Since(t0).Round(time.Millisecond))
}

func testKubernetesService(ctx context.Context, t *testing.T, admin kubernetes.Interface, cfg Config) {
	svc, err := admin.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := cfg.ServiceCIDR.Addr().Next().String(); svc.Spec.ClusterIP != want {
		t.Errorf("kubernetes ClusterIP %s, want %s", svc.Spec.ClusterIP, want)
	}
	if cfg.APIAddress.IsLoopback() {
		// kube-apiserver cannot publish a loopback endpoint; with
		// --endpoint-reconciler-type=none there is none to check here.
		// TestControlPlaneInANamespaceAdvertisesItsAddress checks it.
		return
	}
	lctest.Eventually(t, 30*time.Second, "EndpointSlice of the kubernetes Service", func() error {
		slices_, err := admin.DiscoveryV1().EndpointSlices("default").List(ctx,
			metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kubernetes"})
		if err != nil {
			return err
		}
		for _, s := range slices_.Items {
			for _, ep := range s.Endpoints {
				for _, a := range ep.Addresses {
					for _, p := range s.Ports {
						if a == cfg.APIAddress.String() && p.Port != nil && int(*p.Port) == cfg.APIPort {
							return nil
						}
					}
				}
			}
		}
		return errors.New("no endpoint " + netip.AddrPortFrom(cfg.APIAddress, uint16(cfg.APIPort)).String())
	})
}

func testAgentRBAC(ctx context.Context, t *testing.T, stateDir string) {
	_, agentKC, err := IssueNodeCredentials(stateDir, "pnt-node-x")
	if err != nil {
		t.Fatal(err)
	}
	agent := testClient(t, agentKC)
	who, err := agent.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if u := who.Status.UserInfo; u.Username != "podnet-agent:pnt-node-x" || !slices.Contains(u.Groups, AgentGroup) {
		t.Errorf("agent authenticated as %q in %q", u.Username, u.Groups)
	}
	if _, err := agent.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("agent cannot list endpointslices: %v", err)
	}
	if _, err := agent.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("agent cannot list networkpolicies: %v", err)
	}
	_, err = agent.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "forbidden"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}},
	}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("agent creating a pod: %v, want Forbidden", err)
	}
}

func testKubeProxyRBAC(ctx context.Context, t *testing.T, stateDir string) {
	kc, err := IssueKubeProxyCredentials(stateDir, "pnt-node-x")
	if err != nil {
		t.Fatal(err)
	}
	kp := testClient(t, kc)
	who, err := kp.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if u := who.Status.UserInfo.Username; u != KubeProxyUser {
		t.Errorf("kube-proxy authenticated as %q, want %q", u, KubeProxyUser)
	}
	all := metav1.ListOptions{}
	for what, list := range map[string]func() error{
		"services":       func() (err error) { _, err = kp.CoreV1().Services("").List(ctx, all); return },
		"endpointslices": func() (err error) { _, err = kp.DiscoveryV1().EndpointSlices("").List(ctx, all); return },
		"nodes":          func() (err error) { _, err = kp.CoreV1().Nodes().List(ctx, all); return },
	} {
		if err := list(); err != nil {
			t.Errorf("kube-proxy cannot list %s: %v", what, err)
		}
	}
	if _, err := kp.CoreV1().Secrets("kube-system").List(ctx, all); !apierrors.IsForbidden(err) {
		t.Errorf("kube-proxy listing secrets: %v, want Forbidden", err)
	}
}

func testNodeIdentity(ctx context.Context, t *testing.T, stateDir string) {
	runtimeKC, _, err := IssueNodeCredentials(stateDir, "pnt-node-x")
	if err != nil {
		t.Fatal(err)
	}
	node := testClient(t, runtimeKC)
	if _, err := node.CoreV1().Nodes().Create(ctx,
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "pnt-node-x"}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("node creating its own Node: %v", err)
	}
	_, err = node.CoreV1().Nodes().Create(ctx,
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "pnt-node-y"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("node creating another Node: %v, want Forbidden", err)
	}
}

func testClient(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(rc)
}
