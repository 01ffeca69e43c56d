package e2e

// Plain kubectl (tools/bin/kubectl with the cluster's admin kubeconfig)
// through the real kube-apiserver into the pod runtimes' kubelet API, on a
// cluster of its own: nodes 172.28.61.0/24, pods 10.180.0.0/16, services
// 10.181.0.0/16, world 198.18.61.0/24, the seed examples applied. Its pods
// (default namespace, container "c" unless said) write files on this
// machine only under /tmp/podnet-e2e-kubectl-<random>-*, removed at the end.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podnet/podnet/internal/kubeletapi/kubeletapitest"
	"github.com/podnet/podnet/internal/pki"
)

// kubectlPods are the pods of TestKubectl besides the seed's; files is the
// prefix of the host files they use, echo the program that echoes TCP.
func kubectlPods(files, echo string) string {
	return fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: talker, labels: {app: talker}}
spec:
  containers:
  - {name: c, image: busybox, command: ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"]}
---
apiVersion: v1
kind: Pod
metadata: {name: follower, labels: {app: follower}}
spec:
  containers:
  - {name: c, image: busybox, command: ["sh", "-c", "echo before; until [ -e %[1]s-follow ]; do sleep 0.1; done; echo after; exec sleep 3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: logs, labels: {app: logs}}
spec:
  containers:
  - {name: one, image: busybox, command: ["sh", "-c", "for i in 1 2 3 4 5; do echo one $i; done; exec sleep 3600"]}
  - {name: two, image: busybox, command: ["sh", "-c", "echo old; sleep 5; echo new; exec sleep 3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: restarted, labels: {app: restarted}}
spec:
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "if [ -e %[1]s-restarted ]; then echo second instance; exec sleep 3600; fi; touch %[1]s-restarted; echo first instance; exit 1"]
---
apiVersion: v1
kind: Pod
metadata: {name: crashloop, labels: {app: crashloop}}
spec:
  containers:
  - {name: c, image: busybox, command: ["sh", "-c", "echo crashing; exit 1"]}
---
apiVersion: v1
kind: Pod
metadata: {name: notready, labels: {app: notready}}
spec:
  containers:
  - name: c
    image: busybox
    command: ["sleep", "3600"]
    readinessProbe:
      exec: {command: ["sh", "-c", "echo database unreachable; exit 1"]}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: half, labels: {app: half}}
spec:
  restartPolicy: Never
  containers:
  - {name: up, image: busybox, command: ["sleep", "3600"]}
  - {name: done, image: busybox, command: ["true"]}
---
apiVersion: v1
kind: Pod
metadata: {name: echo, labels: {app: kubectl-echo}}
spec:
  containers:
  - name: c
    image: podnet/e2e-echo
    command: [%[2]q]
    env: [{name: %[3]s, value: "7000"}]
    ports: [{containerPort: 7000}]
---
apiVersion: v1
kind: Service
metadata: {name: kubectl-echo}
spec:
  selector: {app: kubectl-echo}
  ports: [{port: 80, targetPort: 7000}]
`, files, echo, echoEnv)
}

// TestKubectl runs everything a kubectl user does with pods against one
// cluster, in parallel subtests.
func TestKubectl(t *testing.T) {
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	c, err := up("e2e-kubectl-"+randHex(2), "--node-network", "172.28.61.0/24", "--pod-cidr", "10.180.0.0/16",
		"--service-cidr", "10.181.0.0/16", "--world-network", "198.18.61.0/24", "-f", filepath.Join(repoRoot, "examples", "seed"))
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	t.Cleanup(c.down)
	t.Logf("podnet up with the seed examples took %s", c.upTime.Round(100*time.Millisecond))
	files := filepath.Join(os.TempDir(), "podnet-e2e-kubectl-"+randHex(4))
	t.Cleanup(func() {
		m, _ := filepath.Glob(files + "-*")
		for _, f := range m {
			_ = os.Remove(f)
		}
	})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c.apply(t, kubectlPods(files, self))
	k := kubectlClient{kubeconfig: filepath.Join(c.stateDir, "kubeconfig")}

	for _, tc := range []struct {
		name string
		run  func(t *testing.T, c *cluster, k kubectlClient, files string)
	}{
		{"the API server reaches each node's kubelet API (nodes/proxy/healthz)", kubectlNodeProxy},
		{"exec passes streams and exit statuses, with and without -i and -t", kubectlExecStreams},
		{"exec -it is a real terminal: size, resize, Ctrl-C, exit status", kubectlExecTerminal},
		{"the seed's troubleshooting commands work verbatim", kubectlSeedCommands},
		{"attach streams what the container writes from then on", kubectlAttach},
		{"cp copies a file into a pod and back", kubectlCopy},
		{"logs follows, tails, filters by time and container, and shows the previous instance", kubectlLogs},
		{"port-forward carries 10 MB intact to a pod and to a Service", kubectlPortForward},
		{"bad input gets a kubelet's message and the runtime keeps serving", kubectlBadInput},
		{"clients without the right identity are refused", kubectlRefused},
		{"describe pod shows the runtime's Events", kubectlDescribeEvents},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, c, k, files)
		})
	}
}

// podOf waits for the one pod with the label selector to run and returns
// its node and IP.
func podOf(t *testing.T, c *cluster, selector string) (node, ip string) {
	t.Helper()
	p := c.runningPods(t, "default", selector, 1, false)[0]
	return p.Spec.NodeName, p.Status.PodIP
}

func kubectlNodeProxy(t *testing.T, c *cluster, k kubectlClient, _ string) {
	for i := 1; i <= 2; i++ {
		node := fmt.Sprintf("%s-node-%d", c.name, i)
		if out := k.ok(t, "get", "--raw", "/api/v1/nodes/"+node+"/proxy/healthz"); out != "ok" {
			t.Errorf("%s healthz through the API server: %q", node, out)
		}
		if out := k.ok(t, "get", "--raw", "/api/v1/nodes/"+node+"/proxy/pods"); !strings.Contains(out, `"kind":"PodList"`) {
			t.Errorf("%s pods through the API server: %.200q", node, out)
		}
	}
}

// streamCase is one kubectl run with its input and what must come out.
type streamCase struct {
	name          string
	stdin         string
	args          []string
	stdout        string
	stderrHas     string
	code          int
	stdoutPattern bool // stdout is a regular expression
}

func (sc streamCase) check(t *testing.T, k kubectlClient) {
	t.Helper()
	var in io.Reader
	if sc.stdin != "" {
		in = strings.NewReader(sc.stdin)
	}
	out, errOut, code := k.run(t, in, sc.args...)
	okOut := out == sc.stdout
	if sc.stdoutPattern {
		okOut = regexp.MustCompile(sc.stdout).MatchString(out)
	}
	if !okOut || code != sc.code || !strings.Contains(errOut, sc.stderrHas) {
		t.Errorf("%s: kubectl %s\ngot  exit %d, stdout %q, stderr %q\nwant exit %d, stdout %q, stderr with %q",
			sc.name, strings.Join(sc.args, " "), code, out, errOut, sc.code, sc.stdout, sc.stderrHas)
	}
}

func kubectlExecStreams(t *testing.T, c *cluster, k kubectlClient, _ string) {
	podOf(t, c, "role=frontend")
	big := make([]byte, 1<<20)
	_, _ = rand.Read(big)
	sum := sha256.Sum256(big)
	for _, sc := range []streamCase{
		{name: "stdout, stderr and the exit status come back apart",
			args:   []string{"exec", "frontend", "--", "sh", "-c", "echo out; echo err >&2; exit 3"},
			stdout: "out\n", stderrHas: "err\ncommand terminated with exit code 3", code: 3},
		{name: "exec -i carries piped stdin", stdin: "piped through exec -i\n",
			args: []string{"exec", "-i", "frontend", "--", "tr", "a-z", "A-Z"}, stdout: "PIPED THROUGH EXEC -I\n"},
		{name: "exec -i carries 1 MiB intact", stdin: string(big),
			args: []string{"exec", "-i", "frontend", "--", "sha256sum"}, stdout: hex.EncodeToString(sum[:]) + "  -\n"},
		{name: "without -i the program's stdin is empty", stdin: "not sent\n",
			args: []string{"exec", "frontend", "--", "cat"}, stdout: ""},
		{name: "-t without -i is no terminal (kubectl drops it)",
			args: []string{"exec", "-t", "frontend", "--", "tty"}, stdout: "not a tty\n", stderrHas: "exit code 1", code: 1},
		{name: "-it from a pipe warns and runs without a terminal",
			args: []string{"exec", "-it", "frontend", "--", "tty"}, stdout: "not a tty\n",
			stderrHas: "Unable to use a TTY - input is not a terminal or the right kind of file", code: 1},
		{name: "the program runs in the pod (hostname, resolv.conf)",
			args:   []string{"exec", "frontend", "--", "sh", "-c", "hostname; grep -c 10.181.0.10 /etc/resolv.conf"},
			stdout: "frontend\n1\n"},
	} {
		sc.check(t, k)
	}
}

func kubectlExecTerminal(t *testing.T, c *cluster, k kubectlClient, _ string) {
	podOf(t, c, "role=frontend")
	term := k.terminal(t, 40, 100, "exec", "-it", "frontend", "--", "sh")
	term.typeIn("tty; stty size\r")
	term.waitFor(`/dev/pts/\d+\r\n40 100\r\n`)
	// A resize of kubectl's terminal reaches the pod's terminal.
	term.resize(50, 120)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(term.out.String(), "50 120") && time.Now().Before(deadline) {
		term.typeIn("stty size\r")
		time.Sleep(300 * time.Millisecond)
	}
	term.waitFor(`50 120\r\n`)
	// Ctrl-C goes to the program in the pod, not to kubectl.
	term.typeIn("echo started; sleep 100\r")
	term.waitFor(`\r\nstarted\r\n`)
	time.Sleep(200 * time.Millisecond) // sleep has started
	start := time.Now()
	term.typeIn("\x03")
	term.typeIn("echo status=$?\r")
	term.waitFor(`status=130\r\n`)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Ctrl-C ended sleep after %s", took)
	}
	term.typeIn("exit 3\r")
	if code, out := term.exit(); code != 3 {
		t.Errorf("exit 3 in the pod's shell: kubectl exit status %d\n%q", code, out)
	}
}

func kubectlSeedCommands(t *testing.T, c *cluster, k kubectlClient, _ string) {
	podOf(t, c, "role=frontend")
	// The seed's api-allow drops ping to api: nginx-pod answers.
	_, nginxIP := podOf(t, c, "app=nginx")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"exec", "-it", "frontend", "--", "ping", "-c1", nginxIP}, "1 packets transmitted, 1 received"},
		{[]string{"exec", "-it", "frontend", "--", "wget", "-O-", "nginx-service"}, "pod=nginx-pod client="},
		{[]string{"exec", "-it", "frontend", "--", "nslookup", "kubernetes.default"},
			"Name:\tkubernetes.default.svc.cluster.local\r\nAddress: 10.181.0.1"},
	} {
		term := k.terminal(t, 24, 80, tc.args...)
		if code, out := term.exit(); code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("kubectl %s in a terminal: exit %d, output %q, want %q", strings.Join(tc.args, " "), code, out, tc.want)
		}
	}
	// From a script -it warns (no terminal) and still works.
	out, errOut, code := k.run(t, nil, "exec", "-it", "frontend", "--", "nslookup", "kubernetes.default")
	if code != 0 || !strings.Contains(out, "Address: 10.181.0.1") || !strings.Contains(errOut, "Unable to use a TTY") {
		t.Errorf("nslookup without a terminal: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func kubectlAttach(t *testing.T, c *cluster, k kubectlClient, _ string) {
	podOf(t, c, "app=talker")
	tick := regexp.MustCompile(`tick (\d+)\n`)
	var before int
	eventually(t, 30*time.Second, "talker has talked", func() error {
		ticks := tick.FindAllStringSubmatch(k.ok(t, "logs", "talker"), -1)
		if len(ticks) < 3 {
			return fmt.Errorf("%d ticks", len(ticks))
		}
		before, _ = strconv.Atoi(ticks[len(ticks)-1][1])
		return nil
	})
	a := k.start(t, "attach", "talker")
	m := waitFor(t, a.out, regexp.MustCompile(`tick (\d+)\ntick (\d+)\n`), 30*time.Second)
	first, _ := strconv.Atoi(m[1])
	second, _ := strconv.Atoi(m[2])
	if first <= before || second != first+1 {
		t.Errorf("attach after tick %d showed ticks %d, %d: want only what came after, in order", before, first, second)
	}
}

func kubectlCopy(t *testing.T, c *cluster, k kubectlClient, files string) {
	podOf(t, c, "role=frontend")
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	local := filepath.Join(t.TempDir(), "data.bin")
	if err := os.WriteFile(local, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	inPod := files + "-cp.bin"
	k.ok(t, "cp", local, "frontend:"+inPod)
	if out := k.ok(t, "exec", "frontend", "--", "sha256sum", inPod); !strings.HasPrefix(out, hex.EncodeToString(sum[:])+" ") {
		t.Errorf("the copy in the pod: %q, want sum %x", out, sum)
	}
	back := filepath.Join(t.TempDir(), "back.bin")
	k.ok(t, "cp", "frontend:"+inPod, back)
	if got, err := os.ReadFile(back); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the copy back from the pod differs (%d bytes, %v)", len(got), err)
	}
}

func kubectlLogs(t *testing.T, c *cluster, k kubectlClient, files string) {
	t.Run("-f shows what is written after the request", func(t *testing.T) {
		t.Parallel()
		podOf(t, c, "app=follower")
		f := k.start(t, "logs", "-f", "follower")
		waitFor(t, f.out, regexp.MustCompile(`^before\n$`), 30*time.Second)
		if err := os.WriteFile(files+"-follow", nil, 0o644); err != nil {
			t.Fatal(err)
		}
		waitFor(t, f.out, regexp.MustCompile(`^before\nafter\n$`), 30*time.Second)
	})
	t.Run("--previous shows the instance before the restart", func(t *testing.T) {
		t.Parallel()
		podOf(t, c, "app=restarted")
		eventually(t, 60*time.Second, "the second instance runs", func() error {
			if out, _, _ := k.run(t, nil, "logs", "restarted"); out != "second instance\n" {
				return fmt.Errorf("logs %q", out)
			}
			return nil
		})
		if out := k.ok(t, "logs", "restarted", "--previous"); out != "first instance\n" {
			t.Errorf("logs --previous: %q", out)
		}
	})
	t.Run("--tail, -c, --all-containers, --timestamps, --since", func(t *testing.T) {
		t.Parallel()
		podOf(t, c, "app=logs")
		var stamped string
		eventually(t, 30*time.Second, "container two wrote both lines", func() error {
			if stamped = k.ok(t, "logs", "logs", "-c", "two", "--timestamps"); !strings.Contains(stamped, " new\n") {
				return fmt.Errorf("logs %q", stamped)
			}
			return nil
		})
		for _, sc := range []streamCase{
			{name: "the first container by default", args: []string{"logs", "logs"},
				stdout: "one 1\none 2\none 3\none 4\none 5\n", stderrHas: `Defaulted container "one" out of: one, two`},
			{name: "--tail", args: []string{"logs", "logs", "-c", "one", "--tail=2"}, stdout: "one 4\none 5\n"},
			{name: "-c", args: []string{"logs", "logs", "-c", "two"}, stdout: "old\nnew\n"},
			{name: "--all-containers --prefix", args: []string{"logs", "logs", "--all-containers", "--prefix"},
				// kubectl asks for the containers' logs in parallel:
				// each container's lines come whole, in either order.
				stdout: "(?s)^((\\[pod/logs/one\\] one \\d\n){5}(\\[pod/logs/two\\] (old|new)\n){2}|(\\[pod/logs/two\\] (old|new)\n){2}(\\[pod/logs/one\\] one \\d\n){5})$", stdoutPattern: true},
			{name: "--previous without one", args: []string{"logs", "logs", "-c", "one", "--previous"}, code: 1,
				stderrHas: `previous terminated container "one" in pod "logs" not found`},
		} {
			sc.check(t, k)
		}
		// --timestamps: RFC 3339 times, 5 s apart; --since cuts between them.
		m := regexp.MustCompile(`^(\S+) old\n(\S+) new\n$`).FindStringSubmatch(stamped)
		if m == nil {
			t.Fatalf("logs --timestamps: %q", stamped)
		}
		oldAt, err1 := time.Parse(time.RFC3339Nano, m[1])
		newAt, err2 := time.Parse(time.RFC3339Nano, m[2])
		if err1 != nil || err2 != nil || newAt.Sub(oldAt) < 4*time.Second {
			t.Fatalf("timestamps %q, %q: %v %v", m[1], m[2], err1, err2)
		}
		since := time.Since(oldAt) - newAt.Sub(oldAt)/2 // kubectl rounds up to whole seconds
		if out := k.ok(t, "logs", "logs", "-c", "two", "--since="+since.Truncate(time.Second).String()); out != "new\n" {
			t.Errorf("logs --since=%s (old %s, new %s): %q", since.Truncate(time.Second), m[1], m[2], out)
		}
	})
}

func kubectlPortForward(t *testing.T, c *cluster, k kubectlClient, _ string) {
	podOf(t, c, "app=kubectl-echo")
	eventually(t, 30*time.Second, "the echo server listens", func() error {
		if out, _, _ := k.run(t, nil, "logs", "echo"); out != "listening\n" {
			return fmt.Errorf("logs %q", out)
		}
		return nil
	})
	forwarding := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> 7000`)
	for _, target := range []struct{ name, port string }{{"pod/echo", "7000"}, {"service/kubectl-echo", "80"}} {
		pf := k.start(t, "port-forward", target.name, ":"+target.port)
		port, _ := strconv.Atoi(waitFor(t, pf.out, forwarding, 30*time.Second)[1])
		t.Logf("kubectl port-forward %s:", target.name)
		kubeletapitest.EchoThrough(t, uint16(port), 10<<20)
	}
}

func kubectlBadInput(t *testing.T, c *cluster, k kubectlClient, _ string) {
	frontendNode, _ := podOf(t, c, "role=frontend")
	podOf(t, c, "app=half")
	stillServes := func(after string) {
		t.Helper()
		if out, errOut, code := k.run(t, nil, "exec", "frontend", "--", "echo", "still serving"); code != 0 || out != "still serving\n" {
			t.Errorf("after %s: exec exit %d, %q %q", after, code, out, errOut)
		}
	}
	for _, sc := range []streamCase{
		{name: "a container the pod does not have", args: []string{"exec", "frontend", "-c", "nope", "--", "true"},
			code: 1, stderrHas: "container nope is not valid for pod frontend"},
		{name: "a container that has finished", args: []string{"exec", "half", "-c", "done", "--", "true"},
			code: 1, stderrHas: `unable to upgrade connection: container not found ("done")`},
		{name: "a command that does not exist", args: []string{"exec", "frontend", "--", "no-such-command"},
			code: 127, stderrHas: "exec: \"no-such-command\": executable file not found in $PATH\ncommand terminated with exit code 127"},
	} {
		sc.check(t, k)
		stillServes(sc.name)
	}
	// The API server sends a pod's requests to its node only; asked
	// directly, another node's runtime answers as a kubelet does.
	other := c.name + "-node-1"
	if frontendNode == other {
		other = c.name + "-node-2"
	}
	otherIP := nodeIP(t, c, other)
	for _, tc := range []struct{ method, path, want string }{
		{http.MethodGet, "/containerLogs/default/frontend/frontend", `pod "frontend" does not exist`},
		{http.MethodPost, "/exec/default/frontend/frontend?command=true&output=1", "pod does not exist"},
		{http.MethodPost, "/portForward/default/frontend", "pod does not exist"},
	} {
		code, body := kubeletCall(t, c.stateDir, otherIP, "apiserver-kubelet-client", tc.method, tc.path)
		if code != http.StatusNotFound || body != tc.want {
			t.Errorf("%s %s on %s (frontend runs on %s): %d %q, want 404 %q", tc.method, tc.path, other, frontendNode, code, body, tc.want)
		}
	}
	stillServes("requests for a pod of another node")
}

// nodeIP is the InternalIP of node.
func nodeIP(t *testing.T, c *cluster, node string) string {
	t.Helper()
	k := kubectlClient{kubeconfig: filepath.Join(c.stateDir, "kubeconfig")}
	return strings.TrimSpace(k.ok(t, "get", "node", node, "-o", `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`))
}

func kubectlRefused(t *testing.T, c *cluster, k kubectlClient, _ string) {
	podOf(t, c, "role=frontend")
	// A user who may read pods but not exec into them.
	ca, err := pki.LoadCA(filepath.Join(c.stateDir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := ca.IssueClient("e2e-viewer", "e2e-viewer", nil)
	if err != nil {
		t.Fatal(err)
	}
	server := strings.TrimSpace(k.ok(t, "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"))
	kc := filepath.Join(t.TempDir(), "viewer.kubeconfig")
	if err := (pki.Kubeconfig{Cluster: c.name, User: "e2e-viewer", Server: server, CAPEM: ca.CertPEM,
		CertPEM: viewer.CertPEM, KeyPEM: viewer.KeyPEM}).Write(kc); err != nil {
		t.Fatal(err)
	}
	k.ok(t, "create", "rolebinding", "e2e-viewer", "--clusterrole=view", "--user=e2e-viewer", "-n", "default")
	v := kubectlClient{kubeconfig: kc}
	eventually(t, 20*time.Second, "the viewer may get pods", func() error {
		if out, errOut, code := v.run(t, nil, "get", "pod", "frontend", "-o", "name"); code != 0 || out != "pod/frontend\n" {
			return fmt.Errorf("exit %d %q %q", code, out, errOut)
		}
		return nil
	})
	streamCase{name: "the viewer's exec", args: []string{"exec", "frontend", "--", "true"}, code: 1,
		stderrHas: `pods "frontend" is forbidden: User "e2e-viewer" cannot create resource "pods/exec" in API group "" in the namespace "default"`}.check(t, v)

	// The kubelet API itself lets in the API server's identity only.
	node, _ := podOf(t, c, "role=frontend")
	ip := nodeIP(t, c, node)
	for _, tc := range []struct {
		cert string
		code int
		body string
	}{
		{"", http.StatusUnauthorized, "Unauthorized"},
		{"agent-" + node, http.StatusForbidden, "Forbidden (user=podnet-agent:" + node + ", verb=get, resource=nodes, subresource(s)=[pods proxy])"},
		{"admin", http.StatusForbidden, "Forbidden (user=kubernetes-admin, verb=get, resource=nodes, subresource(s)=[pods proxy])"},
		{"apiserver-kubelet-client", http.StatusOK, ""},
	} {
		code, body := kubeletCall(t, c.stateDir, ip, tc.cert, http.MethodGet, "/pods")
		if code != tc.code || (tc.body != "" && body != tc.body) {
			t.Errorf("GET /pods on %s with certificate %q: %d %.200q, want %d %q", node, tc.cert, code, body, tc.code, tc.body)
		}
	}
}

func kubectlDescribeEvents(t *testing.T, c *cluster, k kubectlClient, _ string) {
	for _, tc := range []struct{ pod, want string }{
		{"crashloop", `Warning\s+BackOff\s+\S+ \(x(\d+) over \S+\)\s+kubelet\s+spec\.containers\{c\}: Back-off restarting failed container c in pod crashloop_default\(`},
		{"crashloop", `Normal\s+Started\s+.*kubelet\s+spec\.containers\{c\}: Container started`},
		{"crashloop", `Normal\s+Scheduled\s+.*default-scheduler\s+Successfully assigned default/crashloop to `},
		{"notready", `Warning\s+Unhealthy\s+\S+ \(x(\d+) over \S+\)\s+kubelet\s+spec\.containers\{c\}: Readiness probe failed: database unreachable`},
	} {
		re := regexp.MustCompile(tc.want)
		eventually(t, 60*time.Second, "describe pod "+tc.pod+" shows "+tc.want, func() error {
			out := k.ok(t, "describe", "pod", tc.pod)
			m := re.FindStringSubmatch(out)
			if m == nil {
				return fmt.Errorf("no match in\n%s", out[strings.Index(out, "Events:"):])
			}
			if len(m) > 1 {
				if n, _ := strconv.Atoi(m[1]); n < 2 {
					return fmt.Errorf("count %d", n)
				}
			}
			return nil
		})
	}
}
