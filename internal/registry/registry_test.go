package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/podnet/podnet/internal/image"
	"github.com/podnet/podnet/internal/kubeletapi/kubeletapitest"
)

// writeArchive builds one small image per name (each with its own file, so
// each its own digest) into an OCI archive and returns its path and the
// images' digests by name.
func writeArchive(t *testing.T, names ...string) (string, map[string]string) {
	t.Helper()
	var specs []image.Spec
	for _, n := range names {
		tr := image.NewTree()
		if err := tr.File("/name", 0o644, []byte(n)); err != nil {
			t.Fatal(err)
		}
		specs = append(specs, image.Spec{Name: n, Layers: []*image.Tree{tr}, Config: v1.Config{Cmd: []string{"/bin/sh"}}})
	}
	imgs, err := image.Build(specs, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	digests := map[string]string{}
	for _, n := range imgs {
		d, err := n.Image.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests[n.Name] = d.String()
	}
	var b bytes.Buffer
	if err := image.WriteArchive(&b, imgs); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "images.tar")
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, digests
}

// serve loads archives and serves them on a loopback port until the test
// ends.
func serve(t *testing.T, logs io.Writer, archives ...string) (*Registry, string) {
	t.Helper()
	r, err := Load(archives, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return r, "http://" + ln.Addr().String()
}

// get fetches url as containerd does (with its Accept list) and checks that
// the body's sha256 is the digest the registry claims.
func get(t *testing.T, url string) (body []byte, digest string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, */*")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v %s", url, resp.StatusCode, err, body)
	}
	digest = fmt.Sprintf("sha256:%x", sha256.Sum256(body))
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != digest {
		t.Fatalf("GET %s: Docker-Content-Digest %s, body's %s", url, h, digest)
	}
	return body, digest
}

func TestPullsByTheMirrorsPaths(t *testing.T) {
	podnet, podnetDigests := writeArchive(t, "ghcr.io/podnet/podnet:v1.2.3")
	test, testDigests := writeArchive(t, image.NginxImage, image.PauseImage, image.TestImage)
	var logs kubeletapitest.SyncBuffer
	r, base := serve(t, &logs, podnet, test)
	if got := len(r.Images()); got != 4 {
		t.Fatalf("serving %d images, want 4: %+v", got, r.Images())
	}
	cases := []struct{ name, path string }{
		{image.NginxImage, "/v2/library/nginx/manifests/latest?ns=docker.io"},
		{image.TestImage, "/v2/podnet/test/manifests/latest?ns=docker.io"},
		{image.PauseImage, "/v2/pause/manifests/3.10.1?ns=registry.k8s.io"},
		{"ghcr.io/podnet/podnet:v1.2.3", "/v2/podnet/podnet/manifests/v1.2.3?ns=ghcr.io"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := testDigests[c.name] + podnetDigests[c.name]
			body, digest := get(t, base+c.path)
			if digest != want {
				t.Fatalf("GET %s: manifest %s, the archive's is %s", c.path, digest, want)
			}
			// Then the config and layers by digest, as a pull does.
			var m v1.Manifest
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			repo := strings.Split(strings.TrimPrefix(c.path, "/v2/"), "/manifests/")[0]
			for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
				if _, got := get(t, base+"/v2/"+repo+"/blobs/"+d.Digest.String()); got != d.Digest.String() {
					t.Errorf("blob %s: got %s", d.Digest, got)
				}
			}
		})
	}
	// One line per request, the mirror's query included.
	if lines := strings.Count(logs.String(), "\n"); lines != 4*3 {
		t.Errorf("%d log lines for 12 requests:\n%s", lines, logs.String())
	}
	if !strings.Contains(logs.String(), `uri="/v2/library/nginx/manifests/latest?ns=docker.io" status=200`) {
		t.Errorf("no log line for the nginx manifest:\n%s", logs.String())
	}
}

func TestRefusesWritesAndUnknownNames(t *testing.T) {
	archive, _ := writeArchive(t, image.NginxImage)
	_, base := serve(t, io.Discard, archive)
	cases := []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "/v2/library/nginx/blobs/uploads/", http.StatusMethodNotAllowed},
		{http.MethodPut, "/v2/library/nginx/manifests/latest", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/v2/library/nginx/manifests/latest", http.StatusMethodNotAllowed},
		{http.MethodGet, "/v2/library/redis/manifests/latest?ns=docker.io", http.StatusNotFound},
		{http.MethodGet, "/v2/", http.StatusOK},
		{http.MethodHead, "/v2/library/nginx/manifests/latest?ns=docker.io", http.StatusOK},
	}
	for _, c := range cases {
		req, err := http.NewRequest(c.method, base+c.path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
}

func TestTwoImagesUnderOneNameAreRefused(t *testing.T) {
	a, _ := writeArchive(t, "docker.io/library/nginx:latest")
	b, _ := writeArchive(t, "docker.io/library/busybox:latest", "ghcr.io/library/nginx:latest")
	if _, err := Load([]string{a, b}, nil); err == nil || !strings.Contains(err.Error(), "library/nginx:latest") {
		t.Fatalf("two images as library/nginx:latest: %v, want an error naming it", err)
	}
	// The same image twice (one archive loaded twice) is served once.
	r, err := Load([]string{a, a}, nil)
	if err != nil || len(r.Images()) != 1 {
		t.Fatalf("one archive twice: %v, %+v", err, r)
	}
}
