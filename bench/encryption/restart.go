package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bench/internal/localbench"
	"github.com/podnet/podnet/bench/internal/probe"
	"github.com/podnet/podnet/internal/proc"
)

// restartRun is one restart of node 1's agent seen from the client pod.
type restartRun struct {
	gap        time.Duration // longest time between two replies around the restart
	sent, lost int
	stopTook   time.Duration // signal → the old agent exited
	back       time.Duration // new agent started → first reply to a request sent after that
}

// restartKey names one cell of the restart table.
type restartKey struct {
	kind string
	arm  int
}

// restarts restarts node 1's agent o.restarts times per kind and arm,
// alternating the arms, while the client pod probes the server pod.
func restarts(ctx context.Context, o options, arms [2]*arm) (map[restartKey][]restartRun, error) {
	out := map[restartKey][]restartRun{}
	for _, kind := range o.restartKinds {
		for r := range o.restarts {
			for _, i := range order(r) {
				run, err := restartOnce(ctx, o, arms[i], kind)
				if err != nil {
					return nil, fmt.Errorf("restart (%s) %d of %s's agent on %s: %w", kind, r+1, arms[i].label, arms[i].cfg.NodeName(1), err)
				}
				fmt.Fprintf(logw, "restart %s %d/%d %s: gap %s, %d of %d lost, stop took %s, first reply %s after the start\n",
					kind, r+1, o.restarts, arms[i].label, run.gap.Round(time.Millisecond), run.lost, run.sent,
					run.stopTook.Round(time.Millisecond), run.back.Round(time.Millisecond))
				out[restartKey{kind, i}] = append(out[restartKey{kind, i}], run)
			}
		}
	}
	return out, nil
}

// restartOnce probes the server pod from the client pod, stops node 1's
// agent (kind term: SIGTERM as `podnet down` does, SIGKILL after 10 s;
// kill: SIGKILL) and starts it again at once from its record, waits until
// a request sent after the start is answered, lets the probe run a little
// longer and sums up the window from just before the stop.
func restartOnce(ctx context.Context, o options, a *arm, kind string) (restartRun, error) {
	var r restartRun
	p := &probe.UDP{NSPath: a.clientNS, Dst: netip.AddrPortFrom(a.serverIP, probePort), Every: o.every, Timeout: o.timeout,
		Payload: []byte("encbench\n")}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p.Run(pctx); close(done) }()
	defer func() { stop(); <-done }()

	// A second of steady replies first.
	if !sleep(ctx, time.Second) {
		return r, ctx.Err()
	}
	if _, ok := p.FirstReply(); !ok {
		return r, fmt.Errorf("no reply from %s before the restart", p.Dst)
	}
	rec, err := localbench.AgentRecord(a.cfg, 1)
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	switch kind {
	case "term":
		err = proc.Stop(rec, 10*time.Second)
	case "kill":
		err = kill(rec)
	default:
		err = fmt.Errorf("unknown kind %q", kind)
	}
	r.stopTook = time.Since(t0)
	if err != nil {
		return r, err
	}
	if _, err := localbench.RestartAgent(a.cfg, 1); err != nil {
		return r, err
	}
	t1 := time.Now()
	for {
		if first, ok := p.FirstReplyAfter(t1); ok {
			r.back = first.Sub(t1)
			break
		}
		if time.Since(t1) > 60*time.Second {
			return r, fmt.Errorf("no reply within 60 s of the agent's start")
		}
		if !sleep(ctx, 20*time.Millisecond) {
			return r, ctx.Err()
		}
	}
	// Let a timeout's worth of requests after the first reply complete.
	if !sleep(ctx, o.timeout+500*time.Millisecond) {
		return r, ctx.Err()
	}
	end := time.Now().Add(-o.timeout)
	r.gap, r.sent, r.lost = p.Window(t0.Add(-200*time.Millisecond), end)
	return r, nil
}

// kill sends SIGKILL to rec's process through a pidfd opened before its
// identity check (so a reused pid is never hit) and waits until it exited.
func kill(rec *proc.Record) error {
	pidfd, err := unix.PidfdOpen(rec.PID, 0)
	if err != nil {
		return fmt.Errorf("pidfd of %s: %w", rec.Name, err)
	}
	defer unix.Close(pidfd)
	if !proc.Alive(rec) {
		return fmt.Errorf("%s exited before the kill", rec.Name)
	}
	if err := unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0); err != nil {
		return fmt.Errorf("kill %s: %w", rec.Name, err)
	}
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 10_000)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return fmt.Errorf("%s still running 10 s after SIGKILL (%v)", rec.Name, err)
		}
		return nil
	}
}

// sleep waits d unless ctx ends first (then it returns false).
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// printRestarts writes one row per kind and arm.
func printRestarts(o options, arms [2]*arm, rs map[restartKey][]restartRun) {
	fmt.Printf("\n## Agent restart on node 1 (client side), probe every %s from the client pod to the server pod (UDP, a new socket each, lost after %s)\n\n",
		o.every, o.timeout)
	fmt.Printf("| agent stopped by | arm | runs | gap p50 | gap max | lost p50 / max | stop took p50 | first reply after the start p50 / max |\n|---|---|---|---|---|---|---|---|\n")
	for _, kind := range o.restartKinds {
		for i, a := range arms {
			runs := rs[restartKey{kind, i}]
			if len(runs) == 0 {
				continue
			}
			pick := func(f func(restartRun) time.Duration) []time.Duration {
				var v []time.Duration
				for _, r := range runs {
					v = append(v, f(r))
				}
				return v
			}
			gaps := pick(func(r restartRun) time.Duration { return r.gap })
			stops := pick(func(r restartRun) time.Duration { return r.stopTook })
			backs := pick(func(r restartRun) time.Duration { return r.back })
			var lost []int
			for _, r := range runs {
				lost = append(lost, r.lost)
			}
			what := map[string]string{"term": "SIGTERM", "kill": "SIGKILL"}[kind]
			ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
			fmt.Printf("| %s | %s | %d | %s | %s | %d / %d | %s | %s / %s |\n", what, a.label, len(runs),
				ms(localbench.Percentile(gaps, 50)), ms(slices.Max(gaps)),
				localbench.Percentile(lost, 50), slices.Max(lost), ms(localbench.Percentile(stops, 50)),
				ms(localbench.Percentile(backs, 50)), ms(slices.Max(backs)))
		}
	}
	fmt.Printf("\ngap: the longest time between two consecutive replies from 200 ms before the stop until the probe ended " +
		"(all requests sent in that window are counted in lost); stop took: signal → the old agent exited; first reply: " +
		"the new agent started → the first reply to a request sent after that\n")
}
