package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Fixtures: policies live in namespace "prod"; uid-<name> is a policy's
// UID; resourceVersions grow with every write, generations with every
// spec change, as the API server does.

func np(name, rv string, gen int64) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: name,
		UID: types.UID("uid-" + name), ResourceVersion: rv, Generation: gen}}
}

func list(nps ...*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy { return nps }

var t0 = time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

// state returns node's state for policy name in the aggregate of api and
// the views.
func state(t *testing.T, api *networkingv1.NetworkPolicy, views ...NodeView) []NodeStatus {
	t.Helper()
	rows := Aggregate([]networkingv1.NetworkPolicy{*api}, views, nil)
	if len(rows) != 1 {
		t.Fatalf("%d rows for one policy", len(rows))
	}
	return rows[0].Nodes
}

func TestANewPolicyIsInForceSinceTheCommitThatWroteIt(t *testing.T) {
	tr := NewTracker("node-1")
	web := np("web", "10", 1)
	tr.Committed(at(1), list(web), list(web), nil)
	got := state(t, web, tr.View(""))[0]
	if got.State != InForce || !got.Since.Equal(at(1)) || got.InForce.Generation != 1 {
		t.Errorf("got %+v, want InForce since %v", got, at(1))
	}
}

func TestALabelChangeKeepsTheTimeInForce(t *testing.T) {
	tr := NewTracker("node-1")
	tr.Committed(at(1), list(np("web", "10", 1)), list(np("web", "10", 1)), nil)
	relabeled := np("web", "11", 1)
	tr.Committed(at(2), list(relabeled), list(relabeled), nil)
	got := state(t, relabeled, tr.View(""))[0]
	if got.State != InForce || !got.Since.Equal(at(1)) || got.InForce.ResourceVersion != "11" {
		t.Errorf("got %+v, want InForce at resourceVersion 11 since %v", got, at(1))
	}
}

func TestANewGenerationLagsUntilTheNodeCommitsIt(t *testing.T) {
	tr := NewTracker("node-1")
	tr.Committed(at(1), list(np("web", "10", 1)), list(np("web", "10", 1)), nil)
	updated := np("web", "12", 2)
	if got := state(t, updated, tr.View(""))[0]; got.State != Lagging || got.InForce.Generation != 1 {
		t.Errorf("before the node's sync: %+v, want Lagging at generation 1", got)
	}
	tr.Committed(at(3), list(updated), list(updated), nil)
	if got := state(t, updated, tr.View(""))[0]; got.State != InForce || !got.Since.Equal(at(3)) {
		t.Errorf("after it: %+v, want InForce since %v", got, at(3))
	}
}

func TestAnUnusableUpdateFailsWithTheLastGoodVersionInForce(t *testing.T) {
	tr := NewTracker("node-1")
	good, bad := np("web", "10", 1), np("web", "12", 2)
	tr.Committed(at(1), list(good), list(good), nil)
	tr.Committed(at(2), list(bad), list(good), map[string]string{"prod/web": "invalid CIDR"})
	got := state(t, bad, tr.View(""))[0]
	if got.State != Failed || got.Error != "invalid CIDR" || got.InForce.Generation != 1 || !got.Since.Equal(at(1)) {
		t.Errorf("got %+v, want Failed with generation 1 in force since %v", got, at(1))
	}
}

func TestAnUnusableNewPolicyIsPartial(t *testing.T) {
	tr := NewTracker("node-1")
	bad := np("web", "10", 1)
	tr.Committed(at(1), list(bad), list(bad), map[string]string{"prod/web": "invalid CIDR"})
	if got := state(t, bad, tr.View(""))[0]; got.State != Partial || got.Error != "invalid CIDR" {
		t.Errorf("got %+v, want Partial with the error", got)
	}
}

func TestAFailedSyncKeepsTheOldVersionAndSaysWhy(t *testing.T) {
	tr := NewTracker("node-1")
	tr.Committed(at(1), list(np("web", "10", 1)), list(np("web", "10", 1)), nil)
	updated, fresh := np("web", "12", 2), np("db", "13", 1)
	tr.Failed(at(2), list(updated, fresh), errors.New("nftables transaction: boom"))
	v := tr.View("")
	if got := state(t, updated, v)[0]; got.State != Failed || got.InForce.Generation != 1 || got.Error != "last sync failed: nftables transaction: boom" {
		t.Errorf("an updated policy: %+v, want Failed with generation 1 in force and the error", got)
	}
	if got := state(t, fresh, v)[0]; got.State != Failed || got.InForce != nil {
		t.Errorf("a new policy: %+v, want Failed, nothing in force", got)
	}
	// The next successful sync clears the error.
	tr.Committed(at(3), list(updated, fresh), list(updated, fresh), nil)
	if got := state(t, updated, tr.View(""))[0]; got.State != InForce || got.Error != "" {
		t.Errorf("after a good sync: %+v, want InForce", got)
	}
}

func TestADeletedAndRecreatedPolicyIsANewOne(t *testing.T) {
	tr := NewTracker("node-1")
	old := np("web", "10", 1)
	tr.Committed(at(1), list(old), list(old), nil)
	again := np("web", "20", 1)
	again.UID = "uid-web-again"
	if got := state(t, again, tr.View(""))[0]; got.State != Lagging {
		t.Errorf("the node still enforces the deleted one: %+v, want Lagging", got)
	}
	tr.Committed(at(5), list(again), list(again), nil)
	if got := state(t, again, tr.View(""))[0]; got.State != InForce || !got.Since.Equal(at(5)) {
		t.Errorf("got %+v, want InForce since %v (not the deleted one's time)", got, at(5))
	}
}

func TestDeletedPoliciesAreForgotten(t *testing.T) {
	tr := NewTracker("node-1")
	tr.Committed(at(1), list(np("web", "10", 1), np("db", "11", 1)), list(np("web", "10", 1), np("db", "11", 1)), nil)
	tr.Committed(at(2), list(np("db", "11", 1)), list(np("db", "11", 1)), nil)
	if v := tr.View(""); len(v.Policies) != 1 || v.Policies[0].Name != "db" {
		t.Errorf("view keeps %+v, want only db", v.Policies)
	}
}

func TestEveryNodeAndUnreachableOnesAreListed(t *testing.T) {
	web := np("web", "10", 1)
	n1, n2 := NewTracker("node-1"), NewTracker("node-2")
	n1.Committed(at(1), list(web), list(web), nil)
	n2.Committed(at(4), list(web), list(web), nil)
	rows := Aggregate([]networkingv1.NetworkPolicy{*web}, []NodeView{n2.View(""), n1.View("")}, map[string]string{"node-0": "timeout"})
	got := rows[0]
	if len(got.Nodes) != 3 || got.Nodes[0].Node != "node-0" || got.Nodes[0].State != Unknown || got.Nodes[0].Error != "timeout" ||
		got.Nodes[1].Node != "node-1" || got.Nodes[2].Node != "node-2" {
		t.Fatalf("nodes %+v, want node-0 Unknown, node-1, node-2 in order", got.Nodes)
	}
	if got.InForceOn() != 2 || !got.Since().Equal(at(4)) {
		t.Errorf("in force on %d since %v, want 2 since %v (the later node)", got.InForceOn(), got.Since(), at(4))
	}
}

func TestTheHandlerServesOneNamespaceAsJSON(t *testing.T) {
	tr := NewTracker("node-1")
	other := np("web", "11", 1)
	other.Namespace = "dev"
	tr.Committed(at(1), list(np("web", "10", 1), other), list(np("web", "10", 1), other), nil)
	rec := httptest.NewRecorder()
	tr.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path+"?namespace=dev", nil))
	var v NodeView
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("%v: %s", err, rec.Body.String())
	}
	if v.Node != "node-1" || len(v.Policies) != 1 || v.Policies[0].Namespace != "dev" || !v.Policies[0].Since.Equal(at(1)) {
		t.Errorf("view %+v, want node-1 with dev/web only", v)
	}
	rec = httptest.NewRecorder()
	(*Tracker)(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path, nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("policy off: %d, want 404", rec.Code)
	}
}

