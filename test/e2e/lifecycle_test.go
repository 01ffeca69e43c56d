package e2e

import (
	"fmt"
	v1 "k8s.io/api/core/v1"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podnet/podnet/internal/proc"
)

// TestKillEverythingThenDownThenUp runs a cluster in VXLAN routing mode,
// checks pods reach each other across nodes through the tunnel, then kills
// every process of the cluster with SIGKILL: down must still remove
// everything, and up must work again; a down of that running cluster ends
// every process it started.
func TestKillEverythingThenDownThenUp(t *testing.T) {
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	plan := []string{"--node-network", "172.28.88.0/24", "--pod-cidr", "10.166.0.0/16", "--service-cidr", "10.167.0.0/16", "--world-network", "198.18.0.0/24"}
	c, cfg := upOwn(t, "e2e-crash-"+randHex(2), "(vxlan)", append(plan, "--routing-mode", "vxlan")...)
	id := cfg.ID()
	c.apply(t, `
apiVersion: v1
kind: Pod
metadata: {name: victim, labels: {app: victim}}
spec:
  containers: [{name: c, image: podnet/test, ports: [{containerPort: 80}]}]
`)
	c.runningPods(t, "default", "app=victim", 1, false)
	c.apply(t, spreadDeployment)
	pods := c.runningPods(t, "default", "app=spread", 4, false)
	var a, b *v1.Pod
	for i := range pods {
		if a == nil {
			a = &pods[i]
		} else if pods[i].Spec.NodeName != a.Spec.NodeName {
			b = &pods[i]
		}
	}
	if b == nil {
		t.Fatal("no two replicas on different nodes")
	}
	// A container that runs may not listen yet (the built-in server has
	// no readiness probe): the probe is retried for a while.
	eventually(t, 10*time.Second, "cross-node probe over VXLAN", func() error {
		out, err := c.podnet("probe", a.Name, b.Status.PodIP+":80", "--timeout", "3s")
		if err != nil || !strings.Contains(out, "which saw the client as "+a.Status.PodIP+":") {
			return fmt.Errorf("%v %q", err, out)
		}
		return nil
	})
	nodeNS := "/run/netns/" + cfg.NodeNSName(1)
	if route, _ := exec.Command("nsenter", "--net="+nodeNS, "ip", "route", "get", b.Status.PodIP).CombinedOutput(); a.Spec.NodeName == cfg.NodeName(1) && !strings.Contains(string(route), "dev pnvxlan") {
		t.Errorf("route from node 1 to %s does not use the VXLAN device: %s", b.Status.PodIP, route)
	}

	recs, err := proc.ReadAll(filepath.Join(c.stateDir, "procs"))
	if err != nil || len(recs) == 0 {
		t.Fatalf("process records: %v %v", recs, err)
	}
	for _, r := range recs {
		if proc.Alive(r) {
			_ = syscall.Kill(r.PID, syscall.SIGKILL)
		}
	}
	time.Sleep(500 * time.Millisecond)

	if out, err := c.podnet("down"); err != nil {
		t.Fatalf("down after kill -9: %v\n%s", err, out)
	}
	assertNothingOf(t, c.name)
	links, _ := exec.Command("ip", "-o", "link").Output()
	if strings.Contains(string(links), "pnbr"+id) || strings.Contains(string(links), "pnu"+id) {
		t.Errorf("links of the cluster left behind:\n%s", links)
	}
	routes, _ := exec.Command("ip", "route", "show", "table", "all").Output()
	for _, r := range []string{"10.166.0.0/16", "10.167.0.0/16", "172.28.88.0/24", "198.18.0.0/24"} {
		if strings.Contains(string(routes), r) {
			t.Errorf("route for %s left behind", r)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), c.name+"-") {
		t.Errorf("mounts of the cluster left behind")
	}
	if _, err := os.Stat(c.stateDir); !os.IsNotExist(err) {
		t.Errorf("state directory %s left behind", c.stateDir)
	}

	c2, err := up(c.name, plan...)
	if err != nil {
		t.Fatalf("up after down: %v", err)
	}
	t.Cleanup(c2.down)
	if out := c2.kubectl(t, "get", "nodes", "--no-headers"); strings.Count(out, " Ready ") != 2 {
		t.Errorf("nodes after re-up:\n%s", out)
	}
	fmt.Fprintf(os.Stderr, "re-up took %s\n", c2.upTime.Round(100*time.Millisecond))

	// A down of a running cluster ends every process it started, by its
	// record: its kube-proxies too under a kube-proxy mode.
	if out, err := c2.podnet("down"); err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	assertNothingOf(t, c2.name)
}
