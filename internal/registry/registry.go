// Package registry serves OCI image archives (what `make image` writes) as a
// read-only, plain-HTTP OCI distribution registry: the local cluster runs it
// in the outside-world namespace, and each node's containerd, whose
// hosts.toml points docker.io, registry.k8s.io and ghcr.io at it, pulls
// `nginx` or `registry.k8s.io/pause:3.10.1` by their ordinary names.
//
// The registry is go-containerregistry's pkg/registry (blobs and manifests
// in memory). At start every image of the archives is pushed into it through
// an in-process transport, never a socket, under its repository path without
// the registry host: containerd asks a mirror for
// `/v2/library/nginx/manifests/latest?ns=docker.io`, so
// docker.io/library/nginx:latest is served as library/nginx:latest and
// ghcr.io/podnet/podnet:v1 as podnet/podnet:v1. Two archives may not give one
// repository and tag different images. Afterwards only GET and HEAD are
// answered: nothing reachable on the network can push or delete.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/podnet/podnet/internal/image"
)

// Image is one image the registry serves.
type Image struct {
	Name       string // as the archive names it: docker.io/library/nginx:latest
	Repository string // the path it is served under: library/nginx
	Tag        string
	Digest     string
}

// Registry is a loaded registry, ready to serve.
type Registry struct {
	// Set by Load, read-only afterwards.
	images  []Image
	handler http.Handler // read-only, logging
}

// Images lists what the registry serves, in the archives' order.
func (r *Registry) Images() []Image { return r.images }

// Handler is the registry's HTTP handler: read-only, one log line per
// request.
func (r *Registry) Handler() http.Handler { return r.handler }

// pushHost is the registry name images are pushed under in-process; it is
// never resolved or dialled.
const pushHost = "podnet-registry.invalid"

// Load reads every archive and pushes its images into a new in-memory
// registry. log gets one line per served request (nil: discarded).
func Load(archives []string, logger *slog.Logger) (*Registry, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	inner := ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)))
	push := remote.WithTransport(inProcess{inner})
	seen := map[string]Image{}
	r := &Registry{}
	for _, file := range archives {
		imgs, err := loadArchive(file, push, seen)
		if err != nil {
			return nil, err
		}
		r.images = append(r.images, imgs...)
	}
	r.handler = logRequests(logger, readOnly(inner))
	return r, nil
}

// loadArchive pushes the images of one archive; seen holds every
// repository:tag pushed so far.
func loadArchive(file string, push remote.Option, seen map[string]Image) ([]Image, error) {
	dir, err := os.MkdirTemp("", "podnet-registry-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	named, err := image.OpenArchive(file, dir)
	if err != nil {
		return nil, err
	}
	var out []Image
	for _, n := range named {
		img, err := served(n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		key := img.Repository + ":" + img.Tag
		if old, ok := seen[key]; ok {
			if old.Digest != img.Digest {
				return nil, fmt.Errorf("%s: %s and %s would both be served as %s", file, old.Name, img.Name, key)
			}
			continue
		}
		ref, err := name.NewTag(pushHost+"/"+key, name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", file, n.Name, err)
		}
		if err := remote.Write(ref, n.Image, push); err != nil {
			return nil, fmt.Errorf("%s: load %s: %w", file, n.Name, err)
		}
		seen[key] = img
		out = append(out, img)
	}
	return out, nil
}

// served says where an archive's image is served.
func served(n image.Named) (Image, error) {
	tag, err := name.NewTag(n.Name)
	if err != nil {
		return Image{}, fmt.Errorf("image name %q: %w", n.Name, err)
	}
	d, err := n.Image.Digest()
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", n.Name, err)
	}
	return Image{Name: n.Name, Repository: tag.RepositoryStr(), Tag: tag.TagStr(), Digest: d.String()}, nil
}

// inProcess is an http.RoundTripper that hands each request straight to a
// handler: the loading pushes never touch a socket.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	// What a server would hand the handler: a body even when empty.
	in := req.Clone(req.Context())
	in.RequestURI = req.URL.RequestURI()
	if in.Body == nil {
		in.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, in)
	in.Body.Close()
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// readOnly answers only GET and HEAD.
func readOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, `{"errors":[{"code":"UNSUPPORTED","message":"this registry is read-only"}]}`, http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, req)
	})
}

// statusWriter remembers a response's status and size.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// logRequests logs one line per request once it is answered.
func logRequests(logger *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, req)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		logger.Info("request", "method", req.Method, "uri", req.URL.RequestURI(), "status", sw.status,
			"bytes", sw.bytes, "duration", time.Since(start).Round(time.Microsecond), "client", req.RemoteAddr)
	})
}

// Serve answers on ln until ctx ends, then shuts down (in-flight pulls get
// a few seconds to finish).
func (r *Registry) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: r.handler, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdown)
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}
