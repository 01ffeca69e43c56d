package flow

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// fakeAPIServer answers GET /api/v1/nodes with nodes and forwards
// /api/v1/nodes/NODE:10249/proxy/flows to that node's ring, as the API
// server's node proxy does; a node without a ring answers 503.
func fakeAPIServer(t *testing.T, rings map[string]*Ring, nodes ...string) kubernetes.Interface {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/nodes", func(w http.ResponseWriter, _ *http.Request) {
		l := v1.NodeList{TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"}}
		for _, n := range nodes {
			l.Items = append(l.Items, v1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(l)
	})
	mux.HandleFunc("/api/v1/nodes/{target}/proxy/flows", func(w http.ResponseWriter, r *http.Request) {
		node, port, _ := strings.Cut(r.PathValue("target"), ":")
		if g := rings[node]; g != nil && port == "10249" {
			Handler(g).ServeHTTP(w, r)
			return
		}
		http.Error(w, "no agent", http.StatusServiceUnavailable)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestReadMergesNodesByTimeAndNamesTheSilentOnes: records of two nodes
// come back in time order, the newest Last of them overall; a node whose
// agent does not answer is named.
func TestReadMergesNodesByTimeAndNamesTheSilentOnes(t *testing.T) {
	a, b := NewRing(16, nil), NewRing(16, nil)
	for _, i := range []int{1, 3, 5} {
		a.Add(rec(i, Forwarded))
	}
	for _, i := range []int{2, 4, 6} {
		r := rec(i, Dropped)
		r.Node = "node-2"
		b.Add(r)
	}
	cs := fakeAPIServer(t, map[string]*Ring{"node-1": a, "node-2": b}, "node-1", "node-2", "node-3")
	got, bad, err := Read(context.Background(), cs, Query{Port: 10249, Last: 4})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ports(got), []int{3, 4, 5, 6}) {
		t.Errorf("merged %v, want the newest four in time order", ports(got))
	}
	if len(bad) != 1 || bad[0].Node != "node-3" {
		t.Errorf("silent nodes %v, want node-3", bad)
	}
	got, _, _ = Read(context.Background(), cs, Query{Port: 10249, Nodes: []string{"node-2"}, Filter: Filter{Verdict: Dropped}})
	if !slices.Equal(ports(got), []int{2, 4, 6}) {
		t.Errorf("node-2's drops: %v", ports(got))
	}
}

// TestFollowStreamsEveryNode: after the backlog, records added on any node
// arrive.
func TestFollowStreamsEveryNode(t *testing.T) {
	a, b := NewRing(16, nil), NewRing(16, nil)
	a.Add(rec(1, Forwarded))
	cs := fakeAPIServer(t, map[string]*Ring{"node-1": a, "node-2": b}, "node-1", "node-2")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make(chan Record)
	go func() {
		_ = Follow(ctx, cs, Query{Port: 10249}, out, func(e NodeError) { t.Errorf("node error %v", e) })
	}()
	if r := <-out; r.Destination.Port != 1 {
		t.Fatalf("first %v, want the backlog", r.Destination.Port)
	}
	// node-2's stream may open later than node-1's: add to it until a
	// record arrives from there.
	a.Add(rec(2, Forwarded))
	seen := []int{1}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !slices.Contains(seen, 2) || !slices.Contains(seen, 3) {
		select {
		case r := <-out:
			if !slices.Contains(seen, int(r.Destination.Port)) {
				seen = append(seen, int(r.Destination.Port))
			}
		case <-tick.C:
			b.Add(rec(3, Dropped))
		case <-ctx.Done():
			t.Fatalf("saw %v before the timeout", seen)
		}
	}
	slices.Sort(seen)
	if !slices.Equal(seen, []int{1, 2, 3}) {
		t.Errorf("followed %v", seen)
	}
}
