package kubeletapitest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/podnet/podnet/internal/pki"
)

// NodeName is the node StartAPIServer registers.
const NodeName = "test-node"

// APIServer is a kube-apiserver wired to an Env's kubelet.
type APIServer struct {
	Admin      *rest.Config // system:masters
	Kubeconfig string       // the same, for kubectl
	Client     kubernetes.Interface
	BinDir     string // tools/bin (kubectl is there)
}

// StartAPIServer runs etcd and kube-apiserver from tools/bin on loopback
// until the test ends, with the kubelet flags the local cluster must give
// (client certificate of APIServerUser in APIServerGroup, the CA that signed
// the kubelet's serving certificate, InternalIP first), and registers node
// NodeName at env's address and port. It skips the test when the binaries
// are not built.
func StartAPIServer(t testing.TB, env *Env) *APIServer {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(filepath.Dir(file), "..", "..", "..", "tools", "bin")
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Skipf("control-plane test: %s is not built (make tools): %v", b, err)
		}
	}
	must := func(kp *pki.KeyPair, err error) *pki.KeyPair {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
	serving := must(env.CA.IssueServing("apiserver", "kube-apiserver", []string{"localhost"}, []netip.Addr{netip.MustParseAddr("127.0.0.1")}))
	kubeletClient := must(env.CA.IssueClient("apiserver-kubelet-client", APIServerUser, []string{APIServerGroup}))
	admin := must(env.CA.IssueClient("admin", "kubernetes-admin", []string{"system:masters"}))
	saKey, saPub, err := pki.EnsureServiceAccountKey(env.CA.Dir)
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 3)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	run(t, filepath.Join(bin, "etcd"), "--data-dir="+t.TempDir(), "--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL, fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", ports[1]),
		"--log-level=warn")
	run(t, filepath.Join(bin, "kube-apiserver"),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
		fmt.Sprintf("--secure-port=%d", ports[2]), "--etcd-servers="+etcdURL,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--tls-cert-file="+serving.CertFile, "--tls-private-key-file="+serving.KeyFile, "--client-ca-file="+env.CA.CertFile(),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey,
		"--authorization-mode=Node,RBAC",
		// What the kubelet API needs:
		"--kubelet-client-certificate="+kubeletClient.CertFile, "--kubelet-client-key="+kubeletClient.KeyFile,
		"--kubelet-certificate-authority="+env.CA.CertFile(), "--kubelet-preferred-address-types=InternalIP")
	a := &APIServer{BinDir: bin, Kubeconfig: filepath.Join(env.CA.Dir, "admin.kubeconfig"),
		Admin: &rest.Config{Host: fmt.Sprintf("https://127.0.0.1:%d", ports[2]), TLSClientConfig: rest.TLSClientConfig{
			CAData: env.CA.CertPEM, CertData: admin.CertPEM, KeyData: admin.KeyPEM}}}
	if err := (pki.Kubeconfig{Server: a.Admin.Host, CAPEM: env.CA.CertPEM, CertPEM: admin.CertPEM, KeyPEM: admin.KeyPEM}).Write(a.Kubeconfig); err != nil {
		t.Fatal(err)
	}
	if a.Client, err = kubernetes.NewForConfig(a.Admin); err != nil {
		t.Fatal(err)
	}
	a.waitReady(t)
	a.registerNode(t, env)
	return a
}

// waitReady waits for the default namespace (the API server serves pods
// from then on).
func (a *APIServer) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, err := a.Client.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-apiserver not ready: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// registerNode makes NodeName point at env's server, as the pod runtime's
// registration does (InternalIP, daemonEndpoints).
func (a *APIServer) registerNode(t testing.TB, env *Env) {
	t.Helper()
	ctx := context.Background()
	_, portText, _ := net.SplitHostPort(strings.TrimPrefix(env.URL, "https://"))
	port, _ := strconv.Atoi(portText)
	node, err := a.Client.CoreV1().Nodes().Create(ctx, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: NodeName}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeHostName, Address: NodeName}, {Type: v1.NodeInternalIP, Address: "127.0.0.1"}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
	if _, err := a.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// CreatePod creates pod ns/name with the given containers on NodeName (and
// ns and its default service account when missing), in phase Running.
func (a *APIServer) CreatePod(t testing.TB, ns, name string, containers ...string) {
	t.Helper()
	ctx := context.Background()
	if _, err := a.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		if _, err := a.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// No controller-manager makes the default service account that the
	// ServiceAccount admission wants.
	if _, err := a.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err != nil {
		if _, err := a.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.PodSpec{NodeName: NodeName}}
	for _, c := range containers {
		pod.Spec.Containers = append(pod.Spec.Containers, v1.Container{Name: c, Image: "x"})
	}
	pod, err := a.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Running, as the runtime would report it (kubectl port-forward wants it).
	pod.Status.Phase = v1.PodRunning
	if _, err := a.Client.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// run starts a process for the rest of the test; its output goes to the
// test log on failure.
func run(t testing.TB, argv ...string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	// Dies with the test binary even when a timeout kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			l := strings.Split(out.String(), "\n")
			t.Logf("%s:\n%s", filepath.Base(argv[0]), strings.Join(l[max(len(l)-30, 0):], "\n"))
		}
	})
}

// freePorts returns n loopback ports free at the time of asking.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}
