package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/knftables"

	"github.com/podnet/podnet/internal/flow"
	"github.com/podnet/podnet/internal/flow/logrule"
	"github.com/podnet/podnet/internal/policy"
	"github.com/podnet/podnet/internal/proxy"
)

// flows is the flow collector's part of the agent: the ring, the metrics
// and the view of the cluster it resolves names from.
type flows struct {
	ring    *flow.Ring
	metrics *flow.Metrics
	view    *viewCache
}

// newFlows returns the ring and the metrics; watch adds the view.
func newFlows() *flows {
	f := &flows{}
	var m *flow.Metrics
	f.ring = flow.NewRing(flow.RingSize, func() { m.Dropped.WithLabelValues(flow.LossSlowReader).Inc() })
	m = flow.NewMetrics(f.ring, tablesExcess)
	f.metrics = m
	return f
}

// watch declares the collector's informers on the factory (before it
// starts).
func (f *flows) watch(factory informers.SharedInformerFactory) { f.view = newViewCache(factory) }

// run runs the collector until ctx ends; a failure (a socket that cannot
// be opened, the NFLOG group bound by another process) is logged and
// retried.
func (f *flows) run(ctx context.Context, cfg Config, log *slog.Logger) {
	c := &flow.Collector{Node: cfg.NodeName, View: f.view.get, Ring: f.ring, Metrics: f.metrics, Log: log,
		Conntrack: !cfg.DisableFlowConntrack}
	delay := time.Second
	for ctx.Err() == nil {
		err := c.Run(ctx)
		if ctx.Err() != nil {
			return
		}
		log.Error("flow records stopped; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Minute)
	}
}

func (f *flows) handler() http.Handler { return flow.Handler(f.ring) }

// tablesExcess sums the flow log's rate-limit counters of the policy and
// proxy tables (a table that is absent counts nothing).
func tablesExcess(ctx context.Context) (uint64, error) {
	var sum uint64
	var errs []error
	for _, table := range []string{policy.Table, proxy.Table} {
		nft, err := knftables.New(knftables.InetFamily, table)
		if err != nil {
			return 0, err
		}
		cs, err := nft.ListCounters(ctx)
		if err != nil {
			if !knftables.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("%s: %w", table, err))
			}
			continue
		}
		for _, c := range cs {
			if c.Name == logrule.ExcessCounter && c.Packets != nil {
				sum += *c.Packets
			}
		}
	}
	return sum, errors.Join(errs...)
}

// viewCache keeps a flow.View of the informers' caches, rebuilt on use
// after a change, at most every viewMinAge.
type viewCache struct {
	// set at construction, read-only
	objects func() (flow.Objects, error)
	synced  []cache.InformerSynced

	dirty atomic.Bool
	mu    sync.Mutex // guards the fields below
	view  *flow.View
	built time.Time
}

const viewMinAge = 200 * time.Millisecond

func newViewCache(factory informers.SharedInformerFactory) *viewCache {
	pods, svcs := factory.Core().V1().Pods(), factory.Core().V1().Services()
	nss, nps := factory.Core().V1().Namespaces(), factory.Networking().V1().NetworkPolicies()
	v := &viewCache{}
	mark := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { v.dirty.Store(true) },
		UpdateFunc: func(any, any) { v.dirty.Store(true) },
		DeleteFunc: func(any) { v.dirty.Store(true) },
	}
	for _, inf := range []cache.SharedIndexInformer{pods.Informer(), svcs.Informer(), nss.Informer(), nps.Informer()} {
		_, _ = inf.AddEventHandler(mark)
		v.synced = append(v.synced, inf.HasSynced)
	}
	v.objects = func() (o flow.Objects, err error) {
		var errs [4]error
		o.Pods, errs[0] = pods.Lister().List(labels.Everything())
		o.Services, errs[1] = svcs.Lister().List(labels.Everything())
		o.Namespaces, errs[2] = nss.Lister().List(labels.Everything())
		o.Policies, errs[3] = nps.Lister().List(labels.Everything())
		return o, errors.Join(errs[:]...)
	}
	v.dirty.Store(true)
	return v
}

// get returns the current view; nil until every cache has synced.
func (v *viewCache) get() *flow.View {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.view != nil && (!v.dirty.Load() || time.Since(v.built) < viewMinAge) {
		return v.view
	}
	for _, s := range v.synced {
		if !s() {
			return nil
		}
	}
	v.dirty.Store(false)
	o, err := v.objects()
	if err != nil {
		return v.view
	}
	v.view, v.built = flow.NewView(o), time.Now()
	return v.view
}
