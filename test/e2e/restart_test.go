package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/proc"
)

// TestServiceProxyRestartKeepsServicesWorking: while every node's service
// proxy (the podnet agent, or kube-proxy) is down, an established
// connection through a Service keeps working and new ones are served (the
// rules stay in the kernel); after a restart the proxy resyncs and reports
// healthy on :10256, with its metrics on :10249.
func TestServiceProxyRestartKeepsServicesWorking(t *testing.T) {
	c := sharedCluster(t)
	c.apply(t, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: steady}
spec:
  replicas: 2
  selector: {matchLabels: {app: steady}}
  template:
    metadata: {labels: {app: steady}}
    spec:
      containers: [{name: srv, image: podnet/test, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: steady}
spec:
  selector: {app: steady}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: steady-client, labels: {app: steady-client}}
spec:
  containers: [{name: c, image: podnet/test, ports: [{containerPort: 80}]}]
`)
	t.Cleanup(func() {
		_, _ = c.podnet("kubectl", "--", "delete", "deployment/steady", "service/steady", "pod/steady-client", "--wait=true")
	})
	c.runningPods(t, "default", "app=steady", 2, true)
	client := c.runningPods(t, "default", "app=steady-client", 1, false)[0]
	svc, err := c.client(t).CoreV1().Services("default").Get(context.Background(), "steady", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	target := svc.Spec.ClusterIP + ":80"
	eventually(t, 20*time.Second, "service reachable", func() error {
		out, err := c.podnet("probe", client.Name, target, "--timeout", "2s")
		if err != nil {
			return fmt.Errorf("%v %q", err, out)
		}
		return nil
	})
	// An established connection from the client pod.
	clientNS := "/run/netns/" + c.name + "-pod-" + strings.ReplaceAll(string(client.UID), "-", "")[:12]
	var conn net.Conn
	if err := netns.Do(clientNS, func() (err error) {
		conn, err = net.DialTimeout("tcp", target, 3*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	roundTrip := func() error {
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil || !strings.Contains(string(buf[:n]), "pod=steady-") {
			return fmt.Errorf("%v %q", err, buf[:n])
		}
		return nil
	}
	if err := roundTrip(); err != nil {
		t.Fatalf("before: %v", err)
	}

	procs := filepath.Join(c.stateDir, "procs")
	var proxies []*proc.Record
	for i := 1; i <= 2; i++ {
		rec, err := proc.Read(procs, proxyProcName(fmt.Sprintf("%s-node-%d", c.name, i)))
		if err != nil {
			t.Fatal(err)
		}
		proxies = append(proxies, rec)
		_ = syscall.Kill(rec.PID, syscall.SIGKILL)
	}
	time.Sleep(300 * time.Millisecond)
	if err := roundTrip(); err != nil {
		t.Errorf("established connection while the proxies are down: %v", err)
	}
	if out, err := c.podnet("probe", client.Name, target, "--timeout", "2s"); err != nil {
		t.Errorf("new connection while the proxies are down: %v %q", err, out)
	}

	for _, rec := range proxies {
		if _, err := proc.Start(procs, proc.Spec{Name: rec.Name, Argv: rec.Argv, LogFile: rec.LogFile, Netns: rec.Netns}); err != nil {
			t.Fatalf("restart %s: %v", rec.Name, err)
		}
	}
	node1 := "/run/netns/" + c.name + "-node-1"
	eventually(t, 30*time.Second, "proxy healthy after restart", func() error {
		out, err := exec.Command("nsenter", "--net="+node1, "curl", "-s", "-w", " %{http_code}", "http://127.0.0.1:10256/healthz").CombinedOutput()
		if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "200") {
			return fmt.Errorf("%v %q", err, out)
		}
		return nil
	})
	if err := roundTrip(); err != nil {
		t.Errorf("established connection after the resync: %v", err)
	}
	// Each proxy's own names for the same facts: how long syncs take,
	// when the last one succeeded, and how much it programs. Both answer
	// /healthz before their first sync after a start, and kube-proxy
	// exports its sync metrics only after it: wait for them.
	metrics := []string{"podnet_proxy_sync_duration_seconds_count", `podnet_controller_last_success_timestamp_seconds{controller="proxy"}`, "podnet_proxy_service_ports"}
	if serviceProxy != localcluster.ServiceProxyPodnet {
		metrics = []string{"kubeproxy_sync_proxy_rules_duration_seconds_count", "kubeproxy_sync_proxy_rules_last_timestamp_seconds", "kubeproxy_sync_proxy_rules_endpoint_changes_total"}
	}
	eventually(t, 30*time.Second, serviceProxy+" metrics after the restart", func() error {
		out, err := exec.Command("nsenter", "--net="+node1, "curl", "-s", "http://127.0.0.1:10249/metrics").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v %q", err, out)
		}
		for _, m := range metrics {
			if !strings.Contains(string(out), m) {
				return fmt.Errorf("no %s", m)
			}
		}
		return nil
	})
}
