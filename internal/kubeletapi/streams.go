package kubeletapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// serveExec handles /exec: the checks the kubelet makes before it hands the
// connection to the streaming server, then the streaming server itself.
func (s *Server) serveExec(w http.ResponseWriter, r *http.Request) {
	t := target(r)
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cmd := r.URL.Query()["command"]
	if len(cmd) == 0 {
		http.Error(w, "no command given (query parameter \"command\")", http.StatusBadRequest)
		return
	}
	if !s.lookup(w, t) {
		return
	}
	s.log.Info("kubelet API: exec", "pod", t.Namespace+"/"+t.Pod, "container", t.Container, "command", cmd, "tty", opts.TTY)
	remotecommand.ServeExec(w, r, streamer{s.rt, t, opts}, t.Pod, string(t.UID), t.Container, cmd, opts,
		s.cfg.StreamIdleTimeout, s.cfg.StreamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

// serveAttach handles /attach.
func (s *Server) serveAttach(w http.ResponseWriter, r *http.Request) {
	t := target(r)
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !s.lookup(w, t) {
		return
	}
	remotecommand.ServeAttach(w, r, streamer{s.rt, t, opts}, t.Pod, string(t.UID), t.Container, opts,
		s.cfg.StreamIdleTimeout, s.cfg.StreamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

// servePortForward handles /portForward. SPDY carries the port per
// stream; the WebSocket form names the ports in the query.
func (s *Server) servePortForward(w http.ResponseWriter, r *http.Request) {
	t := target(r)
	opts, err := portforward.NewV4Options(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !s.lookup(w, t) {
		return
	}
	portforward.ServePortForward(w, r, streamer{rt: s.rt, t: t}, t.Pod, string(t.UID), opts,
		s.cfg.StreamIdleTimeout, s.cfg.StreamCreationTimeout, portforward.SupportedProtocols)
}

// lookup answers 404 (in the kubelet's words) or 500 when t cannot be
// served, and reports whether to go on.
func (s *Server) lookup(w http.ResponseWriter, t Target) bool {
	err := s.rt.Lookup(t)
	switch {
	case err == nil:
		return true
	case errors.Is(err, ErrPodNotFound):
		http.Error(w, "pod does not exist", http.StatusNotFound)
	case errors.Is(err, ErrContainerNotFound):
		http.Error(w, fmt.Sprintf("container not found (%q)", t.Container), http.StatusNotFound)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
	return false
}

// streamer adapts Runtime to the streaming library's interfaces for one
// target (the library passes names the target already holds).
type streamer struct {
	rt   Runtime
	t    Target
	opts *remotecommand.Options // exec and attach
}

var (
	_ remotecommand.Executor    = streamer{}
	_ remotecommand.Attacher    = streamer{}
	_ portforward.PortForwarder = streamer{}
)

// streams keeps only what the client asked for: over WebSocket the
// library hands out placeholders for every channel.
func (a streamer) streams(in io.Reader, out, errw io.WriteCloser, resize <-chan remotecommand.TerminalSize) Streams {
	s := Streams{TTY: a.opts.TTY}
	if a.opts.Stdin {
		s.Stdin = in
	}
	if a.opts.Stdout {
		s.Stdout = out
	}
	if a.opts.Stderr && !a.opts.TTY {
		s.Stderr = errw
	}
	if a.opts.TTY {
		s.Resize = resize
	}
	return s
}

func (a streamer) ExecInContainer(ctx context.Context, _, _, _ string, cmd []string, in io.Reader, out, errw io.WriteCloser,
	_ bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	return a.rt.Exec(ctx, a.t, cmd, a.streams(in, out, errw, resize))
}

func (a streamer) AttachContainer(ctx context.Context, _, _, _ string, in io.Reader, out, errw io.WriteCloser,
	_ bool, resize <-chan remotecommand.TerminalSize) error {
	return a.rt.Attach(ctx, a.t, a.streams(in, out, errw, resize))
}

func (a streamer) PortForward(ctx context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	return a.rt.PortForward(ctx, a.t, port, stream)
}
