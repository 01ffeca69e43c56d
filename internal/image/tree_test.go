package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

func tarBytes(t *testing.T, tr *Tree) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := tr.Tar(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type tarEntry struct {
	name, link string
	typ        byte
	mode       int64
	mtime      time.Time
	uid, gid   int
}

func tarEntries(t *testing.T, b []byte) []tarEntry {
	t.Helper()
	var out []tarEntry
	r := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{h.Name, h.Linkname, h.Typeflag, h.Mode, h.ModTime, h.Uid, h.Gid})
	}
}

func TestTreeTarDependsOnTheFilesOnly(t *testing.T) {
	dir := t.TempDir()
	exe, data := filepath.Join(dir, "exe"), filepath.Join(dir, "data")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(data, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	build := func(order []int) []byte {
		tr := NewTree()
		steps := []func() error{
			func() error { return tr.HostFile("/usr/local/bin/exe", exe) },
			func() error { return tr.HostFile("/etc/data", data) },
			func() error { return tr.Symlink("/bin/sh", "busybox") },
			func() error { return tr.Dir("/tmp", 0o777|fs.ModeSticky) },
		}
		for _, i := range order {
			if err := steps[i](); err != nil {
				t.Fatal(err)
			}
		}
		return tarBytes(t, tr)
	}
	first := build([]int{0, 1, 2, 3})
	// Another order, and the host files' times changed: the same bytes.
	later := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, p := range []string{exe, data} {
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if second := build([]int{3, 2, 1, 0}); !bytes.Equal(first, second) {
		t.Fatal("the same files added in another order (and touched) gave another tar")
	}

	want := []tarEntry{
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/sh", typ: tar.TypeSymlink, link: "busybox", mode: 0o777},
		{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/data", typ: tar.TypeReg, mode: 0o644},
		{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		{name: "usr/", typ: tar.TypeDir, mode: 0o755},
		{name: "usr/local/", typ: tar.TypeDir, mode: 0o755},
		{name: "usr/local/bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "usr/local/bin/exe", typ: tar.TypeReg, mode: 0o755},
	}
	got := tarEntries(t, first)
	if len(got) != len(want) {
		t.Fatalf("tar entries: got %+v, want %+v", got, want)
	}
	for i, w := range want {
		w.mtime = time.Unix(0, 0)
		g := got[i]
		if g.name != w.name || g.typ != w.typ || g.link != w.link || g.mode != w.mode || !g.mtime.Equal(w.mtime) || g.uid != 0 || g.gid != 0 {
			t.Errorf("entry %d: got %+v, want %+v (uid/gid 0)", i, g, w)
		}
	}
}

func TestTreeRefusesAPathTwice(t *testing.T) {
	tr := NewTree()
	if err := tr.File("/etc/passwd", 0o644, nil); err != nil {
		t.Fatal(err)
	}
	if err := tr.Symlink("/etc/passwd", "x"); err == nil {
		t.Error("adding /etc/passwd twice: no error")
	}
	if err := tr.Dir("/etc", 0o755); err != nil {
		t.Errorf("repeating a directory: %v", err)
	}
	if err := tr.File("/", 0o644, nil); err == nil {
		t.Error("adding the root as a file: no error")
	}
	if !tr.Has("etc/passwd") || tr.Has("/etc/group") {
		t.Errorf("Has: got paths %v", tr.Paths())
	}
}

// smallSpecs are three images over two trees; the shared tree must be one
// blob in the archive.
func smallSpecs(t *testing.T) []Spec {
	t.Helper()
	base, top, other := NewTree(), NewTree(), NewTree()
	for _, err := range []error{
		base.File("/bin/hello", 0o755, []byte("hello")),
		top.File("/etc/motd", 0o644, []byte("top")),
		other.File("/pause", 0o755, []byte("pause")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return []Spec{
		{Name: "docker.io/library/one:latest", Layers: []*Tree{base, top}, Config: v1.Config{Cmd: []string{"/bin/hello"}}},
		{Name: "docker.io/library/two:latest", Layers: []*Tree{base}},
		{Name: "registry.k8s.io/pause:3.10.1", Layers: []*Tree{other}, Config: v1.Config{Entrypoint: []string{"/pause"}}},
	}
}

func writeArchive(t *testing.T, imgs []Named) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteArchive(&b, imgs); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestArchiveIsReproducibleAndReadsBack(t *testing.T) {
	created := time.Unix(1700000000, 0)
	first, err := Build(smallSpecs(t), created)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Build(smallSpecs(t), created)
	if err != nil {
		t.Fatal(err)
	}
	a, b := writeArchive(t, first), writeArchive(t, second)
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same specs gave different archives")
	}
	later, err := Build(smallSpecs(t), created.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, writeArchive(t, later)) {
		t.Fatal("another creation time gave the same archive: the time is not in the config")
	}

	file := filepath.Join(t.TempDir(), "images.tar")
	if err := os.WriteFile(file, a, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	got, err := OpenArchive(file, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(first) {
		t.Fatalf("read back %d images, want %d", len(got), len(first))
	}
	for i, n := range got {
		wantDigest, _ := first[i].Image.Digest()
		gotDigest, err := n.Image.Digest()
		if err != nil || n.Name != first[i].Name || gotDigest != wantDigest {
			t.Errorf("image %d: got %s@%s (%v), want %s@%s", i, n.Name, gotDigest, err, first[i].Name, wantDigest)
		}
		cf, err := n.Image.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if !cf.Created.Time.Equal(created) || cf.OS != "linux" || len(cf.Config.Env) != 1 || cf.Config.Env[0] != "PATH="+DefaultPath {
			t.Errorf("image %s: config created %v os %q env %v", n.Name, cf.Created, cf.OS, cf.Config.Env)
		}
	}

	// The index's annotations, as the layout package and containerd see them.
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range im.Manifests {
		if d.Annotations[AnnotationRefName] != first[i].Name || d.Annotations[AnnotationContainerdName] != first[i].Name || d.Platform == nil || d.Platform.OS != "linux" {
			t.Errorf("index entry %d: annotations %v platform %v, want both names %s", i, d.Annotations, d.Platform, first[i].Name)
		}
	}
	// One manifest and one config per image, three distinct layers.
	blobs, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if want := 3*2 + 3; len(blobs) != want {
		t.Errorf("%d blobs, want %d (a layer shared by two images is stored once)", len(blobs), want)
	}
}

func TestOpenArchiveRefusesEscapingNames(t *testing.T) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: "../escape", Typeflag: tar.TypeReg, Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	file := filepath.Join(t.TempDir(), "bad.tar")
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := OpenArchive(file, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "leaves the archive") {
		t.Fatalf("got %v, want an error naming the escaping entry", err)
	}
}
