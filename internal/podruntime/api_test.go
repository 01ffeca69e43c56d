package podruntime

// Fixture conventions for the kubelet API tests (root only): each test runs
// pod shop/web (UID testUID, IP 10.244.1.5 — only recorded) in a fresh
// network namespace pnt-kapi-XXXXXXXX, removed in t.Cleanup. The test binary
// is the runtime's podnet binary: TestMain answers "pod-exec" (entering the
// pod, as podnet does) and "echo-server PORT" (a TCP echo server on the
// pod's 127.0.0.1). Containers are started by the worker's own start, and the
// test plays the worker's loop (events, publish) in its own goroutine.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/podnet/podnet/internal/kubeletapi"
	"github.com/podnet/podnet/internal/kubeletapi/kubeletapitest"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/pki"
	"github.com/podnet/podnet/internal/podexec"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 2 {
		switch os.Args[1] {
		case "pod-exec":
			podExecMain(os.Args[2:])
		case "echo-server":
			kubeletapitest.ServeEcho("127.0.0.1:" + os.Args[2])
		}
	}
	os.Exit(m.Run())
}

// podExecMain is `podnet pod-exec`.
func podExecMain(args []string) {
	var o podexec.Options
	fs := flag.NewFlagSet("pod-exec", flag.ExitOnError)
	fs.StringVar(&o.NetNS, "netns", "", "")
	fs.StringVar(&o.ResolvConf, "resolv-conf", "", "")
	fs.StringVar(&o.Hosts, "hosts", "", "")
	fs.StringVar(&o.Hostname, "hostname", "", "")
	fs.StringVar(&o.Dir, "dir", "", "")
	_ = fs.Parse(args)
	err := podexec.Exec(o, fs.Args())
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// testRun is a pod of a runtime whose kubelet API is served.
type testRun struct {
	t      *testing.T
	w      *podWorker
	nsPath string
	env    *kubeletapitest.Env
	target kubeletapi.Target // container "app"
}

// runPod starts pod shop/web with containers in a new namespace and serves
// the runtime's kubelet API.
func runPod(t *testing.T, containers ...v1.Container) *testRun {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: creating network namespaces needs root")
	}
	name := netns.UniqueName("pnt-kapi-")
	nsPath, err := netns.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Delete(name) })
	r := &Runtime{cfg: Config{NodeName: "node-1", NodeIP: netip.MustParseAddr("172.30.0.11"), StateDir: t.TempDir(),
		Self: os.Args[0]}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), workers: map[types.UID]*podWorker{}}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: testUID},
		Spec: v1.PodSpec{NodeName: "node-1", Containers: containers, RestartPolicy: v1.RestartPolicyAlways}}
	sb := &sandbox{nsName: name, nsPath: nsPath, ips: []netip.Addr{netip.MustParseAddr("10.244.1.5")},
		dir: r.cfg.podDir(pod.Namespace, pod.Name, string(pod.UID))}
	sb.resolv, sb.hosts = filepath.Join(sb.dir, "resolv.conf"), filepath.Join(sb.dir, "hosts")
	for path, text := range map[string]string{sb.resolv: "nameserver 10.96.0.10\n", sb.hosts: hostsFile(pod, sb.ips, "cluster.local")} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &podWorker{r: r, ctx: ctx, events: make(chan event, 64), pod: pod, sandbox: sb,
		containers: map[string]*container{}, done: make(chan struct{})}
	tr := &testRun{t: t, w: w, nsPath: nsPath, target: kubeletapi.Target{Namespace: "shop", Pod: "web", Container: "app"}}
	t.Cleanup(func() {
		tr.stopAll()
		cancel()
		close(w.done)
	})
	for _, spec := range containers {
		c := &container{spec: spec}
		w.containers[spec.Name] = c
		if err := w.start(c); err != nil {
			t.Fatal(err)
		}
	}
	w.publish()
	tr.env = kubeletapitest.Start(t, apiRuntime{r})
	return tr
}

// stopAll kills the running containers and takes their exits.
func (tr *testRun) stopAll() {
	for _, c := range tr.w.containers {
		c.signal(syscall.SIGKILL)
	}
	for _, c := range tr.w.containers {
		if c.running {
			tr.waitExit(c.spec.Name)
		}
	}
}

// waitExit plays the worker's loop until container name has exited, and
// publishes the result.
func (tr *testRun) waitExit(name string) event {
	tr.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev := <-tr.w.events:
			tr.w.handle(ev)
			if ev.kind == evExit && ev.container == name {
				tr.w.publish()
				return ev
			}
		case <-timeout:
			tr.t.Fatalf("container %s never exited", name)
		}
	}
}

