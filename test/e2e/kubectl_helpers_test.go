package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/podnet/podnet/internal/kubeletapi/kubeletapitest"
	"github.com/podnet/podnet/internal/pki"
)

// echoEnv makes the e2e test binary a TCP echo server on the pod's
// 127.0.0.1:<port>: the program of the port-forward pods (a 10 MB transfer
// needs a peer that answers with what it got, and no Debian tool of the
// test set is one). It runs in init, before the tests, and never returns.
const echoEnv = "PODNET_E2E_ECHO_PORT"

func init() {
	if port := os.Getenv(echoEnv); port != "" {
		kubeletapitest.ServeEcho("127.0.0.1:" + port)
	}
}

// kubectlClient runs the bundled kubectl (tools/bin) with a kubeconfig, as
// a user of the cluster does.
type kubectlClient struct {
	kubeconfig string
}

func (k kubectlClient) command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, filepath.Join(toolsBin, "kubectl"), append([]string{"--kubeconfig", k.kubeconfig}, args...)...)
}

// run runs kubectl to its end with stdin (nil: none) and returns its
// output and exit status.
func (k kubectlClient) run(t *testing.T, stdin io.Reader, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := k.command(ctx, args...)
	cmd.Stdin = stdin
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

// ok runs kubectl and fails the test unless it exits 0.
func (k kubectlClient) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := k.run(t, nil, args...)
	if code != 0 {
		t.Fatalf("kubectl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// syncBuffer is kubeletapitest.SyncBuffer.
type syncBuffer = kubeletapitest.SyncBuffer

// waitFor waits until the output holds a match of re and returns the
// first match's groups.
func waitFor(t *testing.T, out *syncBuffer, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("output never matched %q in %s:\n%s", re, timeout, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// background is a kubectl that runs until the test ends (logs -f, attach,
// port-forward); its stdout and stderr are collected.
type background struct {
	cmd         *exec.Cmd
	out, errOut *syncBuffer
}

func (k kubectlClient) start(t *testing.T, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{cmd: k.command(ctx, args...), out: &syncBuffer{}, errOut: &syncBuffer{}}
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.errOut
	if err := b.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel() // kills the kubectl started here, by its pid
		_ = b.cmd.Wait()
		if t.Failed() {
			t.Logf("kubectl %s:\n%s%s", strings.Join(args, " "), b.out.String(), b.errOut.String())
		}
	})
	return b
}

// terminal is a kubectl running in a pseudo-terminal, as under a user's
// shell: kubectl puts it into raw mode and forwards keys and resizes.
type terminal struct {
	t    *testing.T
	cmd  *exec.Cmd
	pty  *os.File
	out  *syncBuffer
	read chan struct{} // closed when the terminal's output has ended
}

func (k kubectlClient) terminal(t *testing.T, rows, cols uint16, args ...string) *terminal {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	term := &terminal{t: t, cmd: k.command(ctx, args...), out: &syncBuffer{}, read: make(chan struct{})}
	f, err := pty.StartWithSize(term.cmd, &pty.Winsize{Rows: rows, Cols: cols})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	term.pty = f
	go func() {
		defer close(term.read)
		_, _ = io.Copy(term.out, f) // ends with EIO once kubectl has exited
	}()
	t.Cleanup(func() {
		cancel()
		_ = term.cmd.Wait()
		f.Close()
		if t.Failed() {
			t.Logf("terminal of kubectl %s:\n%q", strings.Join(args, " "), term.out.String())
		}
	})
	return term
}

// typeIn writes what a user types.
func (term *terminal) typeIn(s string) {
	term.t.Helper()
	if _, err := term.pty.WriteString(s); err != nil {
		term.t.Fatal(err)
	}
}

// resize changes the terminal's size, as a user's window does (kubectl
// gets SIGWINCH).
func (term *terminal) resize(rows, cols uint16) {
	term.t.Helper()
	if err := pty.Setsize(term.pty, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		term.t.Fatal(err)
	}
}

func (term *terminal) waitFor(re string) []string {
	term.t.Helper()
	return waitFor(term.t, term.out, regexp.MustCompile(re), 30*time.Second)
}

// exit waits for kubectl to end and returns its exit status and the
// terminal's whole output.
func (term *terminal) exit() (int, string) {
	term.t.Helper()
	done := make(chan error, 1)
	go func() { done <- term.cmd.Wait() }()
	select {
	case err := <-done:
		<-term.read
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			term.t.Fatal(err)
		}
		return term.cmd.ProcessState.ExitCode(), term.out.String()
	case <-time.After(60 * time.Second):
		term.t.Fatalf("kubectl did not end; terminal:\n%q", term.out.String())
		return 0, ""
	}
}

// kubeletCall is one HTTPS request to a node's kubelet API on its
// InternalIP, with the client certificate pki/<cert>.{crt,key} of the
// cluster's CA ("" for none).
func kubeletCall(t *testing.T, stateDir, nodeIP, cert, method, path string) (int, string) {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(stateDir, "pki", pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != "" {
		kp, err := tls.LoadX509KeyPair(filepath.Join(stateDir, "pki", cert+".crt"), filepath.Join(stateDir, "pki", cert+".key"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, Proxy: nil}}
	req, err := http.NewRequest(method, "https://"+net.JoinHostPort(nodeIP, "10250")+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(bufio.NewReader(resp.Body))
	return resp.StatusCode, strings.TrimSpace(string(body))
}
