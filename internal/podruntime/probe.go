package podruntime

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/podnet/podnet/internal/podexec"
)

// startProbes runs the container's readiness and liveness probes until the
// container stops (c.stopProbes); results arrive as events, each failed
// probe is recorded as Unhealthy with its output. A pod that terminates
// stops the liveness probe at once (c.stopLiveness) but keeps probing
// readiness until the container exits, as the kubelet does.
func (w *podWorker) startProbes(c *container, gen int) {
	ctx, cancel := context.WithCancel(w.ctx)
	liveCtx, stopLiveness := context.WithCancel(ctx)
	c.stopProbes, c.stopLiveness = cancel, stopLiveness
	name := c.spec.Name
	env := containerEnv(w.pod, &c.spec, w.sandbox.ips, w.r.cfg.NodeIP, w.r.svcLister)
	if c.spec.ReadinessProbe == nil {
		// Ready as soon as it runs.
		w.send(event{kind: evReady, container: name, generation: gen, ok: true})
	} else {
		go w.probeLoop(ctx, c.spec.ReadinessProbe, env, func(ok bool) {
			w.send(event{kind: evReady, container: name, generation: gen, ok: ok})
		}, w.probeFailed(name, "Readiness"), false)
	}
	if c.spec.LivenessProbe != nil {
		go w.probeLoop(liveCtx, c.spec.LivenessProbe, env, func(ok bool) {
			if !ok {
				w.send(event{kind: evLivenessFailed, container: name, generation: gen})
			}
		}, w.probeFailed(name, "Liveness"), true)
	}
}

// probeLoop probes every period and reports each change of the thresholded
// result (readiness) or each failure past the threshold (liveness); failed
// gets every failed probe's output.
func (w *podWorker) probeLoop(ctx context.Context, p *v1.Probe, env []string, report func(bool), failed func(string), liveness bool) {
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	failThreshold := int(max(p.FailureThreshold, 1))
	successThreshold := int(max(p.SuccessThreshold, 1))
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Duration(p.InitialDelaySeconds) * time.Second):
	}
	state, known := false, false
	fails, successes := 0, 0
	for {
		ok, output := w.probeOnce(ctx, p, env, timeout)
		if ctx.Err() != nil {
			return
		}
		if ok {
			successes, fails = successes+1, 0
			if successes >= successThreshold && (!state || !known) {
				state, known = true, true
				report(true)
			}
		} else {
			failed(output)
			fails, successes = fails+1, 0
			if fails >= failThreshold && (state || !known || liveness) {
				state, known = false, true
				report(false)
				if liveness {
					return // the container is restarted, with new probes
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(period):
		}
	}
}

// probeOnce runs one probe and returns whether it passed and its output in
// the kubelet's words: the error or status code of an HTTP or TCP probe, the
// output of an exec probe (which runs in the pod with the container's
// environment).
func (w *podWorker) probeOnce(ctx context.Context, p *v1.Probe, env []string, timeout time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host := ""
	if len(w.sandbox.ips) > 0 {
		host = w.sandbox.ips[0].String()
	}
	switch {
	case p.HTTPGet != nil:
		return w.probeHTTP(ctx, p.HTTPGet, host)
	case p.TCPSocket != nil:
		if p.TCPSocket.Host != "" {
			host = p.TCPSocket.Host
		}
		port, err := w.resolvePort(p.TCPSocket.Port)
		if err != nil {
			return false, err.Error()
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	case p.Exec != nil:
		return w.probeExec(ctx, p.Exec.Command, env)
	}
	return false, "gRPC probes are not supported by the podnet runtime"
}

func (w *podWorker) probeHTTP(ctx context.Context, g *v1.HTTPGetAction, host string) (bool, string) {
	if g.Host != "" {
		host = g.Host
	}
	port, err := w.resolvePort(g.Port)
	if err != nil {
		return false, err.Error()
	}
	scheme := "http"
	if g.Scheme == v1.URISchemeHTTPS {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), g.Path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	for _, h := range g.HTTPHeaders {
		req.Header.Add(h.Name, h.Value)
	}
	req.Header.Set("User-Agent", "podnet-probe")
	resp, err := w.r.probeClient.Do(req)
	if err != nil {
		return false, err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return false, fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	return true, ""
}

// probeExec runs argv in the pod; its output (stdout and stderr, at most
// maxProbeOutput bytes) is the probe's.
func (w *podWorker) probeExec(ctx context.Context, argv, env []string) (bool, string) {
	opts := podexec.Options{NetNS: w.sandbox.nsPath, ResolvConf: w.sandbox.resolv, Hosts: w.sandbox.hosts}
	cmd := podexec.Command(w.r.cfg.Self, opts, argv)
	cmd.Env = env
	out := &limitedBuffer{max: maxProbeOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second // a child left holding the output does not hold the probe
	if err := cmd.Start(); err != nil {
		return false, err.Error()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err == nil, out.String()
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return false, fmt.Sprintf("command %q timed out", strings.Join(argv, " "))
	}
}

// limitedBuffer keeps the first max bytes written to it and drops the rest.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// resolvePort turns a numeric or named port into a number, looking names up
// in the pod's containerPorts.
func (w *podWorker) resolvePort(p intstr.IntOrString) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, c := range w.pod.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				return int(cp.ContainerPort), nil
			}
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("no container port named %q", p.StrVal)
}
