package ipam

import (
	"context"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/podnet/podnet/internal/lb/pool"
)

// desiredStatus returns svc's status as res wants it, and whether podnet
// has anything to say about svc.
func desiredStatus(svc *v1.Service, res Result) (v1.ServiceStatus, bool) {
	st := *svc.Status.DeepCopy()
	key := svc.Namespace + "/" + svc.Name
	addrs, assigned := res.Assigned[key]
	pending, isPending := res.Pending[key]
	if !assigned && !isPending {
		// Not served (any more): take back what podnet wrote, if it did.
		if meta.FindStatusCondition(st.Conditions, ConditionAssigned) == nil {
			return st, false
		}
		meta.RemoveStatusCondition(&st.Conditions, ConditionAssigned)
		st.LoadBalancer.Ingress = nil
		return st, true
	}
	cond := metav1.Condition{Type: ConditionAssigned, ObservedGeneration: svc.Generation}
	st.LoadBalancer.Ingress = nil
	if assigned {
		var texts []string
		for _, a := range addrs {
			st.LoadBalancer.Ingress = append(st.LoadBalancer.Ingress, v1.LoadBalancerIngress{IP: a.String(), IPMode: ptr.To(v1.LoadBalancerIPModeVIP)})
			texts = append(texts, a.String())
		}
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, "Assigned", strings.Join(texts, ", ")
	} else {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, string(pending.Reason), pending.Message
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	return st, true
}

// writeService writes svc's status when res changes it, with an Event
// when its addresses or the reason it is pending change.
func (c *Controller) writeService(ctx context.Context, svc *v1.Service, res Result) error {
	st, ours := desiredStatus(svc, res)
	if !ours || equality.Semantic.DeepEqual(st, svc.Status) {
		return nil
	}
	before := meta.FindStatusCondition(svc.Status.Conditions, ConditionAssigned)
	next := svc.DeepCopy()
	next.Status = st
	out, err := c.deps.Client.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("service %s/%s status: %w", svc.Namespace, svc.Name, err)
	}
	c.metrics.StatusWrites.WithLabelValues("service").Inc()
	c.mu.Lock()
	c.written[out.UID] = out
	c.mu.Unlock()
	after := meta.FindStatusCondition(st.Conditions, ConditionAssigned)
	switch {
	case after == nil:
		c.log.Info("service no longer served; addresses released", "service", svc.Namespace+"/"+svc.Name)
	case before != nil && before.Status == after.Status && before.Reason == after.Reason && before.Message == after.Message:
	case after.Status == metav1.ConditionTrue:
		c.recorder.Eventf(out, v1.EventTypeNormal, "AddressAssigned", "LoadBalancer address %s assigned", after.Message)
		c.log.Info("addresses assigned", "service", svc.Namespace+"/"+svc.Name, "addresses", after.Message)
	default:
		c.recorder.Eventf(out, v1.EventTypeWarning, after.Reason, "no LoadBalancer address: %s", after.Message)
		c.log.Info("service pending", "service", svc.Namespace+"/"+svc.Name, "reason", after.Reason, "message", after.Message)
	}
	return nil
}

// writePool writes p's status when its usage or validity changed.
func (c *Controller) writePool(ctx context.Context, p *pool.Pool, u Usage) error {
	old, err := pool.FromObject(c.poolObject(p.Name))
	if err != nil {
		return err
	}
	p.Status.Used, p.Status.Free = u.Used, u.Free
	if equality.Semantic.DeepEqual(old.Status, p.Status) {
		return nil
	}
	if err := pool.UpdateStatus(ctx, c.dyn, p); err != nil {
		return err
	}
	c.metrics.StatusWrites.WithLabelValues("pool").Inc()
	return nil
}

// poolObject is the informer's copy of the pool called name.
func (c *Controller) poolObject(name string) any {
	o, _, _ := c.pools.GetStore().GetByKey(name)
	return o
}

// count sets the gauges from res.
func (c *Controller) count(res Result) {
	c.metrics.Services.WithLabelValues("assigned").Set(float64(len(res.Assigned)))
	c.metrics.Services.WithLabelValues("pending").Set(float64(len(res.Pending)))
	var used, free float64
	for _, u := range res.Usage {
		used += float64(u.Used)
		free += float64(u.Free)
	}
	c.metrics.Addresses.WithLabelValues("used").Set(used)
	c.metrics.Addresses.WithLabelValues("free").Set(free)
}
