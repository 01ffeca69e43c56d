package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/testserver"
)

// The containerd cluster: nodes run a real kubelet and containerd, and
// podnet is installed from deploy/ (podnet up --node-runtime containerd).
// Its own address plan: nodes 172.27.0.0/24, pods 10.170.0.0/16, services
// 10.171.0.0/16, world 198.51.102.0/24.
const (
	criNodeNetwork = "172.27.0.0/24"
	criNode1IP     = "172.27.0.11"
)

// criPods are two pods pinned to the two nodes, from the test image.
const criPods = `
apiVersion: v1
kind: Pod
metadata: {name: cri-a, labels: {role: frontend}}
spec:
  nodeName: %[1]s
  containers: [{name: c, image: podnet/test, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: cri-b}
spec:
  nodeName: %[2]s
  containers: [{name: c, image: podnet/test, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: cri-log}
spec:
  containers: [{name: c, image: busybox, command: ["sh", "-c", "echo hello from containerd; exec sleep 3600"]}]
`

var (
	criOnce   sync.Once
	criShared *cluster
	criErr    error
)

// containerdCluster starts (once; TestMain takes it down) the containerd
// cluster with the seed examples.
func containerdCluster(t *testing.T) *cluster {
	t.Helper()
	needContainerd(t)
	criOnce.Do(func() {
		criShared, criErr = up("cri-"+randHex(3), "--node-runtime", "containerd", "--service-proxy", "podnet",
			"--pod-cidr", "10.170.0.0/16", "--service-cidr", "10.171.0.0/16", "--node-network", criNodeNetwork,
			"--world-network", "198.51.102.0/24", "-f", filepath.Join(repoRoot, "examples", "seed"))
		if criErr == nil {
			t.Logf("podnet up --node-runtime containerd: %s", criShared.upTime.Round(100*time.Millisecond))
		}
	})
	if criErr != nil {
		t.Fatalf("podnet up --node-runtime containerd: %v", criErr)
	}
	return criShared
}

// needContainerd skips without root (as every e2e test) and fails without
// what make image and make tools build.
func needContainerd(t *testing.T) {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	for _, f := range []string{filepath.Join(repoRoot, "bin", "images", localcluster.PodnetImageArchive), filepath.Join(toolsBin, "kubelet")} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%v (make image tools)", err)
		}
	}
}

