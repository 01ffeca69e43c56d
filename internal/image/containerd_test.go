package image

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/podnet/podnet/internal/image/containerdtest"
)

// The archives import into containerd (tools/bin, a private instance) under
// the contract's names, unpacked, and their programs run in containers that
// runc starts from them.
func TestArchivesImportIntoContainerdAndRun(t *testing.T) {
	ctd := containerdtest.Start(t, filepath.Join(repoRoot(t), "tools", "bin"))
	r := built(t)
	dir := t.TempDir()
	var want []string
	for file, imgs := range map[string][]Named{PodnetArchive: r.Podnet, TestArchive: r.Test} {
		f, err := os.Create(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteArchive(f, imgs); err != nil {
			t.Fatal(err)
		}
		f.Close()
		ctd.Ctr(t, "k8s.io", "images", "import", f.Name())
		for _, n := range imgs {
			want = append(want, n.Name)
		}
	}
	slices.Sort(want)
	if got := ctd.Images(t, "k8s.io"); !slices.Equal(got, want) {
		t.Fatalf("containerd's images after the import: %v, want %v", got, want)
	}
	check := ctd.Ctr(t, "k8s.io", "images", "check")
	if strings.Count(check, "complete") != len(want) || strings.Count(check, " true") != len(want) {
		t.Errorf("images not all complete and unpacked:\n%s", check)
	}

	if _, err := exec.LookPath("runc"); err != nil {
		t.Skipf("running the images needs Debian's runc: %v", err)
	}
	podnet := PodnetRepo + ":" + testVersion
	cases := []struct {
		name, image string
		argv        []string
		want        []string
	}{
		{"nft in podnet's image", podnet, []string{"/usr/sbin/nft", "--version"}, []string{"nftables v"}},
		{"podnet in podnet's image", podnet, []string{"podnet", "version"}, []string{"podnet " + testVersion}},
		{"busybox applets in the test image", TestImage, []string{"sh", "-c", "ping -c1 -W2 127.0.0.1; nslookup 2>&1; wget --help 2>&1"},
			[]string{"1 packets received", "Usage: nslookup", "Usage: wget"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"run", "--rm", c.image, "imagetest-" + string(rune('a'+i))}, c.argv...)
			out := ctd.Ctr(t, "k8s.io", args...)
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("ctr run %s %v: %q, want %q", c.image, c.argv, out, w)
				}
			}
		})
	}
	t.Run("pause exits on SIGTERM as a container's PID 1", func(t *testing.T) {
		ctd.Ctr(t, "k8s.io", "run", "-d", PauseImage, "imagetest-pause")
		time.Sleep(300 * time.Millisecond)
		if out := ctd.Ctr(t, "k8s.io", "task", "ls"); !strings.Contains(out, "RUNNING") {
			t.Fatalf("pause is not running:\n%s", out)
		}
		ctd.Ctr(t, "k8s.io", "task", "kill", "--signal", "SIGTERM", "imagetest-pause")
		var out string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if out = ctd.Ctr(t, "k8s.io", "task", "ls"); strings.Contains(out, "STOPPED") {
				break
			}
		}
		if !strings.Contains(out, "STOPPED") {
			t.Fatalf("pause did not stop on SIGTERM:\n%s", out)
		}
		ctd.Ctr(t, "k8s.io", "task", "delete", "imagetest-pause")
		ctd.Ctr(t, "k8s.io", "containers", "rm", "imagetest-pause")
	})
}
