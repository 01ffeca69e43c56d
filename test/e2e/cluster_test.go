package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func (c *cluster) client(t *testing.T) kubernetes.Interface {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(c.stateDir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// runningPods waits until the pods with the label selector are Running with
// an IP (and Ready when ready is set) and returns them.
func (c *cluster) runningPods(t *testing.T, ns, selector string, want int, ready bool) []v1.Pod {
	t.Helper()
	cs := c.client(t)
	var pods []v1.Pod
	eventually(t, 90*time.Second, fmt.Sprintf("%d pods %q running", want, selector), func() error {
		l, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return err
		}
		pods = nil
		for _, p := range l.Items {
			if p.Status.Phase == v1.PodRunning && p.Status.PodIP != "" && p.DeletionTimestamp == nil && (!ready || podReady(&p)) {
				pods = append(pods, p)
			}
		}
		if len(pods) != want {
			return fmt.Errorf("%d of %d", len(pods), want)
		}
		return nil
	})
	return pods
}

func podReady(p *v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

func TestNodesAreReadyWithPodCIDRs(t *testing.T) {
	c := sharedCluster(t)
	t.Logf("podnet up to all nodes Ready: %s", c.upTime.Round(100*time.Millisecond))
	out := c.kubectl(t, "get", "nodes", "--no-headers")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("get nodes:\n%s\nwant 2 nodes", out)
	}
	for _, l := range lines {
		if f := strings.Fields(l); len(f) < 2 || f[1] != "Ready" {
			t.Errorf("node not Ready: %s", l)
		}
	}
	nodes, err := c.client(t).CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		cidr, err := netip.ParsePrefix(n.Spec.PodCIDR)
		if err != nil || !netip.MustParsePrefix("10.160.0.0/16").Contains(cidr.Addr()) || cidr.Bits() != 24 {
			t.Errorf("node %s podCIDR %q, want a /24 of 10.160.0.0/16", n.Name, n.Spec.PodCIDR)
		}
	}
}

const spreadDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 4
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: spread}}}
      containers:
      - name: srv
        image: podnet/test
        ports: [{containerPort: 80}, {containerPort: 90, protocol: UDP}]
`

func TestPodsReachPodsOnTheOtherNodeWithoutNAT(t *testing.T) {
	c := sharedCluster(t)
	start := time.Now()
	c.apply(t, spreadDeployment)
	pods := c.runningPods(t, "default", "app=spread", 4, false)
	t.Logf("4 replicas Running with IPs %s after apply", time.Since(start).Round(100*time.Millisecond))
	byNode := map[string][]v1.Pod{}
	nodes, _ := c.client(t).CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	cidrOf := map[string]netip.Prefix{}
	for _, n := range nodes.Items {
		cidrOf[n.Name] = netip.MustParsePrefix(n.Spec.PodCIDR)
	}
	for _, p := range pods {
		byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p)
		if !cidrOf[p.Spec.NodeName].Contains(netip.MustParseAddr(p.Status.PodIP)) {
			t.Errorf("pod %s on %s has IP %s outside its node's CIDR %s", p.Name, p.Spec.NodeName, p.Status.PodIP, cidrOf[p.Spec.NodeName])
		}
	}
	if len(byNode) != 2 {
		t.Fatalf("replicas on %d nodes, want both: %v", len(byNode), byNode)
	}
	var a, b v1.Pod
	for _, ps := range byNode {
		if a.Name == "" {
			a = ps[0]
		} else {
			b = ps[0]
		}
	}
	for _, tc := range []struct{ proto, port string }{{"tcp", "80"}, {"udp", "90"}} {
		out, err := c.podnet("probe", a.Name, b.Status.PodIP+":"+tc.port, "--protocol", tc.proto, "--timeout", "3s")
		if err != nil {
			t.Errorf("%s probe %s -> %s: %v\n%s", tc.proto, a.Name, b.Name, err, out)
			continue
		}
		want := fmt.Sprintf("answered by pod %s, which saw the client as %s:", b.Name, a.Status.PodIP)
		if !strings.Contains(out, want) {
			t.Errorf("%s probe output %q, want %q (the receiver sees the sender's pod IP)", tc.proto, out, want)
		}
	}
	// A port nobody serves: the probe says so and exits 1.
	out, err := c.podnet("probe", a.Name, b.Status.PodIP+":81", "--timeout", "2s")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(out, "no reply") {
		t.Errorf("probe of a closed port: %v %q, want exit 1 and 'no reply'", err, out)
	}
	// Every node reaches pods on both nodes.
	for i := 1; i <= 2; i++ {
		nodeNS := fmt.Sprintf("/run/netns/%s-node-%d", c.name, i)
		for _, p := range []v1.Pod{a, b} {
			if out, err := exec.Command("nsenter", "--net="+nodeNS, "ping", "-c1", "-W2", p.Status.PodIP).CombinedOutput(); err != nil {
				t.Errorf("node %d cannot reach pod %s (%s): %v\n%s", i, p.Name, p.Status.PodIP, err, out)
			}
		}
	}
	// podnet exec runs host tools inside the pod.
	out, err = c.podnet("exec", a.Name, "--", "ping", "-c1", "-W2", b.Status.PodIP)
	if err != nil {
		t.Errorf("podnet exec ping: %v\n%s", err, out)
	}
	c.kubectl(t, "delete", "deployment", "spread", "--wait=true")
}

func TestHostNetworkPod(t *testing.T) {
	c := sharedCluster(t)
	c.apply(t, `
