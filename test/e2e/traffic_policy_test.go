package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestExternalTrafficPolicyLocalAndSessionAffinity(t *testing.T) {
	c := sharedCluster(t)
	c.apply(t, `
apiVersion: v1
kind: Pod
metadata: {name: local-backend, labels: {app: local-backend}}
spec:
  containers: [{name: srv, image: podnet/test, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: local-svc}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: local-backend}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: sticky}
spec:
  replicas: 3
  selector: {matchLabels: {app: sticky}}
  template:
    metadata: {labels: {app: sticky}}
    spec:
      containers: [{name: srv, image: podnet/test, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  selector: {app: sticky}
  sessionAffinity: ClientIP
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: tp-client, labels: {app: tp-client}}
spec:
  containers: [{name: c, image: podnet/test, ports: [{containerPort: 80}]}]
`)
	t.Cleanup(func() {
		_, _ = c.podnet("kubectl", "--", "delete", "pod/local-backend", "service/local-svc", "deployment/sticky", "service/sticky", "pod/tp-client", "--wait=true")
	})
	backend := c.runningPods(t, "default", "app=local-backend", 1, true)[0]
	client := c.runningPods(t, "default", "app=tp-client", 1, false)[0]
	c.runningPods(t, "default", "app=sticky", 3, true)
	cs := c.client(t)
	svc, err := cs.CoreV1().Services("default").Get(context.Background(), "local-svc", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nodeIP := map[string]string{c.name + "-node-1": "172.29.0.11", c.name + "-node-2": "172.29.0.12"}
	local, remote := nodeIP[backend.Spec.NodeName], ""
	for _, ip := range nodeIP {
		if ip != local {
			remote = ip
		}
	}
	world := "/run/netns/" + c.name + "-world"
	curl := func(url string) (string, error) {
		out, err := exec.Command("nsenter", "--net="+world, "curl", "-s", "--max-time", "2", "-w", " status=%{http_code}", url).CombinedOutput()
		return string(out), err
	}
	if svc.Spec.HealthCheckNodePort == 0 {
		t.Fatal("the API server allocated no healthCheckNodePort")
	}
	// To the node with the endpoint: served, and the client's address is
	// preserved (the world's underlay address, not a node's).
	url := fmt.Sprintf("http://%s:%d/", local, svc.Spec.Ports[0].NodePort)
	var out string
	eventually(t, 20*time.Second, "NodePort with externalTrafficPolicy Local", func() error {
		out, err = curl(url)
		if err != nil || !strings.Contains(out, "pod=local-backend client=172.29.0.254:") {
			return fmt.Errorf("%v %q", err, out)
		}
		return nil
	})
	// To the other node: dropped (no local endpoint), so a load balancer
	// must not send traffic there — which the health check says.
	if out, err := curl(fmt.Sprintf("http://%s:%d/", remote, svc.Spec.Ports[0].NodePort)); err == nil && strings.Contains(out, "pod=") {
		t.Errorf("the node without a local endpoint served: %q", out)
	}
	// A pod on the node without the endpoint reaches the NodePort of its
	// own node and the LoadBalancer IP all the same (as with kube-proxy,
	// traffic from pods is cluster traffic whatever the external policy),
	// and keeps its address.
	remoteNode := c.name + "-node-1"
	if backend.Spec.NodeName == remoteNode {
		remoteNode = c.name + "-node-2"
	}
	c.apply(t, fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: tp-remote, labels: {app: tp-remote}}
spec:
  nodeName: %s
  containers: [{name: c, image: podnet/test, ports: [{containerPort: 80}]}]
`, remoteNode))
	t.Cleanup(func() { _, _ = c.podnet("kubectl", "--", "delete", "pod/tp-remote", "--wait=true") })
	remotePod := c.runningPods(t, "default", "app=tp-remote", 1, false)[0]
	c.kubectl(t, "patch", "service", "local-svc", "--subresource=status", "--type=merge", "-p",
		`{"status":{"loadBalancer":{"ingress":[{"ip":"172.29.0.202"}]}}}`)
	for _, target := range []string{fmt.Sprintf("%s:%d", remote, svc.Spec.Ports[0].NodePort), "172.29.0.202:80"} {
		eventually(t, 20*time.Second, "a pod on the node without the endpoint to "+target, func() error {
			pod, client := c.probeAnswer(remotePod.Name, target)
			if pod != "local-backend" || !strings.HasPrefix(client, remotePod.Status.PodIP+":") {
				return fmt.Errorf("answered by %q, client %q", pod, client)
			}
			return nil
		})
	}
	// The health check's answer is JSON (podnet writes it compact,
	// kube-proxy indented): its localEndpoints and the status decide.
	hc := svc.Spec.HealthCheckNodePort
	for _, tc := range []struct {
		node      string
		endpoints int
		status    string
	}{{local, 1, "200"}, {remote, 0, "503"}} {
		out, _ := curl(fmt.Sprintf("http://%s:%d/", tc.node, hc))
		body, status, _ := strings.Cut(out, " status=")
		var got struct {
			LocalEndpoints *int `json:"localEndpoints"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil || got.LocalEndpoints == nil ||
			*got.LocalEndpoints != tc.endpoints || status != tc.status {
			t.Errorf("health check on %s: %q (%v), want %s with %d local endpoints", tc.node, out, err, tc.status, tc.endpoints)
		}
	}
	// Session affinity: one client always reaches the same replica.
	sticky, err := cs.CoreV1().Services("default").Get(context.Background(), "sticky", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := ""
	for i := 0; i < 10; i++ {
		out, err := c.podnet("probe", client.Name, sticky.Spec.ClusterIP+":80", "--timeout", "2s")
		if err != nil {
			t.Fatalf("probe sticky: %v %q", err, out)
		}
		who := strings.Fields(strings.SplitAfter(out, "answered by pod ")[1])[0]
		if first == "" {
			first = who
		} else if who != first {
			t.Fatalf("request %d answered by %s, the first by %s: no session affinity", i+1, who, first)
		}
	}
}
