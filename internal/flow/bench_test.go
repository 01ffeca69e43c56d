package flow

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/podnet/podnet/internal/netns"
)

// BenchmarkFromEvent is the collector's cost per connection record: the
// view's lookups and the policy evaluator.
func BenchmarkFromEvent(b *testing.B) {
	v := testView()
	ev := ctEvent("new", "10.244.1.20", 40002, "10.96.0.20", 80, "10.244.2.10", 8080)
	for b.Loop() {
		if _, ok := FromEvent("node-1", v, t0, ev); !ok {
			b.Fatal("no record")
		}
	}
}

// BenchmarkKernelConnectionsWithRecords: TCP connect, one byte, close
// from a pod address to the node in a fresh namespace, without and with
// the collector reading conntrack events (every connection a record):
// what flow records cost a node in new connections per second.
func BenchmarkKernelConnectionsWithRecords(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "records-off"
		if on {
			name = "records-on"
		}
		b.Run(name, func(b *testing.B) {
			path := kernelNode(b)
			// The policy table (no policy) turns conntrack on, as on a node.
			o := denyEgressWorld()
			o.Policies = nil // every connection allowed, and recorded
			loadPolicy(b, path, o)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var ln net.Listener
			if err := netns.Do(path, func() (err error) { ln, err = net.Listen("tcp", "10.244.1.99:8080"); return err }); err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
				}
			}()
			ring := NewRing(RingSize, nil)
			view := NewView(o)
			if on {
				m := NewMetrics(ring, nil)
				c := &Collector{Node: "node-1", View: func() *View { return view }, Ring: ring, Metrics: m,
					Log: slog.New(slog.DiscardHandler), Conntrack: true}
				errc := make(chan error, 1)
				go func() { errc <- netns.Do(path, func() error { return c.Run(ctx) }) }()
				defer func() { cancel(); <-errc }()
				time.Sleep(100 * time.Millisecond)
			}
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("10.244.1.20")}}
			b.ResetTimer()
			err := netns.Do(path, func() error {
				for b.Loop() {
					c, err := d.Dial("tcp", "10.244.1.99:8080")
					if err != nil {
						return err
					}
					_, _ = c.Write([]byte{1})
					_ = c.(*net.TCPConn).SetLinger(0) // a reset, no TIME_WAIT to run out of ports
					c.Close()
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conn/s")
			if on {
				time.Sleep(200 * time.Millisecond)
				b.ReportMetric(float64(ring.Len()), "records-held")
			}
		})
	}
}
