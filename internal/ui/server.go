package ui

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/flow"
	"github.com/podnet/podnet/internal/policy/status"
	"github.com/podnet/podnet/internal/probe"
	"github.com/podnet/podnet/internal/trace"
)

//go:embed static
var static embed.FS

// FollowFunc streams flow records to out until ctx ends: flow.Follow, or a
// fake in tests.
type FollowFunc func(ctx context.Context, q flow.Query, out chan<- flow.Record, nodeErr func(flow.NodeError)) error

// TraceFunc explains req and, when probe is set, makes the real connection
// (cmd/podnet's trace, which knows the local cluster's pods).
type TraceFunc func(ctx context.Context, req trace.Request, probe bool) (TraceResult, error)

// TraceResult is a trace's answer.
type TraceResult struct {
	Explanation *trace.Explanation `json:"explanation"`
	Probe       *trace.ProbeCheck  `json:"probe,omitempty"`
	// Warnings are policies the cluster holds that trace could not use.
	Warnings []string `json:"warnings,omitempty"`
}

// Sources are where the API reads from; each is a seam for the tests.
type Sources struct {
	// Client lists the topology.
	Client kubernetes.Interface
	// Follow streams flow records.
	Follow FollowFunc
	// Policies reads the enforcement status of a namespace's policies
	// ("" for all).
	Policies func(ctx context.Context, namespace string) ([]status.PolicyStatus, error)
	// MatrixPods lists the pods of a matrix (cmd/podnet's probe
	// --matrix's, with their network namespaces).
	MatrixPods func(ctx context.Context, namespaces []string, selector string) ([]probe.MatrixPod, error)
	// Probe is the matrix's probe (nil: probe.From).
	Probe probe.Func
	// Trace runs a trace.
	Trace TraceFunc
}

// AgentSources fills Follow and Policies from the agents of client's
// cluster, read on their metrics port through the API server's node proxy.
func AgentSources(client kubernetes.Interface, port int) Sources {
	return Sources{
		Client: client,
		Follow: func(ctx context.Context, q flow.Query, out chan<- flow.Record, nodeErr func(flow.NodeError)) error {
			q.Port = port
			return flow.Follow(ctx, client, q, out, nodeErr)
		},
		Policies: func(ctx context.Context, namespace string) ([]status.PolicyStatus, error) {
			return status.Read(ctx, client, port, namespace)
		},
	}
}

// readTimeout bounds the reads of one request from the API server and the
// agents (a trace's probe included), so that a cluster that does not
// answer gives the page an error rather than a request that never ends.
const readTimeout = 15 * time.Second

// Handler serves the page and the API.
func Handler(src Sources) http.Handler {
	mux := http.NewServeMux()
	files, _ := fs.Sub(static, "static")
	mux.Handle("GET /", http.FileServerFS(files))
	mux.HandleFunc("GET /api/topology", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
		defer cancel()
		t, err := ReadTopology(ctx, src.Client)
		reply(w, t, err)
	})
	mux.HandleFunc("GET /api/policies", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
		defer cancel()
		rows, err := src.Policies(ctx, r.URL.Query().Get("namespace"))
		if rows == nil {
			rows = []status.PolicyStatus{}
		}
		reply(w, rows, err)
	})
	mux.HandleFunc("GET /api/flows", src.serveFlows)
	mux.HandleFunc("POST /api/matrix", src.serveMatrix)
	mux.HandleFunc("POST /api/trace", src.serveTrace)
	return localOnly(mux)
}

// localOnly refuses a Host that names anything but this machine: an IP
// address (the one podnet ui listens on) or localhost. A page of another
// site whose name was rebound to 127.0.0.1 sends its own name.
func localOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		if host != "localhost" && net.ParseIP(host) == nil {
			http.Error(w, fmt.Sprintf("host %q: podnet ui answers to an IP address or localhost only", r.Host), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// badRequest is an error in what the client sent.
type badRequest struct{ error }

// reply writes v as JSON, or err: 400 for a badRequest, 404 for
// trace.ErrNotFound, else 502 (the cluster did not answer).
func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		code := http.StatusBadGateway
		var br badRequest
		switch {
		case errors.As(err, &br):
			code = http.StatusBadRequest
		case errors.Is(err, trace.ErrNotFound):
			code = http.StatusNotFound
		}
		w.WriteHeader(code)
		v = map[string]string{"error": err.Error()}
	}
	_ = json.NewEncoder(w).Encode(v)
}

// decodeJSON reads a JSON body into v; anything else is a badRequest.
func decodeJSON(r *http.Request, v any) error {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return badRequest{fmt.Errorf("content type %q: want application/json", r.Header.Get("Content-Type"))}
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest{fmt.Errorf("body: %w", err)}
	}
	return nil
}
