package deploy

// Control-plane test: the manifests against a real kube-apiserver and etcd
// from tools/bin with tools/bin/kubectl (skipped, saying so, when they are
// not built): the server validates every object, and RBAC answers for the
// service accounts as the components will ask.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podnet/podnet/internal/kubeletapi/kubeletapitest"
)

func TestManifestsApplyToARealAPIServerAndGrantWhatTheySay(t *testing.T) {
	api := kubeletapitest.StartAPIServer(t, kubeletapitest.Start(t, nil))
	// kubectl returns stdout, with stderr in the error.
	kubectl := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(api.BinDir, "kubectl"), append([]string{"--kubeconfig", api.Kubeconfig}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, stderr.String())
		}
		return strings.TrimSpace(string(out)), err
	}
	for _, f := range []string{"podnet.yaml", "cleanup/cleanup.yaml"} {
		if out, err := kubectl("apply", "--server-side", "--field-manager=podnet-test", "-f", f); err != nil {
			t.Fatalf("apply %s: %v\n%s", f, err, out)
		}
	}
	// A second apply of the same file changes nothing: kubectl diff
	// exits 0 only when the live objects equal the file's.
	if out, err := kubectl("diff", "--server-side", "--field-manager=podnet-test", "-f", "podnet.yaml"); err != nil {
		t.Errorf("kubectl diff after apply: %v\n%s", err, out)
	}
	for _, c := range []struct {
		sa, verb, what, ns string
		yes                bool
	}{
		{"podnet-system:podnet-agent", "watch", "endpointslices.discovery.k8s.io", "", true},
		{"podnet-system:podnet-agent", "list", "networkpolicies.networking.k8s.io", "", true},
		{"podnet-system:podnet-agent", "get", "secrets/podnet-lb-heartbeat", "podnet-system", true},
		{"podnet-system:podnet-agent", "create", "secrets", "podnet-system", true},
		{"podnet-system:podnet-agent", "get", "secrets/other", "podnet-system", false},
		{"podnet-system:podnet-agent", "get", "secrets/podnet-lb-heartbeat", "kube-system", false},
		{"podnet-system:podnet-agent", "update", "services --subresource=status", "default", false},
		{"podnet-system:podnet-lb-controller", "patch", "services --subresource=status", "default", true},
		{"podnet-system:podnet-lb-controller", "update", "leases.coordination.k8s.io", "podnet-system", true},
		{"podnet-system:podnet-lb-controller", "update", "leases.coordination.k8s.io", "kube-system", false},
		{"kube-system:podnet-dns", "list", "servicecidrs.networking.k8s.io", "", true},
		{"kube-system:podnet-dns", "create", "events", "default", false},
	} {
		args := append([]string{"auth", "can-i", c.verb}, strings.Fields(c.what)...)
		args = append(args, "--as=system:serviceaccount:"+c.sa)
		if c.ns != "" {
			args = append(args, "-n", c.ns)
		}
		// The API server's RBAC authorizer learns new bindings from its
		// informers, a moment after the apply: a grant is waited for
		// (the denials are checked after the first grants are seen).
		var out string
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			var err error
			out, err = kubectl(args...)
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			if !c.yes || out == "yes" || time.Now().After(deadline) {
				break
			}
		}
		if yes := out == "yes"; yes != c.yes {
			t.Errorf("%s may %s %s in %q: %q, want yes=%v", c.sa, c.verb, c.what, c.ns, out, c.yes)
		}
	}
	checkAgentNodeWrites(t, kubectl)
}

// checkAgentNodeWrites: RBAC lets the agents patch any Node; the admission
// policy podnet-agent-node-writes (base/agent-node-policy.yaml) holds them
// to the podnet.io/wireguard-* annotations of their own Node, for the
// DaemonSet's service account (node named by its token) and the local
// cluster's agent users (podnet-agent:<node>).
func checkAgentNodeWrites(t *testing.T, kubectl func(...string) (string, error)) {
	t.Helper()
	for _, n := range []string{"wg-n1", "wg-n2"} {
		node := `{"apiVersion":"v1","kind":"Node","metadata":{"name":"` + n + `","labels":{"zone":"a"}}}`
		if out, err := kubectlStdin(kubectl, node); err != nil {
			t.Fatalf("create node %s: %v\n%s", n, err, out)
		}
	}
	// The local cluster binds the agents' ClusterRole to its agents'
	// group (controlplane.ApplyAgentRBAC); here the test does.
	if out, err := kubectl("create", "clusterrolebinding", "local-agents", "--clusterrole=podnet-agent", "--group=podnet:agents"); err != nil {
		t.Fatalf("bind the local cluster's agents: %v\n%s", err, out)
	}
	sa := []string{"--as=system:serviceaccount:podnet-system:podnet-agent", "--as-user-extra=authentication.kubernetes.io/node-name=wg-n1"}
	local := []string{"--as=podnet-agent:wg-n1", "--as-group=podnet:agents"}
	annotate := func(node, kv string) []string { return []string{"annotate", "node", node, kv, "--overwrite"} }
	for _, c := range []struct {
		what string
		as   []string
		args []string
		ok   bool
	}{
		{"the agent publishes its key on its Node", sa, annotate("wg-n1", "podnet.io/wireguard-public-key=k1"), true},
		{"the agent may not write another Node's key", sa, annotate("wg-n2", "podnet.io/wireguard-public-key=evil"), false},
		{"the agent may not write other annotations", sa, annotate("wg-n1", "example.com/x=y"), false},
		{"the agent may not relabel its Node", sa, []string{"label", "node", "wg-n1", "zone=b", "--overwrite"}, false},
		{"the agent may not taint its Node", sa, []string{"taint", "node", "wg-n1", "k=v:NoSchedule"}, false},
		{"a local-cluster agent publishes on its Node", local, annotate("wg-n1", "podnet.io/wireguard-endpoint=10.0.0.1:51871"), true},
		{"a local-cluster agent may not write another Node's key", local, annotate("wg-n2", "podnet.io/wireguard-public-key=evil"), false},
		{"an admin may still label Nodes", nil, []string{"label", "node", "wg-n2", "zone=c", "--overwrite"}, true},
	} {
		// The policy is enforced once the API server has loaded it, a
		// moment after the apply: a denial is waited for.
		var out string
		var err error
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(300 * time.Millisecond) {
			out, err = kubectl(append(c.args, c.as...)...)
			forbiddenByRBAC := err != nil && strings.Contains(err.Error(), "cannot get resource")
			if (c.ok && !forbiddenByRBAC) || (!c.ok && err != nil && !forbiddenByRBAC) || time.Now().After(deadline) {
				break
			}
			// Let through before the policy was in force, or refused
			// before RBAC learned the binding: the same write again.
		}
		if (err == nil) != c.ok {
			t.Errorf("%s: err=%v (want allowed=%v)\n%s", c.what, err, c.ok, out)
		}
		if err != nil && !c.ok && !strings.Contains(err.Error(), "podnet-agent-node-writes") {
			t.Errorf("%s: denied, but not by the podnet policy: %v", c.what, err)
		}
	}
}

// kubectlStdin creates the object in JSON doc with kubectl create -f -.
func kubectlStdin(kubectl func(...string) (string, error), doc string) (string, error) {
	f, err := os.CreateTemp("", "node-*.json")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(doc); err != nil {
		return "", err
	}
	f.Close()
	return kubectl("create", "-f", f.Name())
}
