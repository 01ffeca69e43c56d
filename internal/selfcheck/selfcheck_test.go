package selfcheck

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestSelfcheckWiresTwoPodsAndCleansUp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("kernel test: creating network namespaces needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "podnet-cni"), "../../cmd/podnet-cni").CombinedOutput(); err != nil {
		t.Fatalf("build podnet-cni: %v\n%s", err, out)
	}
	var out bytes.Buffer
	if err := Run(context.Background(), Options{PluginDir: dir, PodCIDR: "10.253.0.0/24", Out: &out}); err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"pod 0: ", "eth0 10.253.0.2/32 via 169.254.1.1",
		"pod 1: ", "eth0 10.253.0.3/32 via 169.254.1.1",
		"TCP pod 0 -> pod 1 (10.253.0.3): ok, server saw client 10.253.0.2 (no NAT)",
		"cleaned up",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	paths := regexp.MustCompile(`/run/netns/podnet-sc-[a-z]+-[0-9a-f]+`).FindAllString(out.String(), -1)
	if len(paths) != 3 {
		t.Errorf("output names %d namespaces, want node and two pods: %v", len(paths), paths)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("namespace %s left behind", p)
		}
	}
}

func TestSelfcheckFailsClearlyWithoutThePlugin(t *testing.T) {
	err := Run(context.Background(), Options{PluginDir: t.TempDir(), Out: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "podnet-cni not found") {
		t.Fatalf("err = %v, want it to say podnet-cni is missing", err)
	}
}