func TestContainerdNodes(t *testing.T) {
	c := containerdCluster(t)
	cfg, err := localcluster.Load(c.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	node1, node2 := cfg.NodeName(1), cfg.NodeName(2)

	t.Run("real kubelet and containerd, podnet from deploy", func(t *testing.T) {
		out := c.kubectl(t, "get", "nodes", "-o", `jsonpath={range .items[*]}{.status.nodeInfo.containerRuntimeVersion} {.status.nodeInfo.kubeletVersion}{"\n"}{end}`)
		if strings.Count(out, "containerd://2.4.2 v1.37.2") != 2 {
			t.Errorf("nodes report:\n%s\nwant containerd://2.4.2 and kubelet v1.37.2 on both", out)
		}
		recs, err := os.ReadDir(filepath.Join(c.stateDir, "procs"))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if strings.HasPrefix(r.Name(), "agent-") || strings.HasPrefix(r.Name(), "runtime-") {
				t.Errorf("up started %s on a node; only the DaemonSet may run podnet there", r.Name())
			}
		}
		ds := c.kubectl(t, "-n", "podnet-system", "get", "daemonset", "podnet-agent", "-o", "jsonpath={.status.numberReady}")
		if ds != "2" {
			t.Errorf("podnet-agent DaemonSet: %s ready, want 2", ds)
		}
	})

	c.apply(t, fmt.Sprintf(criPods, node1, node2))
	c.kubectl(t, "wait", "--for=condition=Ready", "pods", "--all", "--all-namespaces", "--timeout=180s")
	ip := func(ns, pod string) string {
		return c.kubectl(t, "-n", ns, "get", "pod", pod, "-o", "jsonpath={.status.podIP}")
	}
	aIP, bIP := ip("default", "cri-a"), ip("default", "cri-b")

	t.Run("pod to pod across nodes without NAT", func(t *testing.T) {
		pod, client := c.wget(t, "cri-a", "http://"+bIP+"/")
		if pod != "cri-b" || !strings.HasPrefix(client, aIP+":") {
			t.Errorf("cri-a → cri-b (%s): answered by %q seeing client %q, want cri-b seeing %s", bIP, pod, client, aIP)
		}
	})

	t.Run("ClusterIP by name, NodePort and LoadBalancer from the world", func(t *testing.T) {
		if pod, _ := c.wget(t, "cri-a", "http://nginx-service/"); pod != "nginx-pod" {
			t.Errorf("cri-a → nginx-service: answered by %q, want nginx-pod", pod)
		}
		nodePort := c.kubectl(t, "get", "svc", "web-lb", "-o", "jsonpath={.spec.ports[0].nodePort}")
		w := &lbWorld{c: c, cfg: cfg}
		w.answeredBy(t, criNode1IP+":"+nodePort, "web-")
		vip := w.lbIP(t, "web-lb")
		w.answeredBy(t, vip.String()+":80", "web-")
		eventually(t, 30*time.Second, "podnet status loadbalancers names the DaemonSet agent announcing "+vip.String(), func() error {
			out, err := c.podnet("status", "loadbalancers")
			if err != nil || !regexp.MustCompile(regexp.QuoteMeta(vip.String())+`.*`+cfg.Name+`-node-\d`).MatchString(out) {
				return fmt.Errorf("%v\n%s", err, out)
			}
			return nil
		})
	})

	t.Run("the seed's NetworkPolicies", func(t *testing.T) {
		apiIP := ip("default", "api")
		if pod, _ := c.wget(t, "frontend", "http://"+apiIP+":8080/"); pod != "api" {
			t.Errorf("frontend → api:8080 answered by %q, want api (allowed by api-allow)", pod)
		}
		for _, from := range []string{"nginx-pod", "cri-b"} {
			if out, err := c.podnet("kubectl", "--", "exec", from, "--", "wget", "-q", "-T", "2", "-t", "1", "-O-", "http://"+apiIP+":8080/"); err == nil {
				t.Errorf("%s → api:8080 answered %q; api-allow admits role=frontend only", from, out)
			}
		}
		// The DaemonSet's agents record the drop (podnet flows reads them
		// on deploy/'s port through the node proxy).
		eventually(t, 10*time.Second, "podnet flows shows nginx-pod's drop at api by api-allow", func() error {
			out, err := c.podnet("flows", "--verdict", "dropped", "--from-pod", "nginx-pod", "--to-pod", "api", "-o", "json")
			if err != nil || !strings.Contains(out, `"ingress"`) || !strings.Contains(out, "default/api-allow") {
				return fmt.Errorf("%v\n%s", err, out)
			}
			return nil
		})
		dbIP := ip("secure", "database")
		if out, err := c.podnet("kubectl", "--", "exec", "cri-a", "--", "wget", "-q", "-T", "2", "-t", "1", "-O-", "http://"+dbIP+":5432/"); err == nil {
			t.Errorf("cri-a → secure/database answered %q; default-deny-all denies it", out)
		}
	})

	t.Run("kubectl exec nslookup kubernetes.default", func(t *testing.T) {
		out := c.kubectl(t, "exec", "cri-a", "--", "nslookup", "kubernetes.default")
		if !strings.Contains(out, cfg.KubernetesServiceIP().String()) {
			t.Errorf("nslookup kubernetes.default:\n%s\nwant %s", out, cfg.KubernetesServiceIP())
		}
	})

	t.Run("kubectl logs and exec through the kubelet", func(t *testing.T) {
		if out := c.kubectl(t, "logs", "cri-log"); !strings.Contains(out, "hello from containerd") {
			t.Errorf("kubectl logs cri-log: %q", out)
		}
		if out := c.kubectl(t, "exec", "cri-b", "--", "cat", "/etc/hostname"); strings.TrimSpace(out) != "cri-b" {
			t.Errorf("kubectl exec cri-b -- cat /etc/hostname: %q", out)
		}
	})

	t.Run("deleting a pod runs CNI DEL and frees its IP", func(t *testing.T) {
		store := filepath.Join(cfg.NodeDir(2), "cni", "lib")
		if !ipRecorded(store, bIP) {
			t.Fatalf("no IPAM record of %s under %s", bIP, store)
		}
		c.kubectl(t, "delete", "pod", "cri-b", "--wait=true")
		eventually(t, 30*time.Second, "the IPAM record of "+bIP+" goes", func() error {
			if ipRecorded(store, bIP) {
				return fmt.Errorf("%s still recorded", bIP)
			}
			return nil
		})
	})

	t.Run("a connection stays up through a containerd restart and an agent rolling upgrade", func(t *testing.T) {
		nodePort := c.kubectl(t, "get", "svc", "web-lb", "-o", "jsonpath={.spec.ports[0].nodePort}")
		k := startKeeper(t, "/run/netns/"+cfg.WorldNSName(), netip.MustParseAddrPort(criNode1IP+":"+nodePort))
		k.waitAnswers(t, 5)
		restartContainerd(t, c, cfg, 1)
		k.waitAnswers(t, 10)
		c.upgradeAgents(t, cfg)
		k.waitAnswers(t, 10)
		if err := k.stop(); err != nil {
			t.Errorf("the connection broke: %v", err)
		}
		t.Logf("%d requests answered on one connection", k.count())
	})
}

