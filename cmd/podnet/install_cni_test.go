package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstallCNICopiesOnlyWhenTheContentDiffers: the init container runs
// at every agent start; it replaces podnet-cni only on an upgrade.
func TestInstallCNICopiesOnlyWhenTheContentDiffers(t *testing.T) {
	img, node := t.TempDir(), filepath.Join(t.TempDir(), "opt", "cni", "bin")
	src := filepath.Join(img, cniPlugin)
	run := func(content string) string {
		t.Helper()
		if err := os.WriteFile(src, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := newRootCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs([]string{"install-cni", "--cni-bin-dir", node, "--source", src})
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(node, cniPlugin))
		st, serr := os.Stat(filepath.Join(node, cniPlugin))
		if err != nil || serr != nil || string(got) != content || st.Mode().Perm() != 0o755 {
			t.Fatalf("installed %q %v (%v %v), want %q mode 0755", got, st, err, serr, content)
		}
		return out.String()
	}
	for _, step := range []struct{ content, says string }{
		{"v1", "installed "}, {"v1", "is up to date"}, {"v2", "installed "},
	} {
		if out := run(step.content); !strings.Contains(out, step.says) {
			t.Errorf("%s: said %q, want %q", step.content, out, step.says)
		}
	}
	if ents, _ := os.ReadDir(node); len(ents) != 1 {
		t.Errorf("the bin dir holds %v, want podnet-cni only", ents)
	}
	if err := os.WriteFile(src, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := installCNI(src, node); err == nil {
		t.Error("an empty podnet-cni was installed")
	}
}
