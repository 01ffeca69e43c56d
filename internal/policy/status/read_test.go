package status

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// fakeAPI is an API server with two nodes behind its node proxy: node-1's
// agent enforces prod/web, node-2's has policy enforcement off (404).
func fakeAPI(t *testing.T) kubernetes.Interface {
	t.Helper()
	web := np("web", "10", 1)
	tr := NewTracker("node-1")
	tr.Committed(at(1), list(web), list(web), nil)
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/nodes", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, v1.NodeList{Items: []v1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}, {ObjectMeta: metav1.ObjectMeta{Name: "node-2"}}}})
	})
	mux.HandleFunc("/apis/networking.k8s.io/v1/networkpolicies", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, networkingv1.NetworkPolicyList{Items: []networkingv1.NetworkPolicy{*web}})
	})
	mux.Handle("/api/v1/nodes/node-1:10249/proxy"+Path, tr)
	mux.Handle("/api/v1/nodes/node-2:10249/proxy"+Path, (*Tracker)(nil))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func TestReadJoinsTheAgentsThroughTheNodeProxy(t *testing.T) {
	rows, err := Read(context.Background(), fakeAPI(t), 10249, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || len(rows[0].Nodes) != 2 {
		t.Fatalf("rows %+v, want prod/web on two nodes", rows)
	}
	n1, n2 := rows[0].Nodes[0], rows[0].Nodes[1]
	if n1.Node != "node-1" || n1.State != InForce || !n1.Since.Equal(at(1)) {
		t.Errorf("node-1: %+v, want InForce since %v", n1, at(1))
	}
	if n2.Node != "node-2" || n2.State != Unknown || !strings.Contains(n2.Error, "enforcement is off") {
		t.Errorf("node-2: %+v, want Unknown because enforcement is off there", n2)
	}
}
