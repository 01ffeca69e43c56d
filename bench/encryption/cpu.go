package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat and /proc/stat:
// USER_HZ, which the kernel fixes at 100 for user space on every
// architecture Linux runs this on.
const userHZ = 100

// processTicks is utime + stime of a process (fields 14 and 15 of
// /proc/<pid>/stat), in USER_HZ ticks: all its threads, user and kernel
// time, the system calls into the TUN and the UDP socket included.
func processTicks(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseProcessTicks(string(data))
}

// parseProcessTicks reads utime + stime from the text of /proc/<pid>/stat.
// The command name (field 2) may hold spaces and parentheses, so fields
// are counted from the last ')': the next one is field 3.
func parseProcessTicks(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat %q: no ')'", stat)
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("stat %q: %d fields after the command, want at least 13", stat, len(f))
	}
	var sum uint64
	for _, s := range f[11:13] { // fields 14 (utime) and 15 (stime)
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat: %w", err)
		}
		sum += v
	}
	return sum, nil
}

// machineTicks is the busy and total time of all CPUs from the first line
// of /proc/stat: busy is user, nice, system, irq, softirq and steal; total
// adds idle and iowait.
func machineTicks() (busy, total uint64, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseMachineTicks(string(data))
}

func parseMachineTicks(stat string) (busy, total uint64, err error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: first line %q, want cpu and 8 counters", line)
	}
	var v [8]uint64 // user nice system idle iowait irq softirq steal
	for i := range v {
		if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
	}
	busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
	return busy, busy + v[3] + v[4], nil
}

// cpuSample is the CPU time of the processes watched (the agents of an
// arm's two nodes) and of the machine at one moment.
type cpuSample struct {
	at          time.Time
	pids        []int
	procs       []uint64
	machineBusy uint64
}

func sampleCPU(pids []int) (cpuSample, error) {
	s := cpuSample{at: time.Now(), pids: pids}
	for _, pid := range pids {
		t, err := processTicks(pid)
		if err != nil {
			return s, fmt.Errorf("CPU time of pid %d: %w", pid, err)
		}
		s.procs = append(s.procs, t)
	}
	var err error
	s.machineBusy, _, err = machineTicks()
	return s, err
}

// cpuUse is what happened between two samples, in CPUs (CPU-seconds per
// second): the watched processes together, and the whole machine.
type cpuUse struct{ procs, machine float64 }

func since(a, b cpuSample) (cpuUse, error) {
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 || len(a.pids) != len(b.pids) {
		return cpuUse{}, fmt.Errorf("samples %s apart of %d and %d processes", b.at.Sub(a.at), len(a.pids), len(b.pids))
	}
	var d uint64
	for i := range a.pids {
		if a.pids[i] != b.pids[i] || b.procs[i] < a.procs[i] {
			return cpuUse{}, fmt.Errorf("process %d was replaced by %d between the samples", a.pids[i], b.pids[i])
		}
		d += b.procs[i] - a.procs[i]
	}
	return cpuUse{procs: float64(d) / userHZ / secs, machine: float64(b.machineBusy-a.machineBusy) / userHZ / secs}, nil
}
