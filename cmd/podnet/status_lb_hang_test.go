package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// A node whose agent does not answer (its link is down: the API server's
// proxy request hangs) is listed as unreachable after a short wait,
// instead of holding the command until the API server gives up.
func TestStatusLoadBalancersDoesNotWaitForACutOffNode(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/v1/nodes":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"kind":"NodeList","apiVersion":"v1","items":[{"metadata":{"name":"node-1"}},{"metadata":{"name":"node-2"}}]}`))
		case strings.HasPrefix(r.URL.Path, "/api/v1/nodes/node-1:"):
			<-r.Context().Done() // cut off
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"node":"node-2","announced":[]}`))
		}
	}))
	defer api.Close()
	client, err := kubernetes.NewForConfig(&rest.Config{Host: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	old := lbViewTimeout
	lbViewTimeout = 200 * time.Millisecond
	defer func() { lbViewTimeout = old }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	views, unreachable, err := readLBViews(ctx, client, 10249)
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("readLBViews waited for the cut-off node until the test's deadline")
	}
	if len(views) != 1 || views[0].Node != "node-2" {
		t.Errorf("views = %+v, want node-2's", views)
	}
	if len(unreachable) != 1 || !strings.HasPrefix(unreachable[0], "node-1: ") {
		t.Errorf("unreachable = %q, want node-1", unreachable)
	}
}
