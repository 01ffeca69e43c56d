package podruntime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/podnet/podnet/internal/kubeletapi"
	"github.com/podnet/podnet/internal/podexec"
)

// outputGrace is how long an exec waits, after its command exited, for
// output that children it left behind still hold open.
const outputGrace = time.Second

// Exec runs cmd beside the container: in the pod's namespaces, with the
// container's environment and working directory, as a kubelet's exec runs in
// the container. A command that cannot be found or run ends with exit code
// 127 or 126 and the reason on its stderr (the shell's convention).
func (a apiRuntime) Exec(ctx context.Context, t kubeletapi.Target, cmd []string, s kubeletapi.Streams) error {
	v, c, err := a.running(t)
	if err != nil {
		return err
	}
	env := containerEnv(v.pod, &c.spec, v.sb.ips, a.r.cfg.NodeIP, a.r.svcLister)
	if s.TTY {
		env = append(env, "TERM=xterm")
	}
	if code, err := findProgram(cmd[0], envValue(env, "PATH"), c.spec.WorkingDir); err != nil {
		msg := s.Stderr
		if msg == nil {
			msg = s.Stdout
		}
		if msg != nil {
			eol := "\n"
			if s.TTY {
				eol = "\r\n"
			}
			fmt.Fprint(msg, err.Error()+eol)
		}
		return kubeletapi.ExitCode(code)
	}
	p := podexec.Command(a.r.cfg.Self, execOptions(v.pod, v.sb, c.spec.WorkingDir), cmd)
	p.Env = env
	if s.TTY {
		err = runTTY(ctx, p, s)
	} else {
		err = runPipes(ctx, p, s)
	}
	if err != nil {
		return err
	}
	if code := exitCode(p.ProcessState); code != 0 {
		return kubeletapi.ExitCode(code)
	}
	return nil
}

// runPipes runs p with the session's streams as pipes. It returns an error
// only when p could not run; its exit is in p.ProcessState.
func runPipes(ctx context.Context, p *exec.Cmd, s kubeletapi.Streams) error {
	if s.Stdin != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		defer r.Close()
		p.Stdin = r
		// Ends when the client's input ends (the program sees EOF) or,
		// after the exit, when the session's streams close.
		go func() {
			_, _ = io.Copy(w, s.Stdin)
			w.Close()
		}()
	}
	gone := newClientGone()
	if s.Stdout != nil {
		p.Stdout = gone.watch(s.Stdout)
	}
	if s.Stderr != nil {
		p.Stderr = gone.watch(s.Stderr)
	}
	p.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.WaitDelay = outputGrace
	if err := p.Start(); err != nil {
		return err
	}
	stop := gone.killOnEnd(ctx, p.Process.Pid)
	defer stop()
	if err := p.Wait(); err != nil && p.ProcessState == nil {
		return err
	}
	return nil
}

// runTTY runs p on a new pseudo-terminal that is its controlling terminal,
// so that ^C from the client is SIGINT to its foreground job and resizes
// reach it as SIGWINCH.
func runTTY(ctx context.Context, p *exec.Cmd, s kubeletapi.Streams) error {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return fmt.Errorf("open a terminal: %w", err)
	}
	defer ptmx.Close()
	// The client sends its size first: the program starts with it.
	select {
	case size, ok := <-s.Resize:
		if ok {
			setSize(ptmx, size)
		}
	case <-time.After(time.Second):
	}
	p.Stdin, p.Stdout, p.Stderr = tty, tty, tty
	p.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Pdeathsig: syscall.SIGKILL}
	err = p.Start()
	tty.Close()
	if err != nil {
		return err
	}
	exited, resizing := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(resizing)
		for {
			select {
			case size, ok := <-s.Resize:
				if !ok {
					return
				}
				setSize(ptmx, size)
			case <-exited:
				return
			}
		}
	}()
	if s.Stdin != nil {
		go func() { _, _ = io.Copy(ptmx, s.Stdin) }()
	}
	gone := newClientGone()
	var out io.Writer = io.Discard
	if s.Stdout != nil {
		out = gone.watch(s.Stdout)
	}
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(out, ptmx) // ends with EIO once nothing holds the terminal
		close(copied)
	}()
	stop := gone.killOnEnd(ctx, p.Process.Pid)
	defer stop()
	_ = p.Wait()
	close(exited)
	<-resizing // before ptmx closes
	select {
	case <-copied:
	case <-time.After(outputGrace):
	}
	return nil
}

// clientGone notices that the client went away: a write to it failed
// (the request context of a hijacked connection does not end with it).
type clientGone struct {
	once sync.Once
	ch   chan struct{}
}

func newClientGone() *clientGone { return &clientGone{ch: make(chan struct{})} }

func (g *clientGone) watch(w io.Writer) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		n, err := w.Write(p)
		if err != nil {
			g.once.Do(func() { close(g.ch) })
		}
		return n, err
	})
}

// killOnEnd kills process group pgid when ctx ends or the client is gone,
// until the returned stop is called.
func (g *clientGone) killOnEnd(ctx context.Context, pgid int) (stop func()) {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-g.ch:
		case <-done:
			return
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}()
	return func() { close(done) }
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func setSize(ptmx *os.File, size kubeletapi.TerminalSize) {
	_ = pty.Setsize(ptmx, &pty.Winsize{Rows: size.Height, Cols: size.Width})
}

// findProgram resolves name as execve would in the pod (the pod shares the
// node's file system), with the exit code a shell gives when it cannot:
// 127 not found, 126 found but not executable.
func findProgram(name, path, dir string) (int, error) {
	check := func(p string) error {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return fs.ErrPermission
		}
		return nil
	}
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) && dir != "" {
			p = filepath.Join(dir, p)
		}
		switch err := check(p); {
		case err == nil:
			return 0, nil
		case errors.Is(err, fs.ErrPermission):
			return 126, fmt.Errorf("exec: %q: permission denied", name)
		default:
			return 127, fmt.Errorf("exec: %q: stat %s: no such file or directory", name, name)
		}
	}
	denied := false
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		err := check(filepath.Join(d, name))
		if err == nil {
			return 0, nil
		}
		denied = denied || errors.Is(err, fs.ErrPermission)
	}
	if denied {
		return 126, fmt.Errorf("exec: %q: permission denied", name)
	}
	return 127, fmt.Errorf("exec: %q: executable file not found in $PATH", name)
}

// envValue is the last value of key in a KEY=VALUE list.
func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}
