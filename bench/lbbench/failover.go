package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/bench/internal/localbench"
	"github.com/podnet/podnet/bench/internal/probe"
	"github.com/podnet/podnet/internal/proc"
)

// failure is one kind of failure of the node that announces the VIP, and
// how to undo it.
type failure struct {
	name, what string
	inject     func(c *cluster, node int) (wait func() error, err error)
	recover    func(c *cluster, node int) error
}

var failures = []failure{
	{"kill", "agent killed (SIGKILL), node stays on the segment", killAgent, restartAgent},
	{"term", "agent stopped (SIGTERM: goodbye, acks, exit)", stopAgent, restartAgent},
	{"linkdown", "node's link to the segment down (agent and node cut off)", linkDown, linkUp},
}

// failRun is one failover: the gap and the loss around the failure, the time
// until the world's neighbour entry left the failed node, and the gap and
// loss while the node came back.
type failRun struct {
	gap, moved, backGap time.Duration
	sent, lost          int
	backLost            int
	moveSeen            bool
}

// agentRecord is the process record `podnet up` wrote for node's agent.
func (c *cluster) agentRecord(node int) (*proc.Record, error) {
	return localbench.AgentRecord(c.cfg, node)
}

// killAgent sends SIGKILL to node's recorded agent through a pidfd opened
// before the identity check (package proc's rule: a reused pid is never
// hit) and waits for it to exit.
func killAgent(c *cluster, node int) (func() error, error) {
	rec, err := c.agentRecord(node)
	if err != nil {
		return nil, err
	}
	pidfd, err := unix.PidfdOpen(rec.PID, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd of %s: %w", rec.Name, err)
	}
	if !proc.Alive(rec) {
		unix.Close(pidfd)
		return nil, fmt.Errorf("%s exited before the kill", rec.Name)
	}
	if err := unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0); err != nil {
		unix.Close(pidfd)
		return nil, fmt.Errorf("kill %s: %w", rec.Name, err)
	}
	return func() error {
		defer unix.Close(pidfd)
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		if n, err := unix.Poll(fds, 10_000); err != nil || n == 0 {
			return fmt.Errorf("%s still running 10 s after SIGKILL (%v)", rec.Name, err)
		}
		return nil
	}, nil
}

// stopAgent stops node's recorded agent the way `podnet down` does
// (SIGTERM, SIGKILL after 10 s); the returned wait ends when it exited.
func stopAgent(c *cluster, node int) (func() error, error) {
	rec, err := c.agentRecord(node)
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- proc.Stop(rec, 10*time.Second) }()
	return func() error { return <-done }, nil
}

// restartAgent starts node's agent again from its record (argv, log,
// namespace), with the environment `podnet up` gives it.
func restartAgent(c *cluster, node int) error {
	_, err := localbench.RestartAgent(c.cfg, node)
	return err
}

func setLink(c *cluster, node int, up bool) error {
	name := c.cfg.NodeVethName(node)
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("bridge port %s of %s: %w", name, c.cfg.NodeName(node), err)
	}
	if up {
		return netlink.LinkSetUp(l)
	}
	return netlink.LinkSetDown(l)
}

func linkDown(c *cluster, node int) (func() error, error) {
	return func() error { return nil }, setLink(c, node, false)
}

func linkUp(c *cluster, node int) error { return setLink(c, node, true) }

// failoverOnce injects f into the VIP's owner while the prober runs,
// waits observe, undoes it, and waits until the owner announces the VIP
// again.
func (c *cluster) failoverOnce(ctx context.Context, p *probe.UDP, f failure) (failRun, error) {
	var r failRun
	if err := c.waitOwner(ctx, c.owner, 20*time.Second); err != nil {
		return r, fmt.Errorf("before: %w", err)
	}
	settle(ctx, time.Second)
	t0 := time.Now()
	wait, err := f.inject(c, c.owner)
	if err != nil {
		return r, err
	}
	moved := c.watchMove(ctx, c.ownerMAC, t0, c.o.observe)
	settle(ctx, c.o.observe)
	err = wait()
	r.moved, r.moveSeen = moved()
	t1 := time.Now()
	if rerr := f.recover(c, c.owner); rerr != nil {
		return r, errors.Join(err, fmt.Errorf("recover: %w", rerr))
	}
	if err != nil {
		return r, err
	}
	werr := c.waitOwner(ctx, c.owner, 30*time.Second)
	settle(ctx, time.Second)
	t2 := time.Now().Add(-p.Timeout)
	r.gap, r.sent, r.lost = p.Window(t0.Add(-200*time.Millisecond), t1.Add(-p.Timeout))
	r.backGap, _, r.backLost = p.Window(t1, t2)
	return r, werr
}

// watchMove polls the world's neighbour entry for the VIP every 5 ms for
// up to d and reports when it first stopped being from.
func (c *cluster) watchMove(ctx context.Context, from string, t0 time.Time, d time.Duration) func() (time.Duration, bool) {
	res := make(chan time.Duration, 1)
	go func() {
		for time.Since(t0) < d && ctx.Err() == nil {
			if mac, err := neighbourMAC(c.worldNS, c.vip); err == nil && mac != "" && mac != from {
				res <- time.Since(t0)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		close(res)
	}()
	return func() (time.Duration, bool) { d, ok := <-res; return d, ok }
}

// waitOwner waits until the world's neighbour entry for the VIP is node's
// MAC (the world resolves it again by itself: the prober keeps sending).
func (c *cluster) waitOwner(ctx context.Context, node int, d time.Duration) error {
	want := c.nodeMACs[node]
	deadline := time.Now().Add(d)
	for {
		mac, err := neighbourMAC(c.worldNS, c.vip)
		if err == nil && mac == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the world's neighbour entry for %s is %q (err %v), not %s's %s after %s",
				c.vip, mac, err, c.cfg.NodeName(node), want, d)
		}
		if !settle(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// settle sleeps d unless ctx ends first (then it returns false).
func settle(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// failover runs every kind o.runs times against the VIP and prints a table.
func (c *cluster) failover(ctx context.Context) error {
	if err := c.setupVIP(ctx); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "failover: VIP %s announced by %s (%s), endpoints on %s\n",
		c.vip, c.cfg.NodeName(c.owner), c.ownerMAC, c.cfg.NodeName(endpointNode))
	p := &probe.UDP{NSPath: c.worldNS, Dst: netip.AddrPortFrom(c.vip, port), Every: c.o.every, Timeout: c.o.timeout, Payload: payload}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p.Run(pctx); close(done) }()
	defer func() { stop(); <-done }()
	results := map[string][]failRun{}
	for _, f := range failures {
		if !c.o.kinds[f.name] {
			continue
		}
		for i := range c.o.runs {
			r, err := c.failoverOnce(ctx, p, f)
			if err != nil {
				return fmt.Errorf("%s run %d: %w", f.name, i+1, err)
			}
			results[f.name] = append(results[f.name], r)
			fmt.Fprintf(os.Stderr, "%s %d/%d: gap %s, lost %d of %d, neighbour moved %s (%v), back: gap %s lost %d\n",
				f.name, i+1, c.o.runs, ms(r.gap), r.lost, r.sent, ms(r.moved), r.moveSeen, ms(r.backGap), r.backLost)
		}
	}
	printFailover(c, results)
	return nil
}
