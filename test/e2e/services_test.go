package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const echoService = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: srv
        image: podnet/test
        ports: [{name: web, containerPort: 8080}, {name: dns, containerPort: 5353, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  type: NodePort
  selector: {app: echo}
  ports:
  - {name: http, port: 80, targetPort: web}
  - {name: dns, port: 53, targetPort: dns, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: nobody}
spec:
  selector: {app: nobody-has-this-label}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: svc-client, labels: {app: svc-client}}
spec:
  containers: [{name: c, image: podnet/test, ports: [{containerPort: 80}]}]
`

func TestServicesClusterIPNodePortAndRejection(t *testing.T) {
	c := sharedCluster(t)
	c.apply(t, echoService)
	t.Cleanup(func() {
		_, _ = c.podnet("kubectl", "--", "delete", "deployment/echo", "service/echo", "service/nobody", "pod/svc-client", "--wait=true")
	})
	backends := c.runningPods(t, "default", "app=echo", 2, true)
	client := c.runningPods(t, "default", "app=svc-client", 1, false)[0]
	svc, err := c.client(t).CoreV1().Services("default").Get(context.Background(), "echo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, b := range backends {
		names[b.Name] = true
	}
	answered := func(out string) string {
		for n := range names {
			if strings.Contains(out, "answered by pod "+n+",") {
				return n
			}
		}
		return ""
	}
	// ClusterIP, TCP with a named targetPort and UDP, from a pod: an
	// endpoint answers and sees the client pod's own IP.
	for _, tc := range []struct{ proto, port string }{{"tcp", "80"}, {"udp", "53"}} {
		target := svc.Spec.ClusterIP + ":" + tc.port
		var out string
		eventually(t, 20*time.Second, tc.proto+" to "+target, func() error {
			out, err = c.podnet("probe", client.Name, target, "--protocol", tc.proto, "--timeout", "2s")
			if err != nil || answered(out) == "" {
				return fmt.Errorf("%v %q", err, out)
			}
			return nil
		})
		if !strings.Contains(out, "saw the client as "+client.Status.PodIP+":") {
			t.Errorf("%s via ClusterIP: %q, want the client pod IP %s preserved", tc.proto, out, client.Status.PodIP)
		}
	}
	// Both endpoints get traffic.
	seen := map[string]bool{}
	for i := 0; i < 30 && len(seen) < 2; i++ {
		out, _ := c.podnet("probe", client.Name, svc.Spec.ClusterIP+":80", "--timeout", "2s")
		if n := answered(out); n != "" {
			seen[n] = true
		}
	}
	if len(seen) != 2 {
		t.Errorf("ClusterIP traffic reached %v, want both endpoints", seen)
	}
	// NodePort from the outside world, on both nodes.
	var nodePort int32
	for _, p := range svc.Spec.Ports {
		if p.Name == "http" {
			nodePort = p.NodePort
		}
	}
	world := "/run/netns/" + c.name + "-world"
	for _, nodeIP := range []string{"172.29.0.11", "172.29.0.12"} {
		url := fmt.Sprintf("http://%s:%d/", nodeIP, nodePort)
		out, err := exec.Command("nsenter", "--net="+world, "curl", "-s", "--max-time", "3", url).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "pod=echo-") {
			t.Errorf("NodePort %s from the world: %v %q", url, err, out)
		}
	}
	// A Service with no endpoint is refused at once.
	nobody, err := c.client(t).CoreV1().Services("default").Get(context.Background(), "nobody", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := c.podnet("probe", client.Name, nobody.Spec.ClusterIP+":80", "--timeout", "5s")
	if err == nil || time.Since(start) > 3*time.Second || !strings.Contains(out, "refused") {
		t.Errorf("no-endpoint Service: %v after %s: %q, want an immediate refusal", err, time.Since(start), out)
	}
	// The kubernetes Service reaches the API server in the root namespace.
	out, err = c.podnet("probe", client.Name, "10.161.0.1:443", "--timeout", "3s")
	if err != nil {
		t.Errorf("kubernetes Service from a pod: %v %q", err, out)
	}
	_ = v1.ProtocolTCP
	// No agent failed a sync along the way (a failed sync keeps the old
	// rules, which could hide a rendering bug behind passing probes).
	logs, _ := filepath.Glob(filepath.Join(c.stateDir, "logs", "agent-*.log"))
	if len(logs) != 2 {
		t.Errorf("found agent logs %v, want one per node", logs)
	}
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		if strings.Contains(string(b), "sync failed") {
			t.Errorf("%s reports a failed sync:\n%s", l, b)
		}
	}
}
