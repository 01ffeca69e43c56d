package image

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Named is an image and its full reference.
type Named struct {
	Name  string
	Image v1.Image
}

// Annotations naming an image in an index: the OCI one (which containerd
// reads through a --base-name translator) and containerd's own, which its
// import takes as the image's name as it is.
const (
	AnnotationRefName        = "org.opencontainers.image.ref.name"
	AnnotationContainerdName = "io.containerd.image.name"
)

// WriteArchive writes images as one OCI image layout in a tar stream
// (oci-layout, index.json naming each image, blobs/sha256/...): what
// `ctr images import` and containerd's import API accept. Blobs shared by
// several images are stored once.
func WriteArchive(w io.Writer, images []Named) error {
	t := NewTree()
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	for _, n := range images {
		desc, err := addImageBlobs(t, n.Image)
		if err != nil {
			return fmt.Errorf("image %s: %w", n.Name, err)
		}
		desc.Annotations = map[string]string{AnnotationRefName: n.Name, AnnotationContainerdName: n.Name}
		idx.Manifests = append(idx.Manifests, desc)
	}
	index, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := t.File("/index.json", 0o644, index); err != nil {
		return err
	}
	if err := t.File("/oci-layout", 0o644, []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	return t.Tar(w)
}

// addImageBlobs adds an image's manifest, config and layers to t and
// returns the manifest's descriptor.
func addImageBlobs(t *Tree, img v1.Image) (v1.Descriptor, error) {
	manifest, err := img.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return v1.Descriptor{}, err
	}
	layers, err := img.Layers()
	if err != nil {
		return v1.Descriptor{}, err
	}
	blobs := [][]byte{manifest, config}
	for _, l := range layers {
		b, err := compressed(l)
		if err != nil {
			return v1.Descriptor{}, err
		}
		blobs = append(blobs, b)
	}
	for _, b := range blobs {
		if err := addBlob(t, b); err != nil {
			return v1.Descriptor{}, err
		}
	}
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Descriptor{}, err
	}
	d, _, err := v1.SHA256(bytes.NewReader(manifest))
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Size: int64(len(manifest)), Digest: d, Platform: cf.Platform()}, nil
}

func compressed(l v1.Layer) ([]byte, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func addBlob(t *Tree, b []byte) error {
	d, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return err
	}
	p := "/blobs/" + d.Algorithm + "/" + d.Hex
	if t.Has(p) {
		return nil
	}
	return t.File(p, 0o644, b)
}

// OpenArchive extracts the OCI layout archive file into dir (which must
// stay while the images are used: their blobs are read from it) and returns
// every image that index.json names with a ref name annotation, in its
// order.
func OpenArchive(file, dir string) ([]Named, error) {
	if err := extract(file, dir); err != nil {
		return nil, err
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var out []Named
	for _, d := range im.Manifests {
		name := d.Annotations[AnnotationRefName]
		if name == "" || !d.MediaType.IsImage() {
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("%s: image %s: %w", file, name, err)
		}
		out = append(out, Named{Name: name, Image: img})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no named image in index.json", file)
	}
	return out, nil
}

// extract writes the archive's directories and regular files under dir.
func extract(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := Untar(f, dir, false); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

// Untar writes a tar stream's directories and regular files (and symbolic
// links if links is set: an image's root file system) under dir with their
// permission bits. Nothing is written outside dir, whatever the names and
// links say (os.Root).
func Untar(r io.Reader, dir string, links bool) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(h.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("entry %q leaves the archive", h.Name)
		}
		if dir := filepath.Dir(name); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
		perm := os.FileMode(h.Mode).Perm()
		switch {
		case h.Typeflag == tar.TypeDir:
			err = root.MkdirAll(name, perm)
		case h.Typeflag == tar.TypeReg:
			err = writeFile(root, name, perm, tr)
		case h.Typeflag == tar.TypeSymlink && links:
			err = root.Symlink(h.Linkname, name)
		default:
			err = fmt.Errorf("entry %q: type %c is not expected here", h.Name, h.Typeflag)
		}
		if err != nil {
			return err
		}
	}
}

func writeFile(root *os.Root, name string, perm os.FileMode, r io.Reader) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
