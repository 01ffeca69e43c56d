package kubeletapi_test

// The path users take: kubectl → kube-apiserver → this server. A real
// etcd and kube-apiserver from tools/bin run on loopback with the flags the
// local cluster must give kube-apiserver; a Node advertises the server
// (InternalIP 127.0.0.1, daemonEndpoints port) and pod default/web is bound
// to it; the fake runtime answers. Clients go through the API server the way
// kubectl 1.37 does: WebSocket v5 for exec (the API server translates it to
// SPDY for the kubelet), SPDY tunnelled over WebSocket for port-forward,
// plain GET for logs.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/podnet/podnet/internal/kubeletapi/kubeletapitest"
	"github.com/podnet/podnet/internal/pki"
)

func TestThroughARealAPIServer(t *testing.T) {
	rt := newFake(t)
	env := kubeletapitest.Start(t, rt)
	admin := startAPIServer(t, env)
	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	registerNodeAndPod(t, cs, env)

	execURL := func(cmd ...string) *url.URL {
		return cs.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("web").SubResource("exec").
			VersionedParams(&v1.PodExecOptions{Container: "app", Command: cmd, Stdin: true, Stdout: true, Stderr: true},
				scheme.ParameterCodec).URL()
	}
	t.Run("exec as kubectl does it: WebSocket v5 to the API server", func(t *testing.T) {
		ex, err := remotecommand.NewWebSocketExecutor(admin, "GET", execURL("echo-line").String())
		if err != nil {
			t.Fatal(err)
		}
		var out, errs bytes.Buffer
		err = ex.StreamWithContext(context.Background(), remotecommand.StreamOptions{
			Stdin: strings.NewReader("through\n"), Stdout: &out, Stderr: &errs})
		if err != nil || out.String() != "got through\n" || errs.String() != "err" {
			t.Errorf("err %v, stdout %q, stderr %q", err, out.String(), errs.String())
		}
	})
	t.Run("an exit code passes through the API server", func(t *testing.T) {
		ex, err := remotecommand.NewSPDYExecutor(admin, "POST", execURL("exit", "3"))
		if err != nil {
			t.Fatal(err)
		}
		err = ex.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard})
		var code utilexec.CodeExitError
		if !errors.As(err, &code) || code.Code != 3 {
			t.Errorf("err %v, want exit code 3", err)
		}
	})
	t.Run("logs follow through the API server", func(t *testing.T) {
		if _, err := rt.log.Stdout().WriteString("via apiserver\n"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		body, err := cs.CoreV1().Pods("default").GetLogs("web", &v1.PodLogOptions{Container: "app", Follow: true}).Stream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer body.Close()
		if line, err := bufio.NewReader(body).ReadString('\n'); line != "via apiserver\n" {
			t.Errorf("first line %q, %v", line, err)
		}
	})
	t.Run("port-forward as kubectl does it: SPDY tunnelled over WebSocket", func(t *testing.T) {
		u := cs.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("web").SubResource("portforward").URL()
		dialer, err := portforward.NewSPDYOverWebsocketDialer(u, admin)
		if err != nil {
			t.Fatal(err)
		}
		stop, ready := make(chan struct{}), make(chan struct{})
		defer close(stop)
		fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:5000"}, stop, ready, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		failed := make(chan error, 1)
		go func() { failed <- fw.ForwardPorts() }()
		select {
		case <-ready:
		case err := <-failed:
			t.Fatalf("port-forward: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("port-forward never ready")
		}
		ports, err := fw.GetPorts()
		if err != nil {
			t.Fatal(err)
		}
		kubeletapitest.EchoThrough(t, ports[0].Local, 1<<20)
	})
}

// registerNodeAndPod makes node test-node point at env's server and binds
// pod default/web (container app) to it.
func registerNodeAndPod(t *testing.T, cs kubernetes.Interface, env *kubeletapitest.Env) {
	t.Helper()
	ctx := context.Background()
	_, portText, _ := net.SplitHostPort(strings.TrimPrefix(env.URL, "https://"))
	port, _ := strconv.Atoi(portText)
	node, err := cs.CoreV1().Nodes().Create(ctx, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "test-node"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeHostName, Address: "test-node"}, {Type: v1.NodeInternalIP, Address: "127.0.0.1"}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: v1.PodSpec{NodeName: "test-node", Containers: []v1.Container{{Name: "app", Image: "x"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// startAPIServer runs etcd and kube-apiserver on loopback until the test
// ends, wired to env's kubelet as the local cluster must wire it, and
// returns an admin client config.
func startAPIServer(t *testing.T, env *kubeletapitest.Env) *rest.Config {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(filepath.Dir(file), "..", "..", "tools", "bin")
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Skipf("control-plane test: %s is not built (make tools): %v", b, err)
		}
	}
	dir := env.CA.Dir
	serving, err := env.CA.IssueServing("apiserver", "kube-apiserver", []string{"localhost"}, []netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	kubeletClient, err := env.CA.IssueClient("apiserver-kubelet-client", kubeletapitest.APIServerUser, []string{kubeletapitest.APIServerGroup})
	if err != nil {
		t.Fatal(err)
	}
	adminKP, err := env.CA.IssueClient("admin", "kubernetes-admin", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	saKey, saPub, err := pki.EnsureServiceAccountKey(dir)
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
	cfg := &rest.Config{Host: fmt.Sprintf("https://127.0.0.1:%d", ports[2]), TLSClientConfig: rest.TLSClientConfig{
		CAData: env.CA.CertPEM, CertData: adminKP.CertPEM, KeyData: adminKP.KeyPEM}}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		// The default namespace exists once the API server is ready for pods.
		_, err := cs.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-apiserver not ready: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if _, err := cs.CoreV1().ServiceAccounts("default").Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
		// No controller-manager makes it; pods do not need it with
		// automountServiceAccountToken off, but the admission wants it.
		_, _ = cs.CoreV1().ServiceAccounts("default").Create(context.Background(),
			&v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	}
	return cfg
}

// run starts a process for the rest of the test; its output goes to the
// test log on failure.
func run(t *testing.T, argv ...string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s:\n%s", filepath.Base(argv[0]), lastLines(out.String(), 30))
		}
	})
}

func lastLines(s string, n int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(len(l)-n, 0):], "\n")
}

// freePorts returns n loopback ports free at the time of asking.
func freePorts(t *testing.T, n int) []int {
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
