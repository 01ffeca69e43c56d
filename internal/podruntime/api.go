package podruntime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/podnet/podnet/internal/crilog"
	"github.com/podnet/podnet/internal/kubeletapi"
	"github.com/podnet/podnet/internal/netns"
)

// startKubeletAPI serves the kubelet API when the configuration names an
// address, and returns the port it listens on (0: not served).
func (r *Runtime) startKubeletAPI(ctx context.Context) (int, error) {
	c := r.cfg.KubeletAPI
	if c.Addr == "" {
		return 0, nil
	}
	if c.Log == nil {
		c.Log = r.log
	}
	srv, err := kubeletapi.New(c, apiRuntime{r})
	if err != nil {
		return 0, err
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return 0, fmt.Errorf("kubelet API: %w", err)
	}
	go func() {
		if err := srv.Serve(ctx, ln); err != nil {
			r.log.Error("kubelet API stopped", "err", err)
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	r.log.Info("kubelet API serving", "addr", ln.Addr().String())
	return port, nil
}

// apiRuntime gives the kubelet API the pods of this runtime.
type apiRuntime struct{ r *Runtime }

var _ kubeletapi.Runtime = apiRuntime{}

func (a apiRuntime) Lookup(t kubeletapi.Target) error {
	if t.Container == "" {
		_, err := a.network(t)
		return err
	}
	_, _, err := a.running(t)
	return err
}

// running returns t's pod and its running container t.Container.
func (a apiRuntime) running(t kubeletapi.Target) (*podView, containerView, error) {
	v, err := a.r.api.find(t)
	if err != nil {
		return nil, containerView{}, err
	}
	c, ok := v.containers[t.Container]
	if !ok || !c.running || v.sb == nil {
		return nil, containerView{}, fmt.Errorf("%w: %q is not running in %s/%s", kubeletapi.ErrContainerNotFound,
			t.Container, t.Namespace, t.Pod)
	}
	return v, c, nil
}

// network returns t's pod once it has a network to forward into.
func (a apiRuntime) network(t kubeletapi.Target) (*podView, error) {
	v, err := a.r.api.find(t)
	if err != nil {
		return nil, err
	}
	if v.sb == nil || (v.sb.nsPath == "" && !v.pod.Spec.HostNetwork) {
		return nil, fmt.Errorf("pod %s/%s has no network (not started yet, or finished)", t.Namespace, t.Pod)
	}
	return v, nil
}

func (a apiRuntime) Pods() []*v1.Pod { return a.r.api.list() }

// Attach streams what the container writes from now on. Containers of this
// runtime have no stdin (spec.stdin is not honoured), so input is read and
// dropped, as containerd does for a container without one.
func (a apiRuntime) Attach(ctx context.Context, t kubeletapi.Target, s kubeletapi.Streams) error {
	_, c, err := a.running(t)
	if err != nil {
		return err
	}
	if s.Stdin != nil {
		go func() { _, _ = io.Copy(io.Discard, s.Stdin) }()
	}
	stdout, stderr := writer(s.Stdout), writer(s.Stderr)
	if s.TTY {
		stderr = stdout
	}
	return crilog.Read(ctx, c.out.Path(), c.out.Done(), crilog.Options{Follow: true, TailLines: ptr.To[int64](0)},
		stdout, stderr)
}

// writer turns a missing stream into a nil io.Writer (not a typed nil).
func writer(w io.WriteCloser) io.Writer {
	if w == nil {
		return nil
	}
	return w
}

// PortForward dials port on the pod's loopback from inside the pod's
// network namespace (IPv4, then IPv6), as containerd does, and copies until
// the pod's side has finished.
func (a apiRuntime) PortForward(ctx context.Context, t kubeletapi.Target, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	v, err := a.network(t)
	if err != nil {
		return err
	}
	conn, err := dialInPod(ctx, v.sb.nsPath, port)
	if err != nil {
		return err
	}
	defer conn.Close()
	go func() {
		_, _ = io.Copy(conn, stream)
		// The client is done sending; the pod's side may still answer.
		_ = conn.(*net.TCPConn).CloseWrite()
	}()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(stream, conn)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return nil
	}
}

// dialInPod connects to localhost:port in the namespace at nsPath (empty:
// this process's, for host-network pods).
func dialInPod(ctx context.Context, nsPath string, port int32) (net.Conn, error) {
	var conn net.Conn
	var err4, err6 error
	dial := func() error {
		d := net.Dialer{Timeout: 10 * time.Second}
		p := strconv.Itoa(int(port))
		if conn, err4 = d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", p)); err4 == nil {
			return nil
		}
		conn, err6 = d.DialContext(ctx, "tcp6", net.JoinHostPort("::1", p))
		return err6
	}
	var err error
	if nsPath == "" {
		err = dial()
	} else {
		err = netns.Do(nsPath, dial)
	}
	switch {
	case err == nil:
		return conn, nil
	case err4 == nil && err6 == nil: // never dialled
		return nil, fmt.Errorf("enter %s: %w", nsPath, err)
	default:
		return nil, fmt.Errorf("failed to connect to localhost:%d inside namespace %q, IPv4: %v IPv6: %v", port, nsPath, err4, err6)
	}
}

// Logs serves the latest instance's log or, with Previous, the last
// terminated one's, with the kubelet's messages when there is none.
func (a apiRuntime) Logs(t kubeletapi.Target, opts *v1.PodLogOptions) (kubeletapi.LogWriter, error) {
	v, err := a.r.api.find(t)
	if err != nil {
		return nil, err
	}
	c, ok := v.containers[t.Container]
	log := c.out
	if opts.Previous {
		log = c.previous()
	}
	switch {
	case !ok && !hasContainer(v.pod, t.Container):
		return nil, kubeletapi.ErrContainerNotFound
	case log == nil && opts.Previous:
		return nil, fmt.Errorf("previous terminated container %q in pod %q not found", t.Container, t.Pod)
	case log == nil:
		return nil, fmt.Errorf("container %q in pod %q is waiting to start: ContainerCreating", t.Container, t.Pod)
	}
	return func(ctx context.Context, stdout, stderr io.Writer) error {
		err := crilog.Read(ctx, log.Path(), log.Done(), crilog.FromPodLogOptions(opts, time.Now()), stdout, stderr)
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}, nil
}

func hasContainer(pod *v1.Pod, name string) bool {
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return true
		}
	}
	return false
}