apiVersion: v1
kind: Pod
metadata: {name: hostnet, labels: {app: hostnet}}
spec:
  hostNetwork: true
  containers: [{name: srv, image: podnet/test, ports: [{containerPort: 18080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: hostnet-client, labels: {app: hostnet-client}}
spec:
  containers: [{name: c, image: podnet/test, ports: [{containerPort: 80}]}]
`)
	hp := c.runningPods(t, "default", "app=hostnet", 1, true)[0]
	cl := c.runningPods(t, "default", "app=hostnet-client", 1, false)[0]
	if hp.Status.PodIP != hp.Status.HostIP {
		t.Errorf("hostNetwork pod IP %s, want its node's IP %s", hp.Status.PodIP, hp.Status.HostIP)
	}
	out, err := c.podnet("probe", cl.Name, hp.Status.PodIP+":18080", "--timeout", "3s")
	if err != nil || !strings.Contains(out, "answered by pod hostnet") {
		t.Errorf("probe of the hostNetwork pod: %v\n%s", err, out)
	}
	c.kubectl(t, "delete", "pod", "hostnet", "hostnet-client", "--wait=true")
}

func TestDeletingAPodFreesItsIP(t *testing.T) {
	c := sharedCluster(t)
	c.apply(t, `
apiVersion: v1
kind: Pod
metadata: {name: shortlived, labels: {app: shortlived}}
spec:
  containers: [{name: c, image: podnet/test, ports: [{containerPort: 80}]}]
`)
	p := c.runningPods(t, "default", "app=shortlived", 1, false)[0]
	ipamDir := filepath.Join(c.stateDir, "nodes", p.Spec.NodeName, "cni", "ipam", "podnet")
	reserved := filepath.Join(ipamDir, p.Status.PodIP)
	if _, err := os.Lstat(reserved); err != nil {
		t.Fatalf("running pod's IP is not reserved in %s: %v", ipamDir, err)
	}
	nsName := fmt.Sprintf("/run/netns/%s-pod-%s", c.name, strings.ReplaceAll(string(p.UID), "-", "")[:12])
	if _, err := os.Stat(nsName); err != nil {
		t.Fatalf("pod namespace %s missing: %v", nsName, err)
	}
	c.kubectl(t, "delete", "pod", "shortlived", "--wait=true")
	if _, err := os.Lstat(reserved); !os.IsNotExist(err) {
		t.Errorf("deleted pod's IP %s is still reserved: %v", p.Status.PodIP, err)
	}
	if _, err := os.Stat(nsName); !os.IsNotExist(err) {
		t.Errorf("deleted pod's namespace %s is still there", nsName)
	}
}

func TestCrashedContainerRestartsAndFailingReadinessIsNotReady(t *testing.T) {
	c := sharedCluster(t)
	c.apply(t, `
apiVersion: v1
kind: Pod
metadata: {name: crasher, labels: {app: crasher}}
spec:
  containers: [{name: c, image: busybox, command: ["sh", "-c", "echo up; sleep 0.5; exit 3"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: unready, labels: {app: unready}}
spec:
  containers:
  - name: c
    image: podnet/test
    ports: [{containerPort: 80}]
    readinessProbe: {tcpSocket: {port: 81}, periodSeconds: 1}
`)
	cs := c.client(t)
	eventually(t, 60*time.Second, "crasher restarted", func() error {
		p, err := cs.CoreV1().Pods("default").Get(context.Background(), "crasher", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].RestartCount < 1 {
			return fmt.Errorf("status %+v", p.Status.ContainerStatuses)
		}
		last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated
		if last == nil || last.ExitCode != 3 {
			return fmt.Errorf("last termination %+v, want exit code 3", last)
		}
		return nil
	})
	out, err := c.podnet("logs", "crasher")
	if err != nil || !strings.Contains(out, "up") {
		t.Errorf("podnet logs crasher: %v %q", err, out)
	}
	p := c.runningPods(t, "default", "app=unready", 1, false)[0]
	time.Sleep(3 * time.Second) // several failed probes
	p2, err := cs.CoreV1().Pods("default").Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if podReady(p2) {
		t.Errorf("pod with a failing readiness probe is Ready")
	}
	c.kubectl(t, "delete", "pod", "crasher", "unready", "--wait=true")
}

func TestBadInputGetsAOneLineError(t *testing.T) {
	c := sharedCluster(t)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: 7}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := c.podnet("apply", "-f", bad)
	if err == nil {
		t.Fatalf("a bad manifest was accepted: %s", out)
	}
	if n := len(strings.Split(strings.TrimSpace(out), "\n")); n > 2 {
		t.Errorf("error is %d lines:\n%s", n, out)
	}

	out, err = c.podnet("up")
	if err == nil || !strings.Contains(out, "already running") {
		t.Errorf("second up: %v %q, want 'already running'", err, out)
	}

	// Another cluster whose node network overlaps this one's bridge is
	// refused before anything is made.
	other := &cluster{name: "e2e-overlap-" + randHex(2), stateDir: filepath.Join(t.TempDir(), "state")}
	out, err = other.podnet("up", "--node-network", "172.29.0.0/24", "--pod-cidr", "10.162.0.0/16", "--service-cidr", "10.163.0.0/16", "--world-network", "198.51.100.0/24")
	if err == nil || !strings.Contains(out, "172.29.0.0/24") {
		t.Errorf("overlapping up: %v %q, want a conflict naming 172.29.0.0/24", err, out)
	}
	assertNothingOf(t, other.name)

	// A missing binary: one clear line, nothing made.
	out, err = other.podnetWithTools(t.TempDir(), "up", "--node-network", "172.28.77.0/24", "--pod-cidr", "10.164.0.0/16", "--service-cidr", "10.165.0.0/16", "--world-network", "198.51.100.0/24")
	if err == nil || !strings.Contains(out, "missing control-plane binaries") || !strings.Contains(out, "make tools") {
		t.Errorf("up without tools: %v %q", err, out)
	}
	assertNothingOf(t, other.name)
}

func (c *cluster) podnetWithTools(tools string, args ...string) (string, error) {
	cmd := exec.Command(podnetBin, append([]string{"--cluster", c.name, "--state-dir", c.stateDir, "--tools-bin", tools}, args...)...)
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// assertNothingOf checks that no namespace, link or process of the cluster
// exists (a node's processes name it: the agent's and runtime's
// --node-name, kube-proxy's configuration file).
func assertNothingOf(t *testing.T, name string) {
	t.Helper()
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), name+"-") {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
	out, _ := exec.Command("ps", "-eo", "args").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, name+"-node-") || strings.Contains(l, "/"+name+"/") {
			t.Errorf("process left behind: %s", l)
		}
	}
}
