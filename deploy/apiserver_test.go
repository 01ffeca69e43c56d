package deploy

// Control-plane test: the manifests against a real kube-apiserver and etcd
// from tools/bin with tools/bin/kubectl (skipped, saying so, when they are
// not built): the server validates every object, and RBAC answers for the
// service accounts as the components will ask.

import (
	"context"
	"errors"
	"fmt"
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
}