// restart starts container name again, as reconcile does after backoff.
func (tr *testRun) restart(name string) {
	tr.t.Helper()
	c := tr.w.containers[name]
	c.lastExit, c.curExit = c.curExit, nil
	c.restarts++
	if err := tr.w.start(c); err != nil {
		tr.t.Fatal(err)
	}
	tr.w.publish()
}

// waitLog waits until the container's current log holds want.
func (tr *testRun) waitLog(name, want string) {
	tr.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(tr.w.containers[name].out.Path())
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			tr.t.Fatalf("log of %s never showed %q: %q", name, want, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (tr *testRun) exec(p kubeletapitest.Protocol, cmd []string, o remotecommand.StreamOptions) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return tr.env.Exec(ctx, tr.env.Config, p, tr.target, cmd, o)
}

var sleeper = v1.Container{Name: "app", Command: []string{"sleep", "1000"}}

func exitCodeOf(err error) int {
	var ce utilexec.CodeExitError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

func TestKubeletAPIExecRunsInThePodWithStreamsAndExitCodes(t *testing.T) {
	tr := runPod(t, sleeper)
	st, err := os.Stat(tr.nsPath)
	if err != nil {
		t.Fatal(err)
	}
	podNet := fmt.Sprintf("net:[%d]", st.Sys().(*syscall.Stat_t).Ino)
	for _, p := range []kubeletapitest.Protocol{kubeletapitest.SPDY, kubeletapitest.WebSocket} {
		t.Run(string(p)+": the command runs in the pod's network namespace with its hostname", func(t *testing.T) {
			var out bytes.Buffer
			err := tr.exec(p, []string{"sh", "-c", "readlink /proc/self/ns/net; hostname"}, remotecommand.StreamOptions{Stdout: &out})
			if err != nil || out.String() != podNet+"\nweb\n" {
				t.Errorf("err %v, stdout %q, want %q", err, out.String(), podNet+"\nweb\n")
			}
		})
		t.Run(string(p)+": stdin reaches the command, stdout and stderr come back apart", func(t *testing.T) {
			var out, errs bytes.Buffer
			err := tr.exec(p, []string{"sh", "-c", "read x; echo got $x; echo oops >&2"},
				remotecommand.StreamOptions{Stdin: strings.NewReader("hello\n"), Stdout: &out, Stderr: &errs})
			if err != nil || out.String() != "got hello\n" || errs.String() != "oops\n" {
				t.Errorf("err %v, stdout %q, stderr %q", err, out.String(), errs.String())
			}
		})
		t.Run(string(p)+": exit 3 is status 3", func(t *testing.T) {
			err := tr.exec(p, []string{"sh", "-c", "exit 3"}, remotecommand.StreamOptions{Stdout: io.Discard})
			if code := exitCodeOf(err); code != 3 {
				t.Errorf("err %v: exit code %d, want 3", err, code)
			}
		})
	}
	t.Run("a program not in PATH is exit 127 with the reason", func(t *testing.T) {
		var errs bytes.Buffer
		err := tr.exec(kubeletapitest.SPDY, []string{"no-such-program"}, remotecommand.StreamOptions{Stdout: io.Discard, Stderr: &errs})
		if code := exitCodeOf(err); code != 127 || !strings.Contains(errs.String(), `exec: "no-such-program": executable file not found in $PATH`) {
			t.Errorf("err %v (code %d), stderr %q", err, code, errs.String())
		}
	})
	t.Run("a file that is not executable is exit 126", func(t *testing.T) {
		plain := filepath.Join(t.TempDir(), "plain")
		if err := os.WriteFile(plain, []byte("echo hi\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := tr.exec(kubeletapitest.SPDY, []string{plain}, remotecommand.StreamOptions{Stdout: io.Discard})
		if code := exitCodeOf(err); code != 126 {
			t.Errorf("err %v (code %d)", err, code)
		}
	})
	t.Run("SPDY: the end of the client's input is EOF to the command", func(t *testing.T) {
		var out bytes.Buffer
		err := tr.exec(kubeletapitest.SPDY, []string{"wc", "-l"}, remotecommand.StreamOptions{Stdin: strings.NewReader("a\nb\nc\n"), Stdout: &out})
		if err != nil || strings.TrimSpace(out.String()) != "3" {
			t.Errorf("err %v, stdout %q", err, out.String())
		}
	})
}

// syncBuffer is kubeletapitest.SyncBuffer.
type syncBuffer = kubeletapitest.SyncBuffer

// sizes is a terminal size queue fed by the test.
type sizes chan remotecommand.TerminalSize

func (q sizes) Next() *remotecommand.TerminalSize {
	s, ok := <-q
	if !ok {
		return nil
	}
	return &s
}

func TestKubeletAPIExecTTYIsARealTerminalWithResizeAndCtrlC(t *testing.T) {
	tr := runPod(t, sleeper)
	stdinR, stdinW := io.Pipe()
	defer stdinW.Close()
	q := make(sizes, 4)
	q <- remotecommand.TerminalSize{Width: 80, Height: 24}
	defer close(q)
	out := &syncBuffer{}
	script := `stty size
while read l; do [ "$l" = go ] && break; stty size; done
trap 'echo INT; exit 42' INT
echo waiting
while :; do sleep 0.1; done`
	done := make(chan error, 1)
	go func() {
		done <- tr.exec(kubeletapitest.SPDY, []string{"sh", "-c", script},
			remotecommand.StreamOptions{Stdin: stdinR, Stdout: out, Tty: true, TerminalSizeQueue: q})
	}()
	waitOutput(t, out, "24 80", nil)
	q <- remotecommand.TerminalSize{Width: 100, Height: 40}
	waitOutput(t, out, "40 100", func() { _, _ = io.WriteString(stdinW, "again\n") })
	_, _ = io.WriteString(stdinW, "go\n")
	waitOutput(t, out, "waiting", nil)
	_, _ = io.WriteString(stdinW, "\x03") // ^C
	select {
	case err := <-done:
		if code := exitCodeOf(err); code != 42 || !strings.Contains(out.String(), "INT") {
			t.Errorf("after ^C: err %v (code %d), output %q", err, code, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("^C did not end the program; output %q", out.String())
	}
}

// waitOutput waits for want in out, calling poke (when not nil) between
// looks.
func waitOutput(t *testing.T, out *syncBuffer, want string, poke func()) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output never showed %q: %q", want, out.String())
		}
		if poke != nil {
			poke()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestKubeletAPIPortForwardDialsInsideThePodAndCarriesTenMegabytes(t *testing.T) {
	// A decoy on this namespace's loopback, on the port the pod serves:
	// a dial made outside the pod would reach it.
	decoy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer decoy.Close()
	go func() {
		for {
			c, err := decoy.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("decoy"))
			c.Close()
		}
	}()
	port := decoy.Addr().(*net.TCPAddr).Port
	tr := runPod(t, v1.Container{Name: "app", Command: []string{os.Args[0], "echo-server", strconv.Itoa(port)}})
	tr.waitLog("app", "listening")
	local := tr.env.PortForward(t, kubeletapi.Target{Namespace: "shop", Pod: "web"}, port)
	kubeletapitest.EchoThrough(t, local, 10<<20)
}

func TestKubeletAPILogsFollowAndPreviousInstance(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "go-on")
	script := fmt.Sprintf(`echo one; while [ ! -e %s ]; do sleep 0.05; done; echo two; echo err >&2; exit 1`, flag)
	tr := runPod(t, v1.Container{Name: "app", Command: []string{"sh", "-c", script}})
	tr.waitLog("app", "one")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := tr.env.Get(ctx, tr.env.Config, "/containerLogs/shop/web/app?follow=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if line, err := r.ReadString('\n'); line != "one\n" {
		t.Fatalf("first line %q %v", line, err)
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil { // the container goes on
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r) // ends when the container's output does
	if err != nil || lines(string(rest)) != "err two" {
		t.Errorf("followed %q, %v; want the lines printed after the request", rest, err)
	}
	if ev := tr.waitExit("app"); ev.code != 1 {
		t.Errorf("exit code %d", ev.code)
	}
	t.Run("exec into the exited container is refused in the kubelet's words", func(t *testing.T) {
		err := tr.exec(kubeletapitest.SPDY, []string{"true"}, remotecommand.StreamOptions{Stdout: io.Discard})
		if err == nil || !strings.Contains(err.Error(), `container not found ("app")`) {
			t.Errorf("err %v", err)
		}
	})
	t.Run("while it waits for its restart, previous is its last run", func(t *testing.T) {
		if body := tr.get("/containerLogs/shop/web/app?previous=true"); lines(body) != "err one two" {
			t.Errorf("previous %q", body)
		}
	})
	_ = os.Remove(flag)
	tr.restart("app")
	tr.waitLog("app", "one")
	t.Run("after the restart, current and previous are the two runs", func(t *testing.T) {
		if body := tr.get("/containerLogs/shop/web/app"); body != "one\n" {
			t.Errorf("current %q", body)
		}
		if body := tr.get("/containerLogs/shop/web/app?previous=true"); lines(body) != "err one two" {
			t.Errorf("previous %q", body)
		}
		b, _ := os.ReadFile(filepath.Join(tr.w.sandbox.dir, "logs", "app.log"))
		if lines(string(b)) != "err one one two" {
			t.Errorf("podnet logs' plain file %q, want both runs", b)
		}
	})
}

// lines sorts the lines of s: stdout and stderr are separate pipes, so
// their order relative to each other is not kept (as with containerd).
func lines(s string) string {
	l := strings.Fields(s)
	slices.Sort(l)
	return strings.Join(l, " ")
}

func (tr *testRun) get(path string) string {
	tr.t.Helper()
	resp, err := tr.env.Get(context.Background(), tr.env.Config, path)
	if err != nil {
		tr.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Sprintf("status %d: %s", resp.StatusCode, b)
	}
	return string(b)
}

func TestTheNodeAdvertisesTheKubeletAPIItServes(t *testing.T) {
	ca, err := pki.EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serving, err := ca.IssueServing("kubelet", "system:node:node-1", []string{"node-1"}, []netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.IssueClient("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"kubelet-api-admin"})
	if err != nil {
		t.Fatal(err)
	}
	// Registered by an earlier run: the status update must carry the port.
	cs := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}})
	r := &Runtime{cfg: Config{NodeName: "node-1", NodeIP: netip.MustParseAddr("127.0.0.1"), CNIConfDir: t.TempDir(),
		KubeletAPI: kubeletapi.Config{Addr: "127.0.0.1:0", CertFile: serving.CertFile, KeyFile: serving.KeyFile,
			ClientCAFile: ca.CertFile(), AllowedGroups: []string{"kubelet-api-admin"}}},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), client: cs}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if r.apiPort, err = r.startKubeletAPI(ctx); err != nil || r.apiPort == 0 {
		t.Fatalf("port %d, %v", r.apiPort, err)
	}
	if err := r.registerNode(ctx); err != nil {
		t.Fatal(err)
	}
	node, err := cs.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := node.Status.DaemonEndpoints.KubeletEndpoint.Port; int(got) != r.apiPort {
		t.Errorf("node advertises port %d, the API listens on %d", got, r.apiPort)
	}
	cfg := &rest.Config{Host: fmt.Sprintf("https://127.0.0.1:%d", r.apiPort), TLSClientConfig: rest.TLSClientConfig{
		CAData: ca.CertPEM, CertData: client.CertPEM, KeyData: client.KeyPEM}}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Get(cfg.Host + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "ok" {
		t.Errorf("healthz: %d %q", resp.StatusCode, b)
	}
}

func TestKubeletAPIAttachStreamsWhatTheContainerWritesFromThenOn(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "go-on")
	script := fmt.Sprintf(`i=0; until [ -e %s ]; do i=$((i+1)); echo line$i; sleep 0.05; done; echo after; echo oops >&2`, flag)
	tr := runPod(t, v1.Container{Name: "app", Command: []string{"sh", "-c", script}})
	tr.waitLog("app", "line2\n")
	out, errs := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- tr.exec(kubeletapitest.SPDY, nil, remotecommand.StreamOptions{Stdout: out, Stderr: errs})
	}()
	waitOutput(t, out, "line", nil) // attached
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if err != nil || got[len(got)-1] != "after" || errs.String() != "oops\n" {
			t.Errorf("err %v, stdout %q, stderr %q", err, out.String(), errs.String())
		}
		for _, l := range got[:len(got)-1] {
			if n, _ := strconv.Atoi(strings.TrimPrefix(l, "line")); n < 3 {
				t.Errorf("attach showed %q, written before it attached", l)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("attach did not end with the container; stdout %q", out.String())
	}
}

// With pipes a program that writes dies of SIGPIPE when its client has
// gone; on a terminal nothing would stop it, so the session is killed.
func TestKubeletAPIExecEndsATerminalSessionWhenTheClientGoes(t *testing.T) {
	tr := runPod(t, sleeper)
	stdinR, stdinW := io.Pipe()
	defer stdinW.Close()
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- tr.env.Exec(ctx, tr.env.Config, kubeletapitest.SPDY, tr.target,
			[]string{"sh", "-c", "echo $$ > " + pidFile + "; while :; do echo tick; sleep 0.05; done"},
			remotecommand.StreamOptions{Stdin: stdinR, Stdout: out, Tty: true})
	}()
	waitOutput(t, out, "tick", nil)
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	cancel() // kubectl is gone
	<-done
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the command (pid %d) still runs after its client left", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKubectlThroughTheAPIServer is the user's path end to end: the real
// kubectl and kube-apiserver from tools/bin, this runtime's kubelet API and
// a real pod.
func TestKubectlThroughTheAPIServer(t *testing.T) {
	decoy, err := net.Listen("tcp", "127.0.0.1:0") // a free port number for the pod's echo server
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(decoy.Addr().(*net.TCPAddr).Port)
	decoy.Close()
	tr := runPod(t, v1.Container{Name: "app", Command: []string{"sh", "-c", "echo hello from app; exec sleep 1000"}},
		v1.Container{Name: "echo", Command: []string{os.Args[0], "echo-server", port}})
	api := kubeletapitest.StartAPIServer(t, tr.env)
	kubectlBin := filepath.Join(api.BinDir, "kubectl")
	if _, err := os.Stat(kubectlBin); err != nil {
		t.Skipf("control-plane test: kubectl is not built (make tools): %v", err)
	}
	api.CreatePod(t, "shop", "web", "app", "echo")
	tr.waitLog("echo", "listening")
	kubectl := func(args ...string) *exec.Cmd {
		return exec.Command(kubectlBin, append([]string{"--kubeconfig", api.Kubeconfig, "-n", "shop"}, args...)...)
	}
	run := func(stdin string, args ...string) (string, int) {
		c := kubectl(args...)
		c.Stdin = strings.NewReader(stdin)
		out, _ := c.CombinedOutput()
		return string(out), c.ProcessState.ExitCode()
	}
	for _, tc := range []struct {
		name, stdin string
		args        []string
		out         string
		code        int
	}{
		{"exec passes the exit code", "", []string{"exec", "web", "-c", "app", "--", "sh", "-c", "exit 3"}, "command terminated with exit code 3", 3},
		{"exec -i carries stdin", "hi\n", []string{"exec", "-i", "web", "-c", "app", "--", "sh", "-c", "read x; echo got $x"}, "got hi", 0},
		{"a missing program is 127 with the reason", "", []string{"exec", "web", "-c", "app", "--", "no-such-program"},
			`exec: "no-such-program": executable file not found in $PATH`, 127},
		{"logs", "", []string{"logs", "web", "-c", "app"}, "hello from app", 0},
	} {
		t.Run("kubectl "+tc.name, func(t *testing.T) {
			out, code := run(tc.stdin, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) {
				t.Errorf("exit %d, output %q; want %d and %q", code, out, tc.code, tc.out)
			}
		})
	}
	t.Run("kubectl exec -it is a terminal of the client's size", func(t *testing.T) {
		c := kubectl("exec", "-it", "web", "-c", "app", "--", "sh")
		term, err := pty.StartWithSize(c, &pty.Winsize{Rows: 33, Cols: 111})
		if err != nil {
			t.Fatal(err)
		}
		defer term.Close()
		out := &syncBuffer{}
		go func() { _, _ = io.Copy(out, term) }()
		_, _ = io.WriteString(term, "stty size; hostname; exit 7\r")
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = c.Process.Kill()
			t.Fatalf("kubectl exec -it did not end; output %q", out.String())
		}
		if code := c.ProcessState.ExitCode(); code != 7 || !strings.Contains(out.String(), "33 111") || !strings.Contains(out.String(), "web") {
			t.Errorf("exit %d, output %q", code, out.String())
		}
	})
	t.Run("kubectl port-forward", func(t *testing.T) {
		c := kubectl("port-forward", "--address", "127.0.0.1", "pod/web", ":"+port)
		errs := &syncBuffer{}
		c.Stderr = errs
		stdout, err := c.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = c.Process.Kill()
			_ = c.Wait()
		}()
		line, err := bufio.NewReader(stdout).ReadString('\n') // Forwarding from 127.0.0.1:NNNN -> PORT
		var local uint16
		if _, serr := fmt.Sscanf(line, "Forwarding from 127.0.0.1:%d ->", &local); err != nil || serr != nil {
			t.Fatalf("kubectl port-forward said %q, %q (%v, %v)", line, errs.String(), err, serr)
		}
		kubeletapitest.EchoThrough(t, local, 10<<20)
	})
}
