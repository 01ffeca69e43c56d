package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/netns"
)

// uiArtifactsEnv names the directory the UI test keeps its screenshots in
// (default: the test's temporary directory, which goes with it).
const uiArtifactsEnv = "PODNET_UI_ARTIFACTS"

// startUI runs podnet ui on a free loopback port against c and returns its
// base URL; the process is stopped when the test ends.
func startUI(t *testing.T, c *cluster) string {
	t.Helper()
	cmd := exec.Command(podnetBin, "--cluster", c.name, "--state-dir", c.stateDir, "ui", "--listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("podnet ui did not stop 10s after SIGINT")
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("podnet ui: %v\n%s", err, stderr.String())
	}
	// "podnet ui: serving http://127.0.0.1:PORT/ (Ctrl-C to stop)"
	for _, f := range strings.Fields(line) {
		if strings.HasPrefix(f, "http://127.0.0.1:") {
			return strings.TrimSuffix(f, "/")
		}
	}
	t.Fatalf("podnet ui printed %q, want its URL", line)
	return ""
}

// newBrowser starts headless Chromium that reaches nothing but loopback:
// no background networking, component updates, sync or field trials,
// every host name but localhost fails to resolve, and anything else goes to
// a proxy on a loopback port where nothing listens. It records every URL the
// page requests.
func newBrowser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (apt-get install chromium, or make deps): %v", err)
	}
	// Not t.TempDir: Chromium's helpers may still write to the profile
	// when the test's own cleanup runs; it is removed after they end.
	profile, err := os.MkdirTemp("", "podnet-ui-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1400, 1100),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1"),
		// Whatever still asks for another address goes to a proxy that
		// is not there (loopback is never proxied).
		chromedp.ProxyServer("http://127.0.0.1:9"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() {
		_ = chromedp.Cancel(ctx) // closes the browser and waits for it
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		for i := 0; i < 10; i++ {
			if err = os.RemoveAll(profile); err == nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Errorf("remove Chromium's profile: %v", err)
	})
	var mu sync.Mutex
	var urls []string
	chromedp.ListenTarget(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			urls = append(urls, e.Request.URL)
			mu.Unlock()
		}
	})
	if err := chromedp.Run(ctx, network.Enable()); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), urls...) }
}

// uiPage drives the page and keeps screenshots.
type uiPage struct {
	t    *testing.T
	ctx  context.Context
	dir  string
	shot int
}

func (p *uiPage) run(what string, actions ...chromedp.Action) {
	p.t.Helper()
	if err := chromedp.Run(p.ctx, actions...); err != nil {
		p.screenshot("failed")
		p.t.Fatalf("%s: %v", what, err)
	}
}

// text is the visible text of the element sel.
func (p *uiPage) text(sel string) string {
	p.t.Helper()
	var s string
	p.run("read "+sel, chromedp.Text(sel, &s, chromedp.ByQuery))
	return s
}

