// Package image builds podnet's container images as OCI image layout
// archives without Docker or any daemon (go-containerregistry assembles the
// manifests): podnet's own image (podnet, podnet-cni, and nft with the
// shared libraries and loader it runs on, taken from the host's Debian
// packages) and the small images the local cluster's nodes run (the test
// server with busybox, and a pause program as the sandbox image).
//
// Reproducible by construction: layers are tars with sorted entries, root
// ownership, fixed modes and a fixed time; the configuration's dates are the
// caller's (the commit's time), and the archive's own tar is written the
// same way. The same input files therefore give the same digests, which a
// test checks. What is not pinned here is the input: the Go toolchain that
// builds the binaries and the Debian packages installed on the building
// machine, which versions.txt records.
package image

import (
	"fmt"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Spec describes one image.
type Spec struct {
	// Name is the full reference the archive gives the image
	// (docker.io/library/nginx:latest).
	Name string
	// Layers are applied in order; the same *Tree in several specs is the
	// same layer (one blob in the archive).
	Layers []*Tree
	// Config holds Entrypoint, Cmd, Env, WorkingDir and the like.
	Config v1.Config
}

// DefaultPath is the PATH of every image.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Build assembles the images of specs with created as their creation time.
// A tree shared by several specs is rendered once.
func Build(specs []Spec, created time.Time) ([]Named, error) {
	layers := map[*Tree]v1.Layer{}
	var out []Named
	for _, s := range specs {
		img, err := build(s, created, layers)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", s.Name, err)
		}
		out = append(out, Named{Name: s.Name, Image: img})
	}
	return out, nil
}

func build(s Spec, created time.Time, cache map[*Tree]v1.Layer) (v1.Image, error) {
	ts := v1.Time{Time: created.UTC()}
	adds := make([]mutate.Addendum, 0, len(s.Layers))
	for _, t := range s.Layers {
		l, ok := cache[t]
		if !ok {
			var err error
			if l, err = t.Layer(); err != nil {
				return nil, err
			}
			cache[t] = l
		}
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: types.OCILayer,
			History: v1.History{Created: ts, CreatedBy: "podnet image builder", Comment: "internal/image"}})
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, adds...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Created = runtime.GOARCH, "linux", ts
	cf.Config = s.Config
	if len(cf.Config.Env) == 0 {
		cf.Config.Env = []string{"PATH=" + DefaultPath}
	}
	return mutate.ConfigFile(img, cf)
}
