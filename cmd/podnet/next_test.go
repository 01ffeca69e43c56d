package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podnet/podnet/internal/localcluster"
)

// What podnet up prints next uses kubectl and podnet as the docs do, with --cluster
// for another cluster, and says how to put this podnet on PATH when it is
// not there.
func TestWriteNext(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "bin", "podnet")
	link := filepath.Join(dir, "usr-local-bin-podnet")
	other := filepath.Join(dir, "other-podnet")
	for _, f := range []string{exe, other} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(f), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	hint := "`make install` (as root) links /usr/local/bin/podnet to " + exe
	for _, tc := range []struct {
		name, cluster, onPath string
		want, not             []string
	}{
		{name: "not on PATH", cluster: "podnet", onPath: "",
			want: []string{"\n  podnet probe POD pod/OTHER-POD:PORT ", "  podnet trace POD pod/OTHER-POD:PORT ", "  kubectl exec -it POD -- nslookup kubernetes.default ", "podnet is not on your PATH: " + hint},
			not:  []string{"--cluster"}},
		{name: "linked into PATH", cluster: "podnet", onPath: link,
			want: []string{"  export KUBECONFIG=/var/lib/podnet/podnet/kubeconfig\n", "(or svc/SERVICE:PORT)"}, not: []string{"make install", "--cluster"}},
		{name: "another podnet on PATH", cluster: "podnet", onPath: other,
			want: []string{"the podnet on your PATH is " + other + ", not this one: " + hint}},
		{name: "another cluster", cluster: "dev", onPath: exe,
			want: []string{`Cluster "dev" is up.`, "  podnet --cluster dev probe POD pod/OTHER-POD:PORT ", "  export KUBECONFIG=/var/lib/podnet/dev/kubeconfig\n", "  podnet --cluster dev down\n"}, not: []string{"make install"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := localcluster.DefaultConfig(tc.cluster)
			cfg.StateDir = "/var/lib/podnet/" + tc.cluster
			var b bytes.Buffer
			writeNext(&b, cfg, exe, tc.onPath)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output:\n%s\nwant %q", b.String(), w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(b.String(), n) {
					t.Errorf("output:\n%s\nhas %q", b.String(), n)
				}
			}
		})
	}
}
