package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEnvironmentAndServiceVariables(t *testing.T) {
	c := sharedCluster(t)
	c.apply(t, `
apiVersion: v1
kind: Service
metadata: {name: env-target}
spec:
  selector: {app: nothing}
  ports: [{name: http, port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Pod
metadata: {name: envpod, labels: {app: envpod}}
spec:
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "env | sort; sleep 3600"]
    env:
    - {name: GREETING, value: hello}
    - {name: COMPOSED, value: "$(GREETING)-world"}
    - name: MY_POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    - name: MY_NODE
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
`)
	p := c.runningPods(t, "default", "app=envpod", 1, false)[0]
	svc, err := c.client(t).CoreV1().Services("default").Get(context.Background(), "env-target", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out string
	eventually(t, 20*time.Second, "env printed", func() error {
		out, err = c.podnet("logs", "envpod")
		if err != nil || !strings.Contains(out, "GREETING=") {
			return fmt.Errorf("logs: %v %q", err, out)
		}
		return nil
	})
	for _, want := range []string{
		"GREETING=hello", "COMPOSED=hello-world", "MY_POD_IP=" + p.Status.PodIP, "MY_NODE=" + p.Spec.NodeName,
		"ENV_TARGET_SERVICE_HOST=" + svc.Spec.ClusterIP, "ENV_TARGET_SERVICE_PORT=8080", "ENV_TARGET_SERVICE_PORT_HTTP=8080",
		"ENV_TARGET_PORT=tcp://" + svc.Spec.ClusterIP + ":8080", "KUBERNETES_SERVICE_HOST=10.161.0.1", "HOSTNAME=envpod",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("environment lacks %s:\n%s", want, out)
		}
	}
	c.kubectl(t, "delete", "pod", "envpod", "--wait=true")
	c.kubectl(t, "delete", "service", "env-target")
}

func TestLivenessAndExecProbes(t *testing.T) {
	c := sharedCluster(t)
	c.apply(t, `
apiVersion: v1
kind: Pod
metadata: {name: unhealthy, labels: {app: unhealthy}}
spec:
  containers:
  - name: c
    image: podnet/test
    ports: [{containerPort: 80}]
    livenessProbe: {httpGet: {path: /, port: 81}, periodSeconds: 1, failureThreshold: 2}
---
apiVersion: v1
kind: Pod
metadata: {name: execready, labels: {app: execready}}
spec:
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "sleep 2; touch /tmp/podnet-e2e-ready-$(POD); sleep 3600"]
    env: [{name: POD, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}]
    readinessProbe:
      exec: {command: ["sh", "-c", "test -e /tmp/podnet-e2e-ready-$POD"]}
      periodSeconds: 1
`)
	cs := c.client(t)
	eventually(t, 60*time.Second, "liveness failure restarts the container", func() error {
		p, err := cs.CoreV1().Pods("default").Get(context.Background(), "unhealthy", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].RestartCount < 1 {
			return fmt.Errorf("restarts %+v", p.Status.ContainerStatuses)
		}
		return nil
	})
	// The exec probe fails until the file exists, then the pod is Ready.
	p := c.runningPods(t, "default", "app=execready", 1, true)[0]
	t.Cleanup(func() { _ = os.Remove("/tmp/podnet-e2e-ready-" + string(p.UID)) })
	if !podReady(&p) {
		t.Error("exec readiness probe never passed")
	}
	c.kubectl(t, "delete", "pod", "unhealthy", "execready", "--wait=true")
}
