package policy

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/record"

	"github.com/podnet/podnet/internal/controller"
	"github.com/podnet/podnet/internal/policy/status"
)

// ControllerConfig configures NetworkPolicy enforcement on one node.
type ControllerConfig struct {
	NodeName string
	// Status, when set, records after every sync which version of each
	// policy is in force (package policy/status).
	Status *status.Tracker
}

// NewController returns the policy enforcer: it reads Pods, Namespaces and
// NetworkPolicies, compiles them all at every sync and writes this node's
// part in one transaction. A policy it cannot use as written gets a
// PolicyNotApplied Warning Event (written with d.Client; the recorder stops
// when ctx ends).
func NewController(ctx context.Context, d controller.Deps, m *Metrics, cfg ControllerConfig) (*controller.Controller, error) {
	nft, err := NewNFT()
	if err != nil {
		return nil, fmt.Errorf("policy: nftables: %w", err)
	}
	pods := d.Factory.Core().V1().Pods()
	namespaces := d.Factory.Core().V1().Namespaces()
	policies := d.Factory.Networking().V1().NetworkPolicies()
	s := &policySync{
		node: cfg.NodeName, pods: pods.Lister(), namespaces: namespaces.Lister(), policies: policies.Lister(),
		syncer: NewSyncer(nft), metrics: m, log: d.Logger("policy"),
		recorder: controller.NewEventRecorder(ctx, d.Client, "podnet-agent", cfg.NodeName), status: cfg.Status,
		lastGood: map[string]*networkingv1.NetworkPolicy{}, reported: map[string]string{},
	}
	return controller.New(d, controller.Spec{
		Name:          "policy",
		Sources:       []controller.Source{{Informer: pods.Informer()}, {Informer: namespaces.Informer()}, {Informer: policies.Informer()}},
		Sync:          s.sync,
		MinInterval:   20 * time.Millisecond,
		MaxInterval:   time.Minute,
		FailureEffect: "the previous rules stay",
	})
}

// policySync is the enforcer's sync and what it keeps between syncs.
type policySync struct {
	// set at construction, read-only
	node       string
	pods       corelisters.PodLister
	namespaces corelisters.NamespaceLister
	policies   networkinglisters.NetworkPolicyLister
	syncer     *Syncer
	metrics    *Metrics
	log        *slog.Logger
	recorder   record.EventRecorder
	status     *status.Tracker // nil: not recorded

	// owned by the one sync at a time: lastGood keeps, per policy, the
	// last version the compiler could use whole; reported remembers which
	// bad versions were already reported.
	lastGood map[string]*networkingv1.NetworkPolicy
	reported map[string]string
}

func (s *policySync) sync(ctx context.Context) error {
	start := time.Now()
	pods, namespaces, npObjs, err := s.list()
	if err != nil {
		return err
	}
	problems := map[string]string{}
	nps, unusable := usablePolicies(npObjs, s.lastGood, func(np *networkingv1.NetworkPolicy, err error, fallback bool) {
		problems[np.Namespace+"/"+np.Name] = err.Error()
		s.report(np, err, fallback)
	})
	s.metrics.Unusable.Set(float64(unusable))
	c, _ := Compile(nps, pods, namespaces)
	want := Render(c, s.node)
	res, err := s.syncer.Sync(ctx, want)
	if err != nil {
		s.status.Failed(time.Now(), npObjs, err)
		return err
	}
	s.status.Committed(time.Now(), npObjs, nps, problems)
	s.metrics.observe(res, want, time.Since(start))
	s.log.Debug("synced", "policies", len(nps), "operations", res.Operations, "took", time.Since(start))
	return nil
}

// list reads the pods, namespaces and policies from the listers.
func (s *policySync) list() ([]*Pod, []*Namespace, []*networkingv1.NetworkPolicy, error) {
	podObjs, err := s.pods.List(labels.Everything())
	if err != nil {
		return nil, nil, nil, err
	}
	nsObjs, err := s.namespaces.List(labels.Everything())
	if err != nil {
		return nil, nil, nil, err
	}
	nps, err := s.policies.List(labels.Everything())
	if err != nil {
		return nil, nil, nil, err
	}
	var pods []*Pod
	for _, p := range podObjs {
		if pp := PodFrom(p); pp != nil {
			pods = append(pods, pp)
		}
	}
	namespaces := make([]*Namespace, 0, len(nsObjs))
	for _, ns := range nsObjs {
		namespaces = append(namespaces, NamespaceFrom(ns))
	}
	return pods, namespaces, nps, nil
}

// report tells, once per version, that np is not used as written: an error
// log line and a PolicyNotApplied Warning Event on the policy.
func (s *policySync) report(np *networkingv1.NetworkPolicy, err error, fallback bool) {
	key := np.Namespace + "/" + np.Name
	if s.reported[key] == np.ResourceVersion {
		return
	}
	s.reported[key] = np.ResourceVersion
	what := "its usable part applies; what cannot be parsed matches nothing"
	if fallback {
		what = "its last good version stays in force"
	}
	s.log.Error("NetworkPolicy cannot be applied as written", "policy", key, "err", err, "effect", what)
	s.recorder.Eventf(np, v1.EventTypeWarning, "PolicyNotApplied", "podnet on %s cannot apply this policy as written (%v); %s", s.node, err, what)
}

// usablePolicies returns the policies to compile, out[i] for nps[i]
// (status.Tracker.Committed relies on that order): each as written when the
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
		if err := Validate(np); err != nil {
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
