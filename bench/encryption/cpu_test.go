package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseProcessTicksCountsFromTheLastParenthesis(t *testing.T) {
	// Fields 14 and 15 are 700 and 45; the command name holds spaces and
	// parentheses, as a process may name itself.
	tail := "S 1 1234 1234 0 -1 4194560 5000 0 0 0 700 45 0 0 20 0 17 0 109941 2000000 3000 18446744073709551615"
	for _, tc := range []struct {
		name, stat string
		want       uint64
		wantErr    bool
	}{
		{"a plain name", "11260 (podnet) " + tail, 745, false},
		{"a name with ') ' inside", "11260 (a) b (c) d) " + tail, 745, false},
		{"a truncated line", "11260 (podnet) S 1 1234", 0, true},
		{"no command at all", "11260 podnet S", 0, true},
		{"a non-number in utime", "11260 (podnet) " + strings.Replace(tail, " 700 ", " x ", 1), 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcessTicks(tc.stat)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseProcessTicks = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseMachineTicksSplitsBusyFromIdle(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	busy, total, err := parseMachineTicks("cpu  100 2 30 1000 7 1 5 3 0 0\ncpu0 50 1 15 500 3 0 2 1 0 0\n")
	if err != nil || busy != 141 || total != 1148 {
		t.Errorf("parseMachineTicks = %d, %d, %v; want busy 141 (100+2+30+1+5+3), total 1148 (+1000 idle +7 iowait)", busy, total, err)
	}
	if _, _, err := parseMachineTicks("intr 1 2 3\n"); err == nil {
		t.Errorf("parseMachineTicks accepted a file whose first line is not the cpu total")
	}
}

func TestSinceIsCPUsOverTheIntervalAndRefusesAReplacedProcess(t *testing.T) {
	t0 := time.Unix(100, 0)
	a := cpuSample{at: t0, pids: []int{10, 20}, procs: []uint64{1000, 50}, machineBusy: 5000}
	b := cpuSample{at: t0.Add(2 * time.Second), pids: []int{10, 20}, procs: []uint64{1150, 100}, machineBusy: 5300}
	u, err := since(a, b)
	// 200 ticks of the two processes in 2 s = 1 CPU; the machine 300 ticks = 1.5 CPUs.
	if err != nil || math.Abs(u.procs-1) > 1e-9 || math.Abs(u.machine-1.5) > 1e-9 {
		t.Errorf("since = %+v, %v; want procs 1, machine 1.5", u, err)
	}
	b.pids[1] = 21
	if _, err := since(a, b); err == nil {
		t.Errorf("since accepted samples of different processes")
	}
	if _, err := since(b, b); err == nil {
		t.Errorf("since accepted an empty interval")
	}
}
