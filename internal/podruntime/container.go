package podruntime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/podnet/podnet/internal/podexec"
	"github.com/podnet/podnet/internal/proc"
)

// container is one container's process and history.
type container struct {
	spec v1.Container

	cmd       *exec.Cmd
	running   bool
	startedAt time.Time
	// generation counts starts, so a late exit of an old process is
	// recognized.
	generation int
	restarts   int32
	lastExit   *exitInfo // of the previous run, for lastState
	curExit    *exitInfo // of the current, finished run
	nextStart  time.Time // backoff
	backoff    time.Duration
	ready      bool
	// finished: will not run again (restartPolicy says so).
	finished   bool
	stopProbes func()
}

type exitInfo struct {
	code       int
	reason     string
	startedAt  time.Time
	finishedAt time.Time
}

// argv returns what the container runs: its command and args, or the
// built-in test server for a container without either.
func (r *Runtime) argv(pod *v1.Pod, c *v1.Container, env []string) []string {
	vars := map[string]string{}
	for _, kv := range env {
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				vars[kv[:i]] = kv[i+1:]
				break
			}
		}
	}
	var argv []string
	for _, s := range append(append([]string{}, c.Command...), c.Args...) {
		argv = append(argv, expand(s, vars))
	}
	if len(argv) > 0 {
		return argv
	}
	argv = []string{r.cfg.Self, "serve", "--name", pod.Name}
	for _, p := range c.Ports {
		switch p.Protocol {
		case v1.ProtocolUDP:
			argv = append(argv, "--udp", strconv.Itoa(int(p.ContainerPort)))
		case v1.ProtocolSCTP:
			// No SCTP in this kernel; nothing to serve.
		default:
			argv = append(argv, "--tcp", strconv.Itoa(int(p.ContainerPort)))
		}
	}
	return argv
}

// start runs the container's process in the pod; exits are reported on
// w.events.
func (w *podWorker) start(c *container) error {
	r := w.r
	env := containerEnv(w.pod, &c.spec, w.sandbox.ips, r.cfg.NodeIP, r.svcLister)
	argv := r.argv(w.pod, &c.spec, env)
	opts := podexec.Options{NetNS: w.sandbox.nsPath, ResolvConf: w.sandbox.resolv, Hosts: w.sandbox.hosts, Dir: c.spec.WorkingDir}
	if !w.pod.Spec.HostNetwork {
		opts.Hostname = w.pod.Name
		if w.pod.Spec.Hostname != "" {
			opts.Hostname = w.pod.Spec.Hostname
		}
	}
	cmd := podexec.Command(r.cfg.Self, opts, argv)
	cmd.Env = env
	logPath := filepath.Join(w.sandbox.dir, "logs", c.spec.Name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group (so stop reaches its children) and death with
	// the runtime.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", c.spec.Name, err)
	}
	c.generation++
	gen := c.generation
	c.cmd, c.running, c.startedAt, c.curExit, c.ready = cmd, true, time.Now(), nil, false
	name := c.spec.Name
	// Recorded by pid and start time, so that `podnet down` can end it
	// even if it outlived this runtime (the parent-death signal is the
	// first line of defence, this record the second).
	recName := fmt.Sprintf("%s.%s.%s.%d", w.pod.Namespace, w.pod.Name, name, gen)
	if _, err := proc.Adopt(r.containersDir(), recName, cmd.Process.Pid, argv); err != nil {
		r.log.Error("cannot record container process", "pod", w.key(), "container", name, "err", err)
	}
	go func() {
		err := cmd.Wait()
		_ = proc.Remove(r.containersDir(), recName)
		logf.Close()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		} else if err != nil {
			code = 128
		}
		w.send(event{kind: evExit, container: name, generation: gen, code: code, at: time.Now()})
	}()
	w.startProbes(c, gen)
	r.log.Info("container started", "pod", w.key(), "container", name, "pid", cmd.Process.Pid, "argv", argv)
	return nil
}

// stop ends the container's process group: SIGTERM, then SIGKILL after
// grace. It waits for the exit event handling to be done by the caller.
func (c *container) signal(sig syscall.Signal) {
	if c.cmd != nil && c.cmd.Process != nil && c.running {
		_ = syscall.Kill(-c.cmd.Process.Pid, sig)
	}
}

// shouldRestart applies the pod's restartPolicy to an exit code.
func shouldRestart(policy v1.RestartPolicy, code int) bool {
	switch policy {
	case v1.RestartPolicyNever:
		return false
	case v1.RestartPolicyOnFailure:
		return code != 0
	default:
		return true
	}
}

const (
	initialBackoff = time.Second
	maxBackoff     = 20 * time.Second
	// A container that ran this long resets its backoff.
	backoffReset = 10 * time.Second
)
