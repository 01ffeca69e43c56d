package main

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"time"

	"github.com/podnet/podnet/bench/internal/netperf"
)

// series holds one metric per round: [arm][round].
type series [2][]float64

func (s *series) add(i int, v float64) { s[i] = append(s[i], v) }

// throughput is what the iperf3 runs with one stream count gave.
type throughput struct {
	streams   int
	bps       series // receiver's bits per second
	agentCPUs series // both agents of the arm together, in CPUs
	perGbit   series // agentCPUs / Gbit/s
	machine   series // the whole machine's busy CPUs
}

type results struct {
	thr    []*throughput
	rr, cr series
	stalls [2]int // connections slower than 100 ms
}

// order is the arms' order in round r: plain first in even rounds.
func order(r int) []int {
	if r%2 == 1 {
		return []int{1, 0}
	}
	return []int{0, 1}
}

// measure runs o.rounds rounds; in each, every metric is measured once per
// arm, back to back.
func measure(ctx context.Context, o options, arms [2]*arm, clientCPU, serverCPU int) (*results, error) {
	res := &results{}
	for _, n := range o.streams {
		res.thr = append(res.thr, &throughput{streams: n})
	}
	// A short warm-up of each path, so the first measured run does not pay
	// for cold caches, neighbour resolution or a handshake.
	for _, a := range arms {
		if _, err := netperf.PingPong(ctx, a.clientNS, clientCPU, netip.AddrPortFrom(a.serverIP, rrPort), 500*time.Millisecond); err != nil {
			return nil, fmt.Errorf("%s: warm-up: %w", a.label, err)
		}
		if err := netperf.WaitListening(ctx, a.iperfPid, iperfPort); err != nil {
			return nil, fmt.Errorf("%s: %w", a.label, err)
		}
	}
	for r := range o.rounds {
		for _, t := range res.thr {
			for _, i := range order(r) {
				if err := throughputRun(ctx, o, arms[i], i, t, clientCPU, serverCPU); err != nil {
					return nil, fmt.Errorf("round %d: %w", r+1, err)
				}
			}
		}
		for _, i := range order(r) {
			a := arms[i]
			rate, err := netperf.PingPong(ctx, a.clientNS, clientCPU, netip.AddrPortFrom(a.serverIP, rrPort), o.rrTime)
			if err != nil {
				return nil, fmt.Errorf("round %d request/response %s: %w", r+1, a.label, err)
			}
			res.rr.add(i, rate)
		}
		for _, i := range order(r) {
			a := arms[i]
			rate, slow, err := netperf.ConnRate(ctx, a.clientNS, clientCPU, netip.AddrPortFrom(a.serverIP, connPort), o.rrTime)
			if err != nil {
				return nil, fmt.Errorf("round %d connection rate %s: %w", r+1, a.label, err)
			}
			res.stalls[i] += slow
			res.cr.add(i, rate)
		}
		t := res.thr[0]
		fmt.Fprintf(logw, "round %d/%d (plain / WireGuard): %d stream(s) %.2f / %.2f Gbit/s, agents %.2f / %.2f CPUs; RR %.0f / %.0f /s; conn %.0f / %.0f /s\n",
			r+1, o.rounds, t.streams, t.bps[0][r]/1e9, t.bps[1][r]/1e9, t.agentCPUs[0][r], t.agentCPUs[1][r],
			res.rr[0][r], res.rr[1][r], res.cr[0][r], res.cr[1][r])
	}
	return res, nil
}

// throughputRun runs iperf3 once for arm i with t.streams streams and
// samples the agents' CPU time around it. Encrypted, it fails unless node
// 1's WireGuard device sent at least what the server received.
func throughputRun(ctx context.Context, o options, a *arm, i int, t *throughput, clientCPU, serverCPU int) error {
	pids, err := a.agentPIDs()
	if err != nil {
		return err
	}
	var tx0 int64
	if a.encrypted {
		if tx0, err = a.transmitted(ctx, 1); err != nil {
			return fmt.Errorf("%s: WireGuard counters: %w", a.label, err)
		}
	}
	c0, err := sampleCPU(pids)
	if err != nil {
		return err
	}
	ir, err := netperf.Iperf{Bin: o.iperf3, NSPath: a.clientNS, Dst: a.serverIP.String(), Port: iperfPort,
		Duration: o.iperfTime, Streams: t.streams, ClientCPU: clientCPU, ServerCPU: serverCPU}.Run(ctx)
	if err != nil {
		return fmt.Errorf("iperf3 -P %d %s: %w", t.streams, a.label, err)
	}
	c1, err := sampleCPU(pids)
	if err != nil {
		return err
	}
	use, err := since(c0, c1)
	if err != nil {
		return fmt.Errorf("%s: agents' CPU: %w", a.label, err)
	}
	if a.encrypted {
		tx1, err := a.transmitted(ctx, 1)
		if err != nil {
			return fmt.Errorf("%s: WireGuard counters: %w", a.label, err)
		}
		if float64(tx1-tx0) < ir.Bytes {
			return fmt.Errorf("%s: the server received %.0f bytes but %s's WireGuard device sent only %d: traffic bypassed encryption",
				a.label, ir.Bytes, a.cfg.NodeName(1), tx1-tx0)
		}
	}
	gbps := ir.BitsPerSecond / 1e9
	t.bps.add(i, ir.BitsPerSecond)
	t.agentCPUs.add(i, use.procs)
	t.perGbit.add(i, use.procs/gbps)
	t.machine.add(i, use.machine)
	return nil
}