// waitText waits until the text of sel contains every one of want.
func (p *uiPage) waitText(sel string, timeout time.Duration, want ...string) string {
	p.t.Helper()
	var got string
	deadline := time.Now().Add(timeout)
	for {
		got = p.text(sel)
		missing := ""
		for _, w := range want {
			if !strings.Contains(got, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return got
		}
		if time.Now().After(deadline) {
			p.screenshot("failed")
			p.t.Fatalf("%s does not show %q after %s; it shows:\n%s", sel, missing, timeout, got)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// fill replaces the value of the input sel.
func (p *uiPage) fill(sel, value string) chromedp.Action {
	return chromedp.SetValue(sel, value, chromedp.ByQuery)
}

func (p *uiPage) screenshot(name string) {
	p.t.Helper()
	var b []byte
	if err := chromedp.Run(p.ctx, chromedp.FullScreenshot(&b, 100)); err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p.shot++
	f := filepath.Join(p.dir, fmt.Sprintf("ui-%02d-%s.png", p.shot, name))
	if err := os.WriteFile(f, b, 0o644); err != nil {
		p.t.Errorf("screenshot: %v", err)
		return
	}
	p.t.Logf("screenshot %s", f)
}

// uiEnv is a namespace of its own with pod server (node-2, TCP 8080)
// behind Service server (80 -> 8080), and pod client (node-1).
type uiEnv struct {
	c              *cluster
	ns             string
	server, client v1.Pod
	svc            *v1.Service
}

func setupUI(t *testing.T) *uiEnv {
	t.Helper()
	c := sharedCluster(t)
	cs := c.client(t)
	ctx := context.Background()
	e := &uiEnv{c: c, ns: "ui-" + randHex(3)}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	np := &npEnv{c: c, cs: cs}
	t.Cleanup(func() { np.deleteNamespace(t, e.ns) })
	ports := []v1.ContainerPort{{ContainerPort: 8080, Protocol: v1.ProtocolTCP}}
	for name, node := range map[string]string{"server": c.name + "-node-2", "client": c.name + "-node-1"} {
		if _, err := cs.CoreV1().Pods(e.ns).Create(ctx, npPodSpec(name, node, map[string]string{"app": name}, ports), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "server"}, Spec: v1.ServiceSpec{Selector: map[string]string{"app": "server"},
		Ports: []v1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: v1.ProtocolTCP}}}}
	var err error
	if e.svc, err = cs.CoreV1().Services(e.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.server = c.runningPods(t, e.ns, "app=server", 1, true)[0]
	e.client = c.runningPods(t, e.ns, "app=client", 1, true)[0]
	return e
}

// The web UI end to end, in headless Chromium: the page shows the nodes and
// the namespace's pods with their IPs; a deny policy shows in force on
// both nodes; a connection it denies shows in the live flows with the
// policy; the trace form says DENIED and names it; the matrix has X where
// the policy denies and "." elsewhere (a pod reaches itself: its traffic to
// itself is not policed). Nothing the page asks for leaves
// the machine.
func TestUIShowsTopologyFlowsTraceAndMatrix(t *testing.T) {
	e := setupUI(t)
	base := startUI(t, e.c)
	ctx, requested := newBrowser(t)
	dir := os.Getenv(uiArtifactsEnv)
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &uiPage{t: t, ctx: ctx, dir: dir}
	node1, node2 := e.c.name+"-node-1", e.c.name+"-node-2"

	p.run("load the page", chromedp.Navigate(base+"/"), chromedp.WaitVisible("#nodes .node", chromedp.ByQuery))
	p.run("show the namespace", p.fill("#topo-ns", e.ns), chromedp.SendKeys("#topo-ns", " \b", chromedp.ByQuery))
	p.waitText("#nodes", 10*time.Second, node1, node2, e.ns+"/server "+e.server.Status.PodIP, e.ns+"/client "+e.client.Status.PodIP)
	// "2 nodes, N pods · updated TIME", and no error (a drawing error
	// replaces it with "cluster: ...").
	if got := p.waitText("#status", 10*time.Second, "2 nodes,", "updated"); strings.Contains(got, "policy status:") {
		t.Errorf("the page's status line says %q", got)
	}
	p.waitText("#services", 10*time.Second, e.ns+"/server", e.svc.Spec.ClusterIP, "80/TCP->8080")
	p.screenshot("topology")

	e.c.apply(t, fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ui-deny, namespace: %s}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress]
`, e.ns))
	p.waitText("#policies", 20*time.Second, e.ns+"/ui-deny", "app=server", "2/2")

	p.run("follow the namespace's flows", p.fill("#flows-ns", e.ns), p.fill("#flows-verdict", "dropped"),
		chromedp.Click("#flows-form button", chromedp.ByQuery))
	p.waitText("#flows-state", 10*time.Second, "following")
	target := net.JoinHostPort(e.server.Status.PodIP, "8080")
	clientNS := netns.Path(localcluster.DefaultConfig(e.c.name).PodNSName(string(e.client.UID)))
	eventually(t, 20*time.Second, "a denied connection in the live flows", func() error {
		if _, err := probeConn(clientNS, v1.ProtocolTCP, target, 500*time.Millisecond); err == nil {
			return fmt.Errorf("client reached server:8080 through ui-deny")
		}
		got := p.text("#flows")
		for _, w := range []string{"dropped (policy-denied)", e.ns + "/client", e.ns + "/server:8080", "ingress default deny (" + e.ns + "/ui-deny)"} {
			if !strings.Contains(got, w) {
				return fmt.Errorf("no %q in\n%s", w, got)
			}
		}
		return nil
	})
	p.screenshot("flows")

	p.run("trace from the form", p.fill("#trace-ns", e.ns), p.fill("#trace-pod", "client"), p.fill("#trace-target", "pod/server:8080"),
		chromedp.Click("#trace-probe", chromedp.ByQuery), chromedp.Click("#trace-form button", chromedp.ByQuery))
	p.waitText("#trace-verdict", 20*time.Second, "DENIED", "probe agrees")
	p.waitText("#trace-text", time.Second, e.ns+"/ui-deny", node2)
	p.screenshot("trace")

	p.run("run the matrix", p.fill("#matrix-ns", e.ns), p.fill("#matrix-port", "8080"), chromedp.Click("#matrix-form button", chromedp.ByQuery))
	p.waitText("#matrix-state", 30*time.Second, "pairs connect")
	var grid [][]string
	p.run("read the matrix", chromedp.Evaluate(`[...document.querySelectorAll("#matrix tr")].map(r => [...r.cells].map(c => c.textContent))`, &grid))
	want := [][]string{{"", "1", "2"}, {"1 " + e.ns + "/client", ".", "X"}, {"2 " + e.ns + "/server", ".", "."}}
	if fmt.Sprint(grid) != fmt.Sprint(want) {
		t.Errorf("matrix on the page %q, want %q", grid, want)
	}
	p.screenshot("matrix")

	for _, u := range requested() {
		if !strings.HasPrefix(u, base+"/") {
			t.Errorf("the page requested %s, outside podnet ui (%s)", u, base)
		}
	}
	if pu, err := url.Parse(base); err != nil || pu.Hostname() != "127.0.0.1" {
		t.Errorf("podnet ui serves on %s, want loopback", base)
	}
}
