package kubeletapi

import (
	"context"
	"errors"
	"fmt"
	"io"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// Target names what a request is for: a pod on this node and, except for
// port-forward, one of its containers.
type Target struct {
	Namespace, Pod string
	// UID, when not empty, must be the pod's (the API server may send it).
	UID       types.UID
	Container string
}

// TerminalSize is a terminal's size in characters.
type TerminalSize = remotecommand.TerminalSize

// Streams are the streams of one exec or attach session. A stream the client
// did not ask for is nil; with TTY, Stderr is nil (the terminal carries both).
type Streams struct {
	Stdin          io.Reader
	Stdout, Stderr io.WriteCloser
	TTY            bool
	// Resize carries the client's terminal size: first the initial size,
	// then every change. Nil without TTY.
	Resize <-chan TerminalSize
}

// Runtime is what the server needs from the node's container runtime.
// Errors that are or wrap ErrPodNotFound or ErrContainerNotFound are
// answered 404 in the kubelet's words.
type Runtime interface {
	// Lookup checks that t exists on this node before a stream is opened:
	// the pod (and its UID when given) and, when t.Container is set, a
	// running container of that name.
	Lookup(t Target) error
	// Exec runs cmd in the container and returns once it has exited and its
	// output is written. A non-zero exit is an error made by ExitCode.
	Exec(ctx context.Context, t Target, cmd []string, s Streams) error
	// Attach connects s to the container's main process until it exits
	// or ctx ends.
	Attach(ctx context.Context, t Target, s Streams) error
	// PortForward connects stream to port on the pod's loopback, dialled
	// inside the pod's network namespace, and copies until both ends close.
	PortForward(ctx context.Context, t Target, port int32, stream io.ReadWriteCloser) error
	// Logs checks a log request (the container exists, has run, has a
	// previous instance when one is asked for) and returns what writes the
	// log by stream (a nil writer was not asked for); with Follow it
	// returns when the container instance has ended or ctx ends.
	Logs(t Target, opts *v1.PodLogOptions) (LogWriter, error)
	// Pods lists the pods bound to this node, for /pods.
	Pods() []*v1.Pod
}

// LogWriter writes a checked log request.
type LogWriter func(ctx context.Context, stdout, stderr io.Writer) error

var (
	// ErrPodNotFound: the pod is not on this node (or has another UID).
	ErrPodNotFound = errors.New("pod does not exist")
	// ErrContainerNotFound: the pod has no such container, or it is not
	// running where a running one is needed (exec, attach).
	ErrContainerNotFound = errors.New("container not found")
)

// ExitCode is the error Exec returns for a command that exited with a
// non-zero code; kubectl shows "command terminated with exit code N" and
// exits with N.
func ExitCode(code int) error {
	return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
}