// wget fetches url from inside pod with busybox wget and parses the test
// server's reply.
func (c *cluster) wget(t *testing.T, pod, url string) (who, client string) {
	t.Helper()
	var out string
	eventually(t, 30*time.Second, pod+" fetches "+url, func() error {
		o, err := c.podnet("kubectl", "--", "exec", pod, "--", "wget", "-q", "-T", "2", "-t", "1", "-O-", url)
		if err != nil {
			return fmt.Errorf("%v: %s", err, o)
		}
		out = o
		return nil
	})
	who, client, ok := testserver.ParseReply(out)
	if !ok {
		t.Fatalf("%s: wget %s: %q", pod, url, out)
	}
	return who, client
}

// ipRecorded reports whether any file under dir is named after ip (the
// host-local-style IPAM store).
func ipRecorded(dir, ip string) bool {
	found := false
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == ip {
			found = true
		}
		return nil
	})
	return found
}

// restartContainerd stops node's containerd (SIGTERM: its shims and
// containers stay, as on a real node) and starts it again from its record.
func restartContainerd(t *testing.T, c *cluster, cfg *localcluster.Config, i int) {
	t.Helper()
	node := cfg.NodeName(i)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := localcluster.RestartContainerd(ctx, cfg, i, toolsBin); err != nil {
		t.Fatalf("restart containerd on %s: %v", node, err)
	}
	eventually(t, 60*time.Second, node+" Ready after its containerd restarted", func() error {
		out, err := c.podnet("kubectl", "--", "get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil || out != "True" {
			return fmt.Errorf("%q %v", out, err)
		}
		return nil
	})
}

// upgradeAgents rolls the agent DaemonSet to a new tag of the same image
// (tagged in every node's containerd), as applying a newer image does.
func (c *cluster) upgradeAgents(t *testing.T, cfg *localcluster.Config) {
	t.Helper()
	img := c.kubectl(t, "-n", "podnet-system", "get", "ds", "podnet-agent", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
	next := img + "-next"
	for i := 1; i <= cfg.Nodes; i++ {
		if out, err := localcluster.Ctr(cfg, i, toolsBin, "images", "tag", img, next).CombinedOutput(); err != nil {
			t.Fatalf("tag %s on %s: %v\n%s", next, cfg.NodeName(i), err, out)
		}
	}
	c.kubectl(t, "-n", "podnet-system", "set", "image", "daemonset/podnet-agent", "*="+next)
	c.kubectl(t, "-n", "podnet-system", "rollout", "status", "daemonset/podnet-agent", "--timeout=180s")
}

// keeper holds one TCP connection from the world to a Service and sends
// an HTTP request on it every 100ms; any error ends it, as does an answer
// that takes longer than the deadline (5 s unless startKeeperWithin).
type keeper struct {
	conn     net.Conn
	deadline time.Duration
	done     chan struct{}
	mu       sync.Mutex
	n        int
	longest  time.Duration // the slowest answer's wait
	err      error
}

func startKeeper(t *testing.T, worldNS string, target netip.AddrPort) *keeper {
	t.Helper()
	return startKeeperWithin(t, worldNS, target, 5*time.Second)
}

func startKeeperWithin(t *testing.T, worldNS string, target netip.AddrPort, deadline time.Duration) *keeper {
	t.Helper()
	k := &keeper{done: make(chan struct{}), deadline: deadline}
	if err := netns.Do(worldNS, func() (err error) {
		k.conn, err = net.DialTimeout("tcp", target.String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("connect from the world to %s: %v", target, err)
	}
	go k.run(target.String())
	t.Cleanup(func() { _ = k.stop() })
	return k
}

func (k *keeper) run(host string) {
	r := bufio.NewReader(k.conn)
	for {
		select {
		case <-k.done:
			return
		case <-time.After(100 * time.Millisecond):
		}
		start := time.Now()
		_ = k.conn.SetDeadline(start.Add(k.deadline))
		_, err := fmt.Fprintf(k.conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host)
		var resp *http.Response
		if err == nil {
			resp, err = http.ReadResponse(r, nil)
		}
		if err == nil {
			_, err = bufio.NewReader(resp.Body).ReadString('\n')
			resp.Body.Close()
		}
		k.mu.Lock()
		if err != nil {
			k.err = err
			k.mu.Unlock()
			return
		}
		k.n++
		k.longest = max(k.longest, time.Since(start))
		k.mu.Unlock()
	}
}

// slowest is the longest an answer took.
func (k *keeper) slowest() time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.longest
}

func (k *keeper) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.n
}

// waitAnswers waits for n more answers on the connection.
func (k *keeper) waitAnswers(t *testing.T, n int) {
	t.Helper()
	want := k.count() + n
	eventually(t, 30*time.Second, fmt.Sprintf("%d answers on the kept connection", want), func() error {
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.err != nil {
			t.Fatalf("the kept connection broke after %d answers: %v", k.n, k.err)
		}
		if k.n < want {
			return fmt.Errorf("%d answers", k.n)
		}
		return nil
	})
}

func (k *keeper) stop() error {
	select {
	case <-k.done:
	default:
		close(k.done)
		_ = k.conn.Close()
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}
