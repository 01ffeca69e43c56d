package flow

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/ti-mo/conntrack"
)

// Collector turns logged packets and conntrack events into records in a
// ring. Its sources (NFLOG, conntrack) run in the network namespace of the
// goroutine that calls Run.
type Collector struct {
	// Node is this node's name.
	Node string
	// View returns the current view of the cluster (nil before the
	// caches synced: records are then made without names).
	View    func() *View
	Ring    *Ring
	Metrics *Metrics
	Log     *slog.Logger
	// Conntrack turns on records of connections (conntrack events);
	// drops are always recorded.
	Conntrack bool
}

func (c *Collector) view() *View {
	if v := c.View(); v != nil {
		return v
	}
	return emptyView()
}

// emptyView knows no object: records made before the caches synced.
var emptyView = sync.OnceValue(func() *View { return NewView(Objects{}) })

// AddPacket records a logged packet.
func (c *Collector) AddPacket(p LoggedPacket) {
	r, err := FromPacket(c.Node, c.view(), p)
	if err != nil {
		c.Metrics.Dropped.WithLabelValues(LossUnparsable).Inc()
		c.Log.Debug("logged packet not recorded", "err", err)
		return
	}
	c.add(r)
}

// AddEvent records a conntrack event when it is a record.
func (c *Collector) AddEvent(now time.Time, ev conntrack.Event) {
	if r, ok := FromEvent(c.Node, c.view(), now, ev); ok {
		c.add(r)
	}
}

func (c *Collector) add(r Record) {
	c.Ring.Add(r)
	c.Metrics.Records.WithLabelValues(r.Verdict).Inc()
}

// Run reads NFLOG group logrule.Group (and conntrack events when
// c.Conntrack) until ctx ends. A socket that cannot be opened is an error;
// buffer overflows are counted and reading goes on.
func (c *Collector) Run(ctx context.Context) error {
	nf, err := OpenNFLOG()
	if err != nil {
		return err
	}
	if nf.ConntrackErr != nil {
		c.Log.Info("drops by policy after a Service's DNAT will not name the Service: the kernel attaches no conntrack entry to logged packets",
			"err", nf.ConntrackErr)
	}
	var ct *ConntrackEvents
	if c.Conntrack {
		if ct, err = OpenConntrackEvents(); err != nil {
			_ = nf.Close()
			return err
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		_ = nf.Close()
		if ct != nil {
			_ = ct.Close()
		}
	})
	errs := make(chan error, 2)
	wg.Go(func() { errs <- nf.Read(c.AddPacket, c.lost(LossNFLOGOverflow)) })
	if ct != nil {
		wg.Go(func() { errs <- ct.Read(c.AddEvent, c.lost(LossConntrackOverflow)) })
	}
	wg.Wait()
	close(errs)
	var all []error
	for e := range errs {
		if e != nil && ctx.Err() == nil {
			all = append(all, e)
		}
	}
	return errors.Join(all...)
}

func (c *Collector) lost(reason string) func() {
	return func() { c.Metrics.Dropped.WithLabelValues(reason).Inc() }
}
