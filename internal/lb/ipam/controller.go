package ipam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/podnet/podnet/internal/controller"
	"github.com/podnet/podnet/internal/lb/pool"
)

// ConditionAssigned is the Service status condition podnet writes: True
// with the addresses, or False with why the Service is pending.
const ConditionAssigned = "lb.podnet.io/AddressAssigned"

// ControllerName names the controller in logs, metrics and /healthz.
const ControllerName = "lb-ipam"

// Controller keeps every served Service's status.loadBalancer.ingress and
// every pool's status true to Allocate.
type Controller struct {
	// set at construction, read-only
	deps     controller.Deps
	dyn      dynamic.Interface
	pools    cache.SharedIndexInformer
	recorder record.EventRecorder
	metrics  *Metrics
	log      *slog.Logger
	ctl      *controller.Controller

	// mu guards written: the status this controller wrote last, by
	// Service UID, until the informer's copy has it (same
	// resourceVersion); a sync in between reads it from here, so a
	// stale cache never makes an address look free.
	mu      sync.Mutex
	written map[types.UID]*v1.Service
}

// NewController declares the controller over d's Services and Namespaces
// and the pools' dynamic informer.
func NewController(d controller.Deps, dyn dynamic.Interface, pools cache.SharedIndexInformer,
	recorder record.EventRecorder, m *Metrics) (*Controller, error) {
	c := &Controller{deps: d, dyn: dyn, pools: pools, recorder: recorder, metrics: m,
		log: d.Logger(ControllerName), written: map[types.UID]*v1.Service{}}
	svcs := d.Factory.Core().V1().Services().Informer()
	nss := d.Factory.Core().V1().Namespaces().Informer()
	ctl, err := controller.New(d, controller.Spec{
		Name:    ControllerName,
		Sources: []controller.Source{{Informer: svcs}, {Informer: nss, Ignore: sameLabels}, {Informer: pools}},
		Sync:    c.sync, MinInterval: 100 * time.Millisecond, MaxInterval: 5 * time.Minute,
		FailureEffect: "Services keep the addresses in their status; new ones wait",
	})
	if err != nil {
		return nil, fmt.Errorf("lb ipam: %w", err)
	}
	c.ctl = ctl
	return c, nil
}

// Run runs the controller until ctx ends.
func (c *Controller) Run(ctx context.Context) { c.ctl.Run(ctx) }

// Healthy is the controller's health (see controller.Controller).
func (c *Controller) Healthy(now time.Time) (bool, string) { return c.ctl.Healthy(now) }

// sameLabels ignores Namespace updates that keep the labels (the only
// thing pools' namespace selectors read).
func sameLabels(old, cur any) bool {
	o, ok1 := old.(*v1.Namespace)
	n, ok2 := cur.(*v1.Namespace)
	return ok1 && ok2 && labels.Equals(o.Labels, n.Labels)
}

// sync allocates from the listers and writes what changed.
func (c *Controller) sync(ctx context.Context) error {
	pools, objs, err := c.listPools()
	if err != nil {
		return err
	}
	svcs, inputs, err := c.listServices()
	if err != nil {
		return err
	}
	res := Allocate(pools, inputs)
	var errs []error
	for _, svc := range svcs {
		if err := c.writeService(ctx, svc, res); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range objs {
		if err := c.writePool(ctx, p, res.Usage[p.Name]); err != nil {
			errs = append(errs, err)
		}
	}
	c.count(res)
	return errors.Join(errs...)
}

// listPools returns the pools for Allocate and as objects (for status).
func (c *Controller) listPools() ([]Pool, []*pool.Pool, error) {
	var pools []Pool
	var objs []*pool.Pool
	for _, o := range c.pools.GetStore().List() {
		p, err := pool.FromObject(o)
		if err != nil {
			c.log.Error("pool left out", "err", err)
			continue
		}
		ranges, problems := p.Ranges()
		in := Pool{Name: p.Name, Ranges: ranges, AutoAssign: p.AutoAssigns()}
		if in.Services, err = selector(p.Spec.ServiceSelector); err == nil {
			in.Namespaces, err = selector(p.Spec.NamespaceSelector)
		}
		if err != nil {
			problems = append(problems, err.Error())
			in.Ranges = nil // a pool whose selector cannot be read serves nobody
		}
		setValid(p, problems)
		pools, objs = append(pools, in), append(objs, p)
	}
	return pools, objs, nil
}

func selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return nil, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return nil, fmt.Errorf("selector: %w", err)
	}
	return sel, nil
}

// setValid sets p's Valid condition from its problems.
func setValid(p *pool.Pool, problems []string) {
	cond := metav1.Condition{Type: pool.ConditionValid, Status: metav1.ConditionTrue, Reason: "Valid",
		Message: "every block is usable", ObservedGeneration: p.Generation}
	if len(problems) > 0 {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "InvalidBlocks",
			strings.Join(problems, "; ")+" (left out; the rest of the pool serves)"
	}
	meta.SetStatusCondition(&p.Status.Conditions, cond)
}

// listServices returns every Service and what Allocate reads of the
// served ones, their status as this controller last wrote it.
func (c *Controller) listServices() ([]*v1.Service, []Service, error) {
	all, err := c.deps.Factory.Core().V1().Services().Lister().List(labels.Everything())
	if err != nil {
		return nil, nil, fmt.Errorf("list services: %w", err)
	}
	nsLister := c.deps.Factory.Core().V1().Namespaces().Lister()
	c.mu.Lock()
	defer c.mu.Unlock()
	live := map[types.UID]bool{}
	var svcs []*v1.Service
	var inputs []Service
	for _, svc := range all {
		live[svc.UID] = true
		if w, ok := c.written[svc.UID]; ok {
			if w.ResourceVersion == svc.ResourceVersion || equality.Semantic.DeepEqual(w.Status, svc.Status) {
				delete(c.written, svc.UID) // the cache has our write
			} else {
				svc = svc.DeepCopy()
				svc.Status = w.Status
			}
		}
		svcs = append(svcs, svc)
		var nsLabels map[string]string
		if ns, err := nsLister.Get(svc.Namespace); err == nil {
			nsLabels = ns.Labels
		}
		if in, ok := FromService(svc, nsLabels); ok {
			inputs = append(inputs, in)
		}
	}
	for uid := range c.written {
		if !live[uid] {
			delete(c.written, uid)
		}
	}
	return svcs, inputs, nil
}
