package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/podnet/podnet/internal/testserver"
)

// runProbe runs `podnet probe ARGS` with the pod's namespace at nsPath (or
// findErr from finding the pod) and returns stdout and the exit status
// main would use.
func runProbe(t *testing.T, nsPath string, findErr error, args ...string) (string, int) {
	t.Helper()
	cmd := newProbeCommandWith(func() string { return "" }, func(*cobra.Command, string, string) (string, error) { return nsPath, findErr },
		func() (kubernetes.Interface, error) { return fake.NewClientset(probeObjects(t)...), nil })
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(args)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.Execute()
	if err == nil {
		return out.String(), 0
	}
	var ee exitError
	if !errors.As(err, &ee) {
		return out.String() + err.Error(), 1 // what main does with any other error
	}
	return out.String() + ee.msg, ee.code
}

// probeObjects are what the API server holds for the probe command's
// tests: a pod "api" and a Service "loop" whose addresses are loopback, in
// front of the test server's port (probeServerPort) and a closed port.
func probeObjects(t *testing.T) []runtime.Object {
	return []runtime.Object{
		&v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "api"},
			Status: v1.PodStatus{Phase: v1.PodRunning, PodIP: "127.0.0.1", PodIPs: []v1.PodIP{{IP: "127.0.0.1"}}}},
		&v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "loop"},
			Spec: v1.ServiceSpec{ClusterIP: "127.0.0.1", Ports: []v1.ServicePort{{Port: int32(probeServerPort), Protocol: v1.ProtocolTCP}}}},
	}
}

// probeServerPort is the port the test server of TestProbeExitStatus
// listens on (set before any probe runs).
var probeServerPort int

// closedPort is a loopback address nothing listens on.
func closedPortNumber(t *testing.T) string {
	_, port, _ := net.SplitHostPort(closedPort(t))
	return port
}

func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// startTestServer runs podnet's built-in test server as pod on a free
// loopback port (TCP and UDP) until the test ends, and returns its address.
func startTestServer(t *testing.T, pod string) string {
	t.Helper()
	addr := closedPort(t)
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- testserver.Serve(ctx, testserver.Config{Pod: pod, TCPPorts: []int{port}, UDPPorts: []int{port}, Host: "127.0.0.1"})
	}()
	t.Cleanup(func() { cancel(); <-done })
	for range 200 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("test server on %s did not come up", addr)
	return ""
}

