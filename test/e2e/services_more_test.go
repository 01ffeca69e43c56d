package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// probeAnswer probes target from a pod and returns the pod that answered
// ("" when nothing answered) and the client address it saw.
func (c *cluster) probeAnswer(from, target string) (pod, client string) {
	out, err := c.podnet("probe", from, target, "--timeout", "2s")
	i := strings.Index(out, "answered by pod ")
	if err != nil || i < 0 {
		return "", ""
	}
	f := strings.Fields(out[i+len("answered by pod "):])
	pod = strings.TrimSuffix(f[0], ",")
	client = f[len(f)-1]
	return pod, client
}

func TestServicesExternalIPsLoadBalancerRangesInternalPolicyAndHairpin(t *testing.T) {
	c := sharedCluster(t)
	c.apply(t, `
apiVersion: v1
kind: Pod
metadata: {name: xb, labels: {app: xb}}
spec:
  containers: [{name: srv, image: podnet/test, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: xb-lb}
spec:
  type: LoadBalancer
  selector: {app: xb}
  externalIPs: [203.0.113.77]
  loadBalancerSourceRanges: [198.51.100.0/24]
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: xb-local}
spec:
  selector: {app: xb}
  internalTrafficPolicy: Local
  ports: [{port: 80, targetPort: 8080}]
`)
	t.Cleanup(func() {
		_, _ = c.podnet("kubectl", "--", "delete", "pod/xb", "service/xb-lb", "service/xb-local", "pod/xc-same", "pod/xc-other", "--wait=true")
	})
	backend := c.runningPods(t, "default", "app=xb", 1, true)[0]
	// One client on the backend's node, one on the other node.
	other := c.name + "-node-1"
	if backend.Spec.NodeName == other {
		other = c.name + "-node-2"
	}
	c.apply(t, fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: xc-same, labels: {app: xc-same}}
spec:
  nodeName: %s
  containers: [{name: c, image: podnet/test, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: xc-other, labels: {app: xc-other}}
spec:
  nodeName: %s
  containers: [{name: c, image: podnet/test, ports: [{containerPort: 80}]}]
`, backend.Spec.NodeName, other))
	c.runningPods(t, "default", "app=xc-same", 1, false)
	c.runningPods(t, "default", "app=xc-other", 1, false)
	cs := c.client(t)
	get := func(name string) (ip string) {
		s, err := cs.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s.Spec.ClusterIP
	}

	// externalIPs: traffic a pod sends to the external IP is proxied by
	// its node.
	eventually(t, 20*time.Second, "externalIP", func() error {
		if pod, _ := c.probeAnswer("xc-other", "203.0.113.77:80"); pod != "xb" {
			return fmt.Errorf("answered by %q", pod)
		}
		return nil
	})

	// A LoadBalancer IP (set in the status as a load balancer would) with
	// loadBalancerSourceRanges that exclude the pods: dropped; with a
	// range that includes them: served.
	c.kubectl(t, "patch", "service", "xb-lb", "--subresource=status", "--type=merge", "-p",
		`{"status":{"loadBalancer":{"ingress":[{"ip":"172.29.0.201"}]}}}`)
	time.Sleep(2 * time.Second)
	if pod, _ := c.probeAnswer("xc-other", "172.29.0.201:80"); pod != "" {
		t.Errorf("a source outside loadBalancerSourceRanges reached the LoadBalancer IP (answered by %s)", pod)
	}
	c.kubectl(t, "patch", "service", "xb-lb", "--type=merge", "-p", `{"spec":{"loadBalancerSourceRanges":["10.160.0.0/16"]}}`)
	eventually(t, 20*time.Second, "LoadBalancer IP from an allowed range", func() error {
		if pod, _ := c.probeAnswer("xc-other", "172.29.0.201:80"); pod != "xb" {
			return fmt.Errorf("answered by %q", pod)
		}
		return nil
	})

	// internalTrafficPolicy Local: only clients on the endpoint's node.
	local := get("xb-local") + ":80"
	eventually(t, 20*time.Second, "internalTrafficPolicy Local from the same node", func() error {
		if pod, _ := c.probeAnswer("xc-same", local); pod != "xb" {
			return fmt.Errorf("answered by %q", pod)
		}
		return nil
	})
	if pod, _ := c.probeAnswer("xc-other", local); pod != "" {
		t.Errorf("internalTrafficPolicy Local: a client on the other node was served by %s", pod)
	}

	// Hairpin: the backend reaches itself through its own Service; the
	// source is masqueraded so the reply comes back through the node.
	pod, client := c.probeAnswer("xb", get("xb-local")+":80")
	if pod != "xb" {
		t.Fatalf("hairpin: answered by %q", pod)
	}
	if strings.HasPrefix(client, backend.Status.PodIP+":") {
		t.Errorf("hairpin: the pod saw itself as the client (%s); want the node's masquerade address", client)
	}
}
