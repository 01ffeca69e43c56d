// Package kubeletapitest runs a kubeletapi server over real TLS for tests,
// with certificates from a fresh CA, and drives it the way the API server
// does: client-go's remotecommand executors (SPDY and WebSocket), its
// port-forward dialer, and plain HTTPS for logs.
package kubeletapitest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"

	"github.com/podnet/podnet/internal/kubeletapi"
	"github.com/podnet/podnet/internal/pki"
)

// Identity of the allowed client: the API server's kubelet client.
const (
	APIServerUser  = "kube-apiserver-kubelet-client"
	APIServerGroup = "kubelet-api-admin"
)

// Env is a running server and what a client needs to reach it.
type Env struct {
	URL string
	// Config is the allowed client (APIServerUser in APIServerGroup).
	Config *rest.Config
	CA     *pki.CA
}

// Start serves rt on a loopback port until the test ends. Only
// APIServerGroup is allowed.
func Start(t testing.TB, rt kubeletapi.Runtime) *Env {
	t.Helper()
	ca, err := pki.EnsureCA(filepath.Join(t.TempDir(), "pki"))
	if err != nil {
		t.Fatal(err)
	}
	serving, err := ca.IssueServing("kubelet", "system:node:test-node", []string{"localhost"},
		[]netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := kubeletapi.New(kubeletapi.Config{Addr: "127.0.0.1:0", CertFile: serving.CertFile, KeyFile: serving.KeyFile,
		ClientCAFile: ca.CertFile(), AllowedGroups: []string{APIServerGroup},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, rt)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	e := &Env{URL: "https://" + ln.Addr().String(), CA: ca}
	e.Config = e.ClientConfig(t, "apiserver-kubelet-client", APIServerUser, []string{APIServerGroup})
	return e
}

// ClientConfig issues a client certificate from the env's CA (file name
// name, user cn, groups orgs) and returns a config that uses it.
func (e *Env) ClientConfig(t testing.TB, name, cn string, orgs []string) *rest.Config {
	t.Helper()
	kp, err := e.CA.IssueClient(name, cn, orgs)
	if err != nil {
		t.Fatal(err)
	}
	return &rest.Config{Host: e.URL, TLSClientConfig: rest.TLSClientConfig{
		CAData: e.CA.CertPEM, CertData: kp.CertPEM, KeyData: kp.KeyPEM}}
}

// Protocol is how a client streams.
type Protocol string

const (
	SPDY      Protocol = "SPDY"
	WebSocket Protocol = "WebSocket"
)

// StreamURL is the kubelet URL of an exec (cmd given) or an attach (cmd
// nil) in target.
func (e *Env) StreamURL(target kubeletapi.Target, cmd []string, o remotecommand.StreamOptions) *url.URL {
	q := url.Values{}
	kind := "attach"
	if cmd != nil {
		kind, q["command"] = "exec", cmd
	}
	for _, f := range []struct {
		name string
		on   bool
	}{{"input", o.Stdin != nil}, {"output", o.Stdout != nil}, {"error", o.Stderr != nil}, {"tty", o.Tty}} {
		if f.on {
			q.Set(f.name, "1")
		}
	}
	u, _ := url.Parse(fmt.Sprintf("%s/%s/%s/%s/%s?%s", e.URL, kind, target.Namespace, target.Pod, target.Container, q.Encode()))
	return u
}

// Exec runs cmd in target as cfg over p and returns the executor's error
// (a k8s.io/client-go/util/exec.CodeExitError for a non-zero exit). A nil
// cmd attaches instead.
func (e *Env) Exec(ctx context.Context, cfg *rest.Config, p Protocol, target kubeletapi.Target, cmd []string, o remotecommand.StreamOptions) error {
	u := e.StreamURL(target, cmd, o)
	var ex remotecommand.Executor
	var err error
	if p == WebSocket {
		// The cri-streaming server speaks channel.k8s.io up to v4.
		ex, err = remotecommand.NewWebSocketExecutorForProtocols(cfg, "GET", u.String(), "v4.channel.k8s.io")
	} else {
		ex, err = remotecommand.NewSPDYExecutor(cfg, "POST", u)
	}
	if err != nil {
		return err
	}
	return ex.StreamWithContext(ctx, o)
}

// PortForward forwards a local loopback port to remotePort of the pod of
// target over SPDY until the test ends, and returns the local port.
func (e *Env) PortForward(t testing.TB, target kubeletapi.Target, remotePort int) uint16 {
	t.Helper()
	transport, upgrader, err := spdy.RoundTripperFor(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(fmt.Sprintf("%s/portForward/%s/%s", e.URL, target.Namespace, target.Pod))
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, "POST", u)
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(remotePort)},
		stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("port-forward: %v", err)
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("port-forward ports %v: %v", ports, err)
	}
	return ports[0].Local
}

// EchoThrough sends size random bytes to 127.0.0.1:port, which must echo
// them back, and fails the test unless exactly those bytes return.
func EchoThrough(t testing.TB, port uint16, size int) {
	t.Helper()
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	start := time.Now()
	go func() { _, _ = conn.Write(data) }()
	back := make([]byte, size)
	_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	if n, err := io.ReadFull(conn, back); err != nil {
		t.Fatalf("read %d of %d bytes: %v (starting %q)", n, size, err, back[:min(n, 16)])
	}
	took := time.Since(start)
	if sha256.Sum256(back) != sha256.Sum256(data) {
		t.Errorf("the %d bytes that came back differ from those sent", size)
	}
	t.Logf("%d bytes there and back in %s (%.1f MB/s each way)", size, took.Round(time.Millisecond), float64(size)/took.Seconds()/1e6)
}

// Get requests path (with its query) as cfg.
func (e *Env) Get(ctx context.Context, cfg *rest.Config, path string) (*http.Response, error) {
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL+path, nil)
	if err != nil {
		return nil, err
	}
	return c.Do(req)
}
