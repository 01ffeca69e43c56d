package podruntime

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/podnet/podnet/internal/crilog"
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
	finished bool
	// stopProbes ends all of the instance's probes (at its exit),
	// stopLiveness only its liveness probe (when the pod terminates).
	stopProbes, stopLiveness func()
	// out and prevOut record the output of the latest and the one before
	// (kubectl logs and logs --previous).
	out, prevOut *crilog.Capture
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
func (w *podWorker) start(c *container) (err error) {
	defer func() { w.started(c, err) }()
	r := w.r
	env := containerEnv(w.pod, &c.spec, w.sandbox.ips, r.cfg.NodeIP, r.svcLister)
	argv := r.argv(w.pod, &c.spec, env)
	opts := execOptions(w.pod, w.sandbox, c.spec.WorkingDir)
	cmd := podexec.Command(r.cfg.Self, opts, argv)
	cmd.Env = env
	out, err := w.sandbox.capture(c.spec.Name, c.restarts)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = out.Stdout(), out.Stderr()
	// Its own process group (so stop reaches its children) and death with
	// the runtime.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	out.Started()
	if err != nil {
		return fmt.Errorf("start %s: %w", c.spec.Name, err)
	}
	c.prevOut, c.out = c.out, out
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
		_ = cmd.Wait()
		_ = proc.Remove(r.containersDir(), recName)
		code := exitCode(cmd.ProcessState)
		w.send(event{kind: evExit, container: name, generation: gen, code: code, at: time.Now()})
	}()
	w.startProbes(c, gen)
	r.log.Info("container started", "pod", w.key(), "container", name, "pid", cmd.Process.Pid, "argv", argv)
	return nil
}

// exitCode is a finished process's exit code: 128+N for a death by signal
// N (the shell's and the kubelet's convention), 128 when it was never
// waited for.
func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return 128
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// execOptions are the namespaces and files a process of the pod enters:
// its containers and what kubectl exec runs beside them.
func execOptions(pod *v1.Pod, sb *sandbox, dir string) podexec.Options {
	opts := podexec.Options{NetNS: sb.nsPath, ResolvConf: sb.resolv, Hosts: sb.hosts, Dir: dir}
	if !pod.Spec.HostNetwork {
		opts.Hostname = pod.Name
		if pod.Spec.Hostname != "" {
			opts.Hostname = pod.Spec.Hostname
		}
	}
	return opts
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
