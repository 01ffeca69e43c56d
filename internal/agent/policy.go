package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/podnet/podnet/internal/policy"
	"github.com/podnet/podnet/internal/runner"
)

// policyMetrics are the policy enforcer's metrics.
type policyMetrics struct {
	syncDuration *prometheus.HistogramVec
	failures     prometheus.Counter
	isolated     *prometheus.GaugeVec
	rejected     prometheus.Gauge
}

func newPolicyMetrics(r prometheus.Registerer) (*policyMetrics, error) {
	m := &policyMetrics{
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "podnet_policy_sync_duration_seconds",
			Help:    "Time to compile NetworkPolicies and program them, by kind (full, partial).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}, []string{"kind"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "podnet_policy_sync_failures_total",
			Help: "Policy syncs that failed (the previous rules stayed)."}),
		isolated: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "podnet_policy_isolated_pod_addresses",
			Help: "Addresses of this node's pods isolated, by direction."}, []string{"direction"}),
		rejected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "podnet_policy_unusable_policies",
			Help: "NetworkPolicies the agent could not use as they are (their last good version, or their usable part, applies)."}),
	}
	for _, c := range []prometheus.Collector{m.syncDuration, m.failures, m.isolated, m.rejected} {
		if err := r.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// newPolicyRunner wires Pods, Namespaces and NetworkPolicies to the policy
// enforcer: handlers poke the runner; the sync compiles everything from the
// listers and writes this node's part in one transaction.
func newPolicyRunner(ctx context.Context, cfg Config, client kubernetes.Interface, factory informers.SharedInformerFactory, health *syncHealth) (*runner.Runner, error) {
	nft, err := policy.NewNFT()
	if err != nil {
		return nil, fmt.Errorf("agent: nftables for policy: %w", err)
	}
	metrics, err := newPolicyMetrics(prometheus.DefaultRegisterer)
	if err != nil {
		return nil, err
	}
	syncer := policy.NewSyncer(nft)
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	recorder := broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "podnet-agent", Host: cfg.NodeName})
	go func() {
		<-ctx.Done()
		broadcaster.Shutdown()
	}()
	pods := factory.Core().V1().Pods()
	namespaces := factory.Core().V1().Namespaces()
	policies := factory.Networking().V1().NetworkPolicies()
	podLister, nsLister, npLister := pods.Lister(), namespaces.Lister(), policies.Lister()
	// lastGood keeps, per policy, the last version the compiler could use
	// whole; reported remembers which bad versions were already reported.
	lastGood := map[string]*networkingv1.NetworkPolicy{}
	reported := map[string]string{}
	sync := func(ctx context.Context) error {
		start := time.Now()
		podObjs, err := podLister.List(labels.Everything())
		if err != nil {
			return err
		}
		nsObjs, err := nsLister.List(labels.Everything())
		if err != nil {
			return err
		}
		npObjs, err := npLister.List(labels.Everything())
		if err != nil {
			return err
		}
		var ps []*policy.Pod
		for _, p := range podObjs {
			if pp := policy.PodFrom(p); pp != nil {
				ps = append(ps, pp)
			}
		}
		var nss []*policy.Namespace
		for _, ns := range nsObjs {
			nss = append(nss, policy.NamespaceFrom(ns))
		}
		nps, unusable := usablePolicies(npObjs, lastGood, func(np *networkingv1.NetworkPolicy, err error, fallback bool) {
			key := np.Namespace + "/" + np.Name
			if reported[key] == np.ResourceVersion {
				return
			}
			reported[key] = np.ResourceVersion
			what := "its usable part applies; what cannot be parsed matches nothing"
			if fallback {
				what = "its last good version stays in force"
			}
			cfg.Log.Error("NetworkPolicy cannot be applied as written", "policy", key, "err", err, "effect", what)
			recorder.Eventf(np, v1.EventTypeWarning, "PolicyNotApplied", "podnet on %s cannot apply this policy as written (%v); %s", cfg.NodeName, err, what)
		})
		metrics.rejected.Set(float64(unusable))
		c, _ := policy.Compile(nps, ps, nss)
		want := policy.Render(c, cfg.NodeName)
		res, err := syncer.Sync(ctx, want)
		if err != nil {
			metrics.failures.Inc()
			return err
		}
		kind := "partial"
		if res.Full {
			kind = "full"
		}
		metrics.syncDuration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
		for _, d := range []policy.Direction{policy.Ingress, policy.Egress} {
			metrics.isolated.WithLabelValues(d.String()).Set(float64(len(want[d.String()+"-isolated-v4"]) + len(want[d.String()+"-isolated-v6"])))
		}
		health.synced()
		cfg.Log.Debug("policy synced", "policies", len(nps), "operations", res.Operations, "took", time.Since(start))
		return nil
	}
	r := runner.New("policy", sync, 20*time.Millisecond, time.Minute, func(err error) {
		cfg.Log.Error("policy sync failed; the previous rules stay; will retry", "err", err)
	})
	poke := func() {
		health.changed()
		r.Poke()
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(_, _ any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	for _, inf := range []cache.SharedIndexInformer{pods.Informer(), namespaces.Informer(), policies.Informer()} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// usablePolicies returns the policies to compile: each as written when the
// compiler can use all of it, else its last good version when there is one,
// else as written (the parts that cannot be parsed match nothing, so it
// fails closed). report is called for every policy not used as written. It
// updates lastGood and drops the entries of deleted policies.
func usablePolicies(nps []*networkingv1.NetworkPolicy, lastGood map[string]*networkingv1.NetworkPolicy,
	report func(np *networkingv1.NetworkPolicy, err error, fallback bool)) ([]*networkingv1.NetworkPolicy, int) {
	out := make([]*networkingv1.NetworkPolicy, 0, len(nps))
	live := map[string]bool{}
	unusable := 0
	for _, np := range nps {
		key := np.Namespace + "/" + np.Name
		live[key] = true
		if err := policy.Validate(np); err != nil {
			unusable++
			if good := lastGood[key]; good != nil {
				report(np, err, true)
				out = append(out, good)
				continue
			}
			report(np, err, false)
			out = append(out, np)
			continue
		}
		lastGood[key] = np
		out = append(out, np)
	}
	for key := range lastGood {
		if !live[key] {
			delete(lastGood, key)
		}
	}
	return out, unusable
}