// print writes the medians, the ratio WireGuard / plain, the CPU table and
// the rounds.
func (res *results) print(o options, arms [2]*arm) {
	fmt.Printf("| metric | %s | %s | ratio | per-round ratios: median (min–max) |\n|---|---|---|---|---|\n", arms[0].label, arms[1].label)
	row := func(name string, s series, unit string, scale float64, prec int) {
		p, w := netperf.Median(s[0]), netperf.Median(s[1])
		// Each round's two runs are back to back, so their ratio is less
		// exposed to load that changes during the run.
		rs := make([]float64, len(s[0]))
		for i := range rs {
			rs[i] = s[1][i] / s[0][i]
		}
		fmt.Printf("| %s | %.*f %s | %.*f %s | %.3f | %.3f (%.2f–%.2f) |\n", name, prec, p/scale, unit, prec, w/scale, unit, w/p,
			netperf.Median(rs), slices.Min(rs), slices.Max(rs))
	}
	for _, t := range res.thr {
		row(fmt.Sprintf("TCP throughput, %s (iperf3, %s)", streamsName(t.streams), o.iperfTime), t.bps, "Gbit/s", 1e9, 2)
	}
	row("request/response, 1 byte, persistent connection", res.rr, "trans/s", 1, 0)
	row("new connections (connect + 1 request + close)", res.cr, "conn/s", 1, 0)

	fmt.Printf("\nCPU during the throughput runs, medians (CPUs = CPU-seconds per second; the agents' utime+stime from /proc/<pid>/stat):\n\n")
	fmt.Printf("| during iperf3 | %s | %s |\n|---|---|---|\n", arms[0].label, arms[1].label)
	for _, t := range res.thr {
		fmt.Printf("| %s: both nodes' agents | %.3f CPUs | %.3f CPUs |\n", streamsName(t.streams), netperf.Median(t.agentCPUs[0]), netperf.Median(t.agentCPUs[1]))
		fmt.Printf("| %s: agents' CPUs per Gbit/s | %.4f | %.3f |\n", streamsName(t.streams), netperf.Median(t.perGbit[0]), netperf.Median(t.perGbit[1]))
		fmt.Printf("| %s: whole machine busy (of %d; everything running here) | %.2f CPUs | %.2f CPUs |\n",
			streamsName(t.streams), runtime.NumCPU(), netperf.Median(t.machine[0]), netperf.Median(t.machine[1]))
	}

	fmt.Printf("\nper round (%s / %s):\n\n| round |", arms[0].label, arms[1].label)
	for _, t := range res.thr {
		fmt.Printf(" %s Gbit/s | agents' CPUs |", streamsName(t.streams))
	}
	fmt.Printf(" RR trans/s | conn/s |\n|---|")
	for range res.thr {
		fmt.Printf("---|---|")
	}
	fmt.Printf("---|---|\n")
	for r := range o.rounds {
		fmt.Printf("| %d |", r+1)
		for _, t := range res.thr {
			fmt.Printf(" %.2f / %.2f | %.2f / %.2f |", t.bps[0][r]/1e9, t.bps[1][r]/1e9, t.agentCPUs[0][r], t.agentCPUs[1][r])
		}
		fmt.Printf(" %.0f / %.0f | %.0f / %.0f |\n", res.rr[0][r], res.rr[1][r], res.cr[0][r], res.cr[1][r])
	}
	if res.stalls[0]+res.stalls[1] > 0 {
		fmt.Printf("\nwarning: connections slower than 100 ms: %s %d, %s %d (SYN retransmits?)\n",
			arms[0].label, res.stalls[0], arms[1].label, res.stalls[1])
	}
}

func streamsName(n int) string {
	if n == 1 {
		return "1 stream"
	}
	return fmt.Sprintf("%d streams", n)
}
