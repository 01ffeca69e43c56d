package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podnet/podnet/internal/image"
	"github.com/podnet/podnet/internal/image/containerdtest"
	"github.com/podnet/podnet/internal/kubeletapi/kubeletapitest"
)

// containerd (tools/bin, a private instance) pulls images by their ordinary
// names through hosts.toml mirrors pointing at the registry, as the local
// cluster's nodes do. Server and mirror are both the loopback registry, so a
// miss can never go to the real docker.io.
func TestContainerdPullsThroughTheMirror(t *testing.T) {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ctd := containerdtest.Start(t, filepath.Join(repo, "tools", "bin"))
	archive, digests := writeArchive(t, image.NginxImage, image.PauseImage, "ghcr.io/podnet/podnet:v1.2.3")
	var logs kubeletapitest.SyncBuffer
	_, base := serve(t, &logs, archive)

	hosts := t.TempDir()
	for _, h := range []string{"docker.io", "registry.k8s.io", "ghcr.io"} {
		toml := "server = \"" + base + "\"\n[host.\"" + base + "\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
		if err := os.MkdirAll(filepath.Join(hosts, h), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(hosts, h, "hosts.toml"), []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// ctr takes full names (a pod's image: nginx is docker.io/library/nginx:latest).
	for _, full := range []string{image.NginxImage, image.PauseImage, "ghcr.io/podnet/podnet:v1.2.3"} {
		ctd.Ctr(t, "k8s.io", "images", "pull", "--hosts-dir", hosts, full)
		ls := ctd.Ctr(t, "k8s.io", "images", "ls")
		if !strings.Contains(ls, full) || !strings.Contains(ls, digests[full]) {
			t.Errorf("after pulling %s: containerd lists\n%s\nwant it at %s", full, ls, digests[full])
		}
	}
	for _, want := range []string{
		`uri="/v2/library/nginx/manifests/latest?ns=docker.io"`,
		`uri="/v2/pause/manifests/3.10.1?ns=registry.k8s.io"`,
		`uri="/v2/podnet/podnet/manifests/v1.2.3?ns=ghcr.io"`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the registry did not log %s:\n%s", want, logs.String())
		}
	}
}
