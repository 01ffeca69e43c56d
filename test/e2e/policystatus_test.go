package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/podnet/podnet/internal/policy/status"
)

// TestPolicyStatusShowsEveryNodeEnforcingTheCurrentGeneration: a new
// NetworkPolicy shows in force on every node shortly after it is created
// (podnet status policies, and the agents' own view through kubectl get
// --raw, as docs/troubleshooting.md shows), and an update shows its new
// generation in force on every node.
func TestPolicyStatusShowsEveryNodeEnforcingTheCurrentGeneration(t *testing.T) {
	checkPolicyStatus(t, sharedCluster(t), 10249)
}

// TestPolicyStatusOnTheContainerdCluster: the same with deploy/'s
// DaemonSet agents, on their metrics port.
func TestPolicyStatusOnTheContainerdCluster(t *testing.T) {
	checkPolicyStatus(t, containerdCluster(t), deployedMetricsPortE2E)
}

// deployedMetricsPortE2E is deploy/base/agent.yaml's metrics port.
const deployedMetricsPortE2E = 10264

// checkPolicyStatus creates a policy in a namespace of its own, waits
// until every node enforces it, updates it and waits for the new
// generation; port is the agents' metrics port.
func checkPolicyStatus(t *testing.T, c *cluster, port int) {
	cs := c.client(t)
	ctx := context.Background()
	ns := "polstat-" + randHex(3)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete namespace %s: %v", ns, err)
		}
	})
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) < 2 {
		t.Fatalf("nodes: %v (%d)", err, len(nodes.Items))
	}

	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromInt32(80))}}}}}}
	created := time.Now()
	np, err = cs.NetworkingV1().NetworkPolicies(ns).Create(ctx, np, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create policy: %v", err)
	}
	c.waitInForceEverywhere(t, ns, np.Generation, len(nodes.Items))
	t.Logf("generation %d in force on %d nodes %s after its creation", np.Generation, len(nodes.Items), time.Since(created).Round(time.Millisecond))

	// The table says the same, and so does each agent's own view.
	if out, err := c.podnet("status", "policies", "-n", ns); err != nil || !strings.Contains(out, fmt.Sprintf("web   %d           %d/%d", np.Generation, len(nodes.Items), len(nodes.Items))) {
		t.Errorf("podnet status policies -n %s: %v\n%s", ns, err, out)
	}
	for _, n := range nodes.Items {
		raw := c.kubectl(t, "get", "--raw", fmt.Sprintf("/api/v1/nodes/%s:%d/proxy/policy/status?namespace=%s", n.Name, port, ns))
		var v status.NodeView
		if err := json.Unmarshal([]byte(raw), &v); err != nil || len(v.Policies) != 1 || v.Policies[0].InForce == nil || v.Policies[0].InForce.UID != np.UID {
			t.Errorf("kubectl get --raw on %s: %v, view %+v", n.Name, err, v)
		}
	}

	// An update: the new generation goes in force everywhere.
	np.Spec.Ingress[0].Ports[0].Port = ptr.To(intstr.FromInt32(81))
	updated := time.Now()
	np, err = cs.NetworkingV1().NetworkPolicies(ns).Update(ctx, np, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update policy: %v", err)
	}
	if np.Generation < 2 {
		t.Fatalf("the update left generation %d", np.Generation)
	}
	c.waitInForceEverywhere(t, ns, np.Generation, len(nodes.Items))
	t.Logf("generation %d in force on %d nodes %s after the update", np.Generation, len(nodes.Items), time.Since(updated).Round(time.Millisecond))
}

// waitInForceEverywhere waits until podnet status policies -o json shows
// the one policy of ns at generation gen in force on n nodes.
func (c *cluster) waitInForceEverywhere(t *testing.T, ns string, gen int64, n int) {
	t.Helper()
	eventually(t, 10*time.Second, fmt.Sprintf("generation %d in force on %d nodes", gen, n), func() error {
		out, err := c.podnet("status", "policies", "-n", ns, "-o", "json")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		var rows []status.PolicyStatus
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if len(rows) != 1 || rows[0].Current.Generation != gen || len(rows[0].Nodes) != n {
			return fmt.Errorf("want one policy at generation %d on %d nodes: %s", gen, n, out)
		}
		for _, s := range rows[0].Nodes {
			if s.State != status.InForce || s.InForce == nil || s.InForce.Generation != gen || s.Since.IsZero() {
				return fmt.Errorf("node %s: %+v", s.Node, s)
			}
		}
		return nil
	})
}
