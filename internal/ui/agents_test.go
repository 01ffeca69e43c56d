package ui

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// agentAPI is an API server with node n1 whose agent answers on port
// behind the node proxy; it records the paths asked.
func agentAPI(t *testing.T, port string) (kubernetes.Interface, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var paths []string
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		switch r.URL.Path {
		case "/api/v1/nodes":
			writeJSON(w, v1.NodeList{Items: []v1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}}})
		case "/apis/networking.k8s.io/v1/networkpolicies":
			writeJSON(w, networkingv1.NetworkPolicyList{})
		case "/api/v1/nodes/n1:" + port + "/proxy/flows":
			_, _ = w.Write([]byte(`{"time":"2026-01-02T03:04:05Z","node":"n1","event":"drop","verdict":"dropped","protocol":"TCP","source":{"ip":"10.160.1.7"},"destination":{"ip":"10.160.2.5"}}` + "\n"))
		case "/api/v1/nodes/n1:" + port + "/proxy/policy/status":
			writeJSON(w, map[string]any{"node": "n1"})
		default:
			http.NotFound(w, r)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return client, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), paths...) }
}

// The page reads the agents on the port it was given (10264 for deploy/'s
// DaemonSet), through the API server's node proxy, for flows and for
// policy status alike.
func TestAgentSourcesReadTheAgentsPortThroughTheNodeProxy(t *testing.T) {
	client, asked := agentAPI(t, "10264")
	s := serve(t, AgentSources(client, 10264))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/api/flows", nil)
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	events := readEvents(t, resp.Body, 1)
	resp.Body.Close()
	if events[0].name != "record" || !strings.Contains(events[0].data, `"verdict":"dropped"`) {
		t.Errorf("events %+v", events)
	}
	if code := call(t, s, "GET", "/api/policies", nil, nil); code != http.StatusOK {
		t.Errorf("policies: status %d", code)
	}
	var flows, status bool
	for _, p := range asked() {
		flows = flows || p == "/api/v1/nodes/n1:10264/proxy/flows"
		status = status || p == "/api/v1/nodes/n1:10264/proxy/policy/status"
	}
	if !flows || !status {
		t.Errorf("asked %v, want n1:10264's /flows and /policy/status", asked())
	}
}
