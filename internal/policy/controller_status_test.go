package policy

import (
	"context"
	"io"
	"log/slog"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/knftables"

	"github.com/podnet/podnet/internal/policy/status"
)

// TestTheSyncRecordsWhatItPutsInForce: the enforcer's sync tells its
// tracker which version of each policy its transaction wrote, and keeps
// the last good version in force (with the compiler's error) when an
// update cannot be used.
func TestTheSyncRecordsWhatItPutsInForce(t *testing.T) {
	factory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	policies := factory.Networking().V1().NetworkPolicies()
	tracker := status.NewTracker("node-1")
	s := &policySync{node: "node-1", pods: factory.Core().V1().Pods().Lister(),
		namespaces: factory.Core().V1().Namespaces().Lister(), policies: policies.Lister(),
		syncer: NewSyncer(knftables.NewFake(knftables.InetFamily, Table)), metrics: NewMetrics(),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), recorder: record.NewFakeRecorder(10), status: tracker,
		lastGood: map[string]*networkingv1.NetworkPolicy{}, reported: map[string]string{}}
	store := policies.Informer().GetStore()
	sync := func(np *networkingv1.NetworkPolicy) status.Policy {
		t.Helper()
		if err := store.Update(np); err != nil {
			t.Fatal(err)
		}
		if err := s.sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		v := tracker.View("")
		if len(v.Policies) != 1 || v.LastCommit.IsZero() {
			t.Fatalf("view %+v, want one policy and a commit time", v)
		}
		return v.Policies[0]
	}
	good := ipBlockPolicy("web", "1", "10.0.0.0/8")
	if p := sync(good); p.InForce == nil || p.InForce.ResourceVersion != "1" || p.Error != "" {
		t.Errorf("a good policy: %+v, want version 1 in force", p)
	}
	bad := ipBlockPolicy("web", "2", "10.0.0.0/33")
	p := sync(bad)
	if p.Seen.ResourceVersion != "2" || p.InForce == nil || p.InForce.ResourceVersion != "1" || p.Error == "" {
		t.Errorf("a bad update: %+v, want version 2 seen, version 1 in force and the compiler's error", p)
	}
}
