package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/podnet/podnet/internal/runner"
)

// Deps are what the process that assembles the controllers hands to each
// constructor.
type Deps struct {
	// Client is for writes (Events, status); reads go through Factory.
	Client kubernetes.Interface
	// Factory gives the shared informers; the assembler starts it after
	// every controller was constructed.
	Factory informers.SharedInformerFactory
	// Metrics are the common metrics of the process's controllers.
	Metrics *Metrics
	Log     *slog.Logger
}

// Logger returns d.Log (slog's default when nil) for the controller name.
func (d Deps) Logger(name string) *slog.Logger {
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	return log.With("controller", name)
}

// Source is one informer a controller reads.
type Source struct {
	Informer cache.SharedIndexInformer
	// Key, optional, names what an event changed (e.g. a Service's
	// namespace/name); the controller passes it to Spec.Mark. It gets the
	// object, never a tombstone; "" marks nothing. Without Key, events
	// only poke the runner.
	Key func(obj any) string
	// Ignore, optional, drops an update that changes nothing Sync reads
	// (e.g. a Node's heartbeat for a controller that reads its pod
	// CIDRs): it returns true when old and cur are the same for it.
	Ignore func(old, cur any) bool
}

// Spec says what a controller is.
type Spec struct {
	// Name names the controller in logs, in the common metrics' controller
	// label and in /healthz/<Name>.
	Name string
	// Sources are every informer Sync reads (see the package doc).
	Sources []Source
	// Mark records a changed key (required when a Source has a Key). It
	// runs on informer goroutines.
	Mark func(key string)
	// Sync computes the whole desired state from the listers and applies
	// it. An error is counted and the sync retried with backoff.
	Sync func(ctx context.Context) error
	// MinInterval bounds how often Sync runs; MaxInterval (0: never)
	// forces a periodic sync, a full reconcile.
	MinInterval, MaxInterval time.Duration
	// FailureEffect says in the error log what a failed sync leaves behind
	// (e.g. "the previous rules stay").
	FailureEffect string
}

// Controller runs one Spec.
type Controller struct {
	// set at construction, read-only
	spec        Spec
	log         *slog.Logger
	synced      []cache.InformerSynced
	runner      *runner.Runner
	duration    prometheus.Observer
	failures    prometheus.Counter
	lastSuccess prometheus.Gauge

	health health
}

// New checks s, registers its handlers on its informers and returns the
// controller; Run starts it.
func New(d Deps, s Spec) (*Controller, error) {
	if err := s.validate(d); err != nil {
		return nil, err
	}
	if err := d.Metrics.claim(s.Name); err != nil {
		return nil, err
	}
	c := &Controller{
		spec: s, log: d.Logger(s.Name),
		duration:    d.Metrics.SyncDuration.WithLabelValues(s.Name),
		failures:    d.Metrics.SyncFailures.WithLabelValues(s.Name),
		lastSuccess: d.Metrics.LastSuccess.WithLabelValues(s.Name),
	}
	c.runner = runner.New(s.Name, c.sync, s.MinInterval, s.MaxInterval, func(err error) {
		c.log.Error("sync failed; will retry", "err", err, "effect", s.FailureEffect)
	})
	for _, src := range s.Sources {
		reg, err := src.Informer.AddEventHandler(c.handler(src))
		if err != nil {
			return nil, fmt.Errorf("controller %s: informer handler: %w", s.Name, err)
		}
		c.synced = append(c.synced, reg.HasSynced)
	}
	return c, nil
}

func (s *Spec) validate(d Deps) error {
	var errs []error
	if s.Name == "" {
		errs = append(errs, errors.New("no name"))
	}
	if s.Sync == nil {
		errs = append(errs, errors.New("no sync function"))
	}
	if len(s.Sources) == 0 {
		errs = append(errs, errors.New("no informer"))
	}
	for _, src := range s.Sources {
		if src.Informer == nil {
			errs = append(errs, errors.New("a source without informer"))
		}
		if src.Key != nil && s.Mark == nil {
			errs = append(errs, errors.New("a source has a Key but the spec no Mark"))
		}
	}
	if d.Metrics == nil {
		errs = append(errs, errors.New("no metrics"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("controller %q: %w", s.Name, err)
	}
	return nil
}

// handler records what an event changed and pokes the runner; it does no
// other work.
func (c *Controller) handler(src Source) cache.ResourceEventHandler {
	key := src.Key
	changed := func(objs ...any) {
		if key != nil {
			for _, o := range objs {
				if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
					o = t.Obj
				}
				if k := key(o); k != "" {
					c.spec.Mark(k)
				}
			}
		}
		c.health.changed(time.Now())
		c.runner.Poke()
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { changed(obj) },
		// An object may move to another key (a slice to another
		// Service): both keys changed.
		UpdateFunc: func(old, obj any) {
			if src.Ignore != nil && src.Ignore(old, obj) {
				return
			}
			changed(old, obj)
		},
		DeleteFunc: func(obj any) { changed(obj) },
	}
}

// Name returns the controller's name.
func (c *Controller) Name() string { return c.spec.Name }

// Run waits until every informer of the controller has synced and its
// handlers have seen their initial lists, then syncs until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	c.log.Info("waiting for informers to sync")
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return // ctx ended first
	}
	c.log.Info("informers synced; running")
	c.runner.Run(ctx)
}

// sync runs Spec.Sync once and accounts for it.
func (c *Controller) sync(ctx context.Context) error {
	start := time.Now()
	err := c.spec.Sync(ctx)
	now := time.Now()
	c.duration.Observe(now.Sub(start).Seconds())
	if err != nil {
		c.failures.Inc()
		return err
	}
	c.lastSuccess.Set(float64(now.UnixNano()) / 1e9)
	c.health.synced(start, now)
	return nil
}

// Healthy reports whether syncs keep up with changes, and a line saying
// why: unhealthy once a change has waited longer than StallAfter for a
// successful sync.
func (c *Controller) Healthy(now time.Time) (bool, string) { return c.health.healthy(now) }

// Ready reports whether the controller has applied its desired state at
// least once since it started (a successful sync) and keeps up (Healthy):
// what a readiness probe means by "its rules are installed".
func (c *Controller) Ready(now time.Time) (bool, string) { return c.health.ready(now) }

// SameVersion is an Ignore for sources whose every update matters: it
// drops only the updates that deliver an object unchanged, the informer's
// periodic resync (the very object again) and a relist after a lost watch
// (an object of the same resourceVersion). Without it, a resync marks
// every key and the next sync rebuilds the whole cluster.
func SameVersion(old, cur any) bool {
	if old == cur {
		return true
	}
	o, err := meta.Accessor(old)
	if err != nil {
		return false
	}
	c, err := meta.Accessor(cur)
	if err != nil {
		return false
	}
	return o.GetResourceVersion() != "" && o.GetResourceVersion() == c.GetResourceVersion()
}