// Exit status 1 is only "no reply"; every error is 2 (regression: a bad
// target and a namespace that cannot be entered exited 1, as if the
// network had dropped the probe). The probes go to loopback in this
// process's own namespace, or nowhere.
func TestProbeExitStatus(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("entering a network namespace (even this process's own) needs CAP_SYS_ADMIN")
	}
	self := "/proc/self/ns/net"
	server := startTestServer(t, "web-1")
	_, port, _ := net.SplitHostPort(server)
	probeServerPort, _ = strconv.Atoi(port)
	for _, tc := range []struct {
		name    string
		nsPath  string
		findErr error
		target  string
		extra   []string
		code    int
		out     string
	}{
		{name: "the test server's reply exits 0", nsPath: self, target: server, code: 0, out: "tcp web -> " + server + ": answered by pod web-1, which saw the client as 127.0.0.1:"},
		{name: "a UDP reply exits 0", nsPath: self, target: server, extra: []string{"--protocol", "udp"}, code: 0, out: "answered by pod web-1, which saw the client as 127.0.0.1:"},
		{name: "a refused connection is no reply: 1", nsPath: self, target: closedPort(t), code: 1, out: "no reply"},
		{name: "a pod by name is probed at its address from the API server: 0", nsPath: self, target: "pod/api:" + port, code: 0,
			out: "tcp web -> pod/api:" + port + " (" + server + "): answered by pod web-1, which saw the client as 127.0.0.1:"},
		{name: "a Service by name is probed at its cluster IP: 0", nsPath: self, target: "default/svc/loop:" + port, code: 0,
			out: "tcp web -> default/svc/loop:" + port + " (" + server + "): answered by pod web-1"},
		{name: "a pod by name that does not answer is no reply: 1", nsPath: self, target: "pod/api:" + closedPortNumber(t), code: 1, out: "no reply"},
		{name: "a name alone is an error that shows the forms: 2", nsPath: self, target: "api:8080", code: 2,
			out: "a name alone is not looked up (this machine's resolver would answer, not the cluster's DNS): name a pod or Service as pod/NAME, svc/NAME, NS/pod/NAME or NS/svc/NAME, or give an IP address"},
		{name: "an unknown pod as target is an error: 2", nsPath: self, target: "pod/nobody:80", code: 2, out: `pods "nobody" not found`},
		{name: "a port the Service lacks is an error: 2", nsPath: self, target: "svc/loop:1", code: 2, out: "has no port 1/TCP"},
		{name: "a Service's port over another protocol is an error: 2", nsPath: self, target: "svc/loop:" + port, extra: []string{"--protocol", "udp"}, code: 2, out: "has no port " + port + "/UDP"},
		{name: "a target without a port is an error: 2", nsPath: self, target: "127.0.0.1", code: 2, out: "missing port"},
		{name: "a namespace that cannot be entered is an error: 2", nsPath: "/nonexistent-netns", target: closedPort(t), code: 2, out: "nonexistent-netns"},
		{name: "a pod that cannot be found is an error: 2", findErr: errors.New(`pods "web" not found`), target: closedPort(t), code: 2, out: "not found"},
		{name: "an unknown protocol is an error: 2", nsPath: self, target: closedPort(t), extra: []string{"--protocol", "sctp"}, code: 2, out: "want tcp or udp"},
		{name: "an unknown flag is an error: 2", nsPath: self, target: closedPort(t), extra: []string{"--bogus"}, code: 2, out: "unknown flag"},
		{name: "a missing target is an error: 2", nsPath: self, code: 2, out: "POD and TARGET:PORT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"web", tc.target, "--timeout", "2s"}, tc.extra...)
			if tc.target == "" {
				args = []string{"web"}
			}
			out, code := runProbe(t, tc.nsPath, tc.findErr, args...)
			if code != tc.code || !strings.Contains(out, tc.out) {
				t.Errorf("exit %d, output %q; want exit %d with %q", code, out, tc.code, tc.out)
			}
		})
	}
}

// probe --matrix over one pod, api, whose address is loopback and whose
// network namespace is this process's: it answers itself as "api" (a
// test server named api on the port), and --expect compares.
func TestProbeMatrix(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("entering a network namespace (even this process's own) needs CAP_SYS_ADMIN")
	}
	self := "/proc/self/ns/net"
	_, port, _ := net.SplitHostPort(startTestServer(t, "api"))
	dir := t.TempDir()
	write := func(name, text string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	same := write("same", "# api reaches itself\n-\tdefault/api\ndefault/api\t.\n")
	differ := write("differ", "-\tdefault/api\ndefault/api\tX\n")
	bad := write("bad", "default/api .\n")
	for _, tc := range []struct {
		name  string
		extra []string
		code  int
		out   string
	}{
		{name: "the table in the upstream format: 0", code: 0, out: "-\tdefault/api\ndefault/api\t.\n"},
		{name: "a closed port is X: 0 (the table was probed)", extra: []string{"--port", closedPortNumber(t)}, code: 0, out: "default/api\tX\n"},
		{name: "--expect that agrees: 0", extra: []string{"--expect", same}, code: 0, out: "as expected"},
		{name: "--expect that differs: 1 with the cells", extra: []string{"--expect", differ}, code: 1,
			out: "1 cell(s) differ from " + differ + ":\n  default/api -> default/api: connected (.), want X\n"},
		{name: "a bad --expect file: 2", extra: []string{"--expect", bad}, code: 2, out: "the header starts with -"},
		{name: "a selector that selects nothing: 2", extra: []string{"-l", "app=none"}, code: 2, out: "no running pods in default"},
		{name: "--matrix takes no pod: 2", extra: []string{"web"}, code: 2, out: "takes no POD or TARGET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--matrix", "--port", port, "--timeout", "2s"}, tc.extra...)
			out, code := runProbe(t, self, nil, args...)
			if code != tc.code || !strings.Contains(out, tc.out) {
				t.Errorf("exit %d, output %q; want exit %d with %q", code, out, tc.code, tc.out)
			}
		})
	}
}
