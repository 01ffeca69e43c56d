package announce

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkFailover measures failover on the kernel fixture, one fresh
// fixture per iteration: the outage is the longest gap between replies to
// a client sending every 10 ms (last reply before → first reply after).
// Run it through bench/lbfailover (20 runs per kind, p50/p99/max).
func BenchmarkFailover(b *testing.B) {
	for _, kind := range []string{"crash", "graceful"} {
		b.Run(kind, func(b *testing.B) {
			var gaps []time.Duration
			lostTotal := 0
			for b.Loop() {
				gap, lost := failoverOnce(b, kind)
				gaps = append(gaps, gap)
				lostTotal += lost
			}
			slices.Sort(gaps)
			q := func(p float64) float64 { return gaps[min(len(gaps)-1, int(p*float64(len(gaps))))].Seconds() * 1000 }
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(gaps[len(gaps)-1].Seconds()*1000, "max-ms")
			b.ReportMetric(float64(lostTotal)/float64(len(gaps)), "lost/run")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// localCleanup runs the fixture's cleanups at the end of one iteration
// instead of the benchmark's.
type localCleanup struct {
	testing.TB
	fns []func()
}

func (l *localCleanup) Cleanup(f func()) { l.fns = append(l.fns, f) }

func (l *localCleanup) run() {
	for i := len(l.fns) - 1; i >= 0; i-- {
		l.fns[i]()
	}
}

func failoverOnce(b *testing.B, kind string) (time.Duration, int) {
	b.StopTimer()
	defer b.StartTimer()
	t := &localCleanup{TB: b}
	defer t.run()
	f := newL2Fix(t)
	as := [2]*Announcer{f.announcer(t, 0), f.announcer(t, 1)}
	o, x := f.owners()
	p := f.probe(t)
	p.waitNode(t, f.nodeName(o), time.Time{}, 3*time.Second)
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if kind == "crash" {
		as[o].Crash()
	} else if missing := as[o].Leave(2 * time.Second); len(missing) != 0 {
		b.Errorf("graceful: no ack from %v", missing)
	}
	f.linkDown(t, o)
	p.waitNode(t, f.nodeName(x), start, 3*time.Second)
	time.Sleep(200 * time.Millisecond)
	return outage(p.stop())
}
