package ui

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/podnet/podnet/internal/probe"
	"github.com/podnet/podnet/internal/trace"
)

// MatrixRequest is POST /api/matrix's body.
type MatrixRequest struct {
	Namespaces []string `json:"namespaces"`
	Selector   string   `json:"selector,omitempty"`
	Port       int      `json:"port"`
	Protocol   string   `json:"protocol,omitempty"` // tcp (default) or udp
}

// MatrixResult is its answer: the matrix, its text in the upstream e2e
// format, and the probes that could not be sent.
type MatrixResult struct {
	Matrix *probe.Matrix `json:"matrix"`
	Text   string        `json:"text"`
	Error  string        `json:"error,omitempty"`
}

// matrixTimeout bounds one probe of the matrix, as probe's --timeout.
const matrixTimeout = time.Second

func (src Sources) serveMatrix(w http.ResponseWriter, r *http.Request) {
	var req MatrixRequest
	if err := decodeJSON(r, &req); err != nil {
		reply(w, nil, err)
		return
	}
	if req.Protocol == "" {
		req.Protocol = "tcp"
	}
	if len(req.Namespaces) == 0 {
		reply(w, nil, badRequest{fmt.Errorf("no namespaces")})
		return
	}
	pods, err := src.MatrixPods(r.Context(), req.Namespaces, req.Selector)
	if err != nil {
		reply(w, nil, badRequest{err})
		return
	}
	m, err := probe.RunMatrix(r.Context(), pods, probe.MatrixOptions{Protocol: req.Protocol, Port: req.Port, Timeout: matrixTimeout, Probe: src.Probe})
	if m == nil { // the options were refused
		reply(w, nil, badRequest{err})
		return
	}
	out := MatrixResult{Matrix: m, Text: m.String()}
	if err != nil {
		out.Error = err.Error()
	}
	reply(w, out, nil)
}

// TraceRequest is POST /api/trace's body: the arguments of podnet trace.
type TraceRequest struct {
	Namespace string `json:"namespace"` // of Pod, and of Target when it is a pod name
	Pod       string `json:"pod"`
	Target    string `json:"target"`
	Probe     bool   `json:"probe,omitempty"`
}

// traceReply is TraceResult with the text podnet trace prints.
type traceReply struct {
	TraceResult
	Text string `json:"text"`
}

func (src Sources) serveTrace(w http.ResponseWriter, r *http.Request) {
	var req TraceRequest
	if err := decodeJSON(r, &req); err != nil {
		reply(w, nil, err)
		return
	}
	if req.Namespace == "" {
		req.Namespace = "default"
	}
	pod, err := trace.ParsePod(req.Pod, req.Namespace)
	if err != nil {
		reply(w, nil, badRequest{err})
		return
	}
	tgt, err := trace.ParseTarget(req.Target, req.Namespace)
	if err != nil {
		reply(w, nil, badRequest{err})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
	defer cancel()
	res, err := src.Trace(ctx, trace.Request{Src: pod, Target: tgt}, req.Probe)
	if err != nil {
		reply(w, nil, err)
		return
	}
	out := traceReply{TraceResult: res, Text: res.Explanation.String()}
	if res.Probe != nil {
		out.Text += res.Probe.String()
	}
	reply(w, out, nil)
}