func TestAPolicyDeletedDuringAFailedSyncStaysUntilASuccessfulOne(t *testing.T) {
	tr := NewTracker("node-1")
	web, db := np("web", "10", 1), np("db", "11", 1)
	tr.Committed(at(1), list(web, db), list(web, db), nil)
	tr.Failed(at(2), list(db), errors.New("boom"))
	if v := tr.View(""); len(v.Policies) != 2 {
		t.Errorf("after a failed sync: %d policies, want 2 (web's rules are still in the kernel)", len(v.Policies))
	}
	tr.Committed(at(3), list(db), list(db), nil)
	if v := tr.View(""); len(v.Policies) != 1 || v.Policies[0].Name != "db" {
		t.Errorf("after a good sync: %+v, want db only", v.Policies)
	}
}

func TestUsedVersionsAreMatchedByNameWhenNotAligned(t *testing.T) {
	tr := NewTracker("node-1")
	web, db := np("web", "10", 1), np("db", "11", 1)
	tr.Committed(at(1), list(web, db), list(db), nil)
	v := tr.View("")
	if len(v.Policies) != 2 || v.Policies[0].Name != "db" || v.Policies[0].InForce == nil || v.Policies[1].InForce != nil {
		t.Errorf("view %+v, want db in force and web not", v.Policies)
	}
}

// TestReadersAndTheSyncRunConcurrently is for the race detector: the HTTP
// handler reads while the sync records.
func TestReadersAndTheSyncRunConcurrently(t *testing.T) {
	tr := NewTracker("node-1")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			p := np("web", fmt.Sprint(i), int64(i+1))
			tr.Committed(at(i), list(p), list(p), nil)
		}
	}()
	for range 200 {
		rec := httptest.NewRecorder()
		tr.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path, nil))
	}
	<-done
}
