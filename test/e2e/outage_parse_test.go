package e2e

import (
	"maps"
	"slices"
	"testing"
)

// The outage test's readers of what components count; they need no
// cluster.

func TestParseSamplesAndSum(t *testing.T) {
	page := `# HELP podnet_proxy_sync_duration_seconds Time ...
# TYPE podnet_proxy_sync_duration_seconds histogram
podnet_proxy_sync_duration_seconds_bucket{kind="full",le="0.001"} 0
podnet_proxy_sync_duration_seconds_count{kind="full"} 1
podnet_proxy_sync_duration_seconds_count{kind="partial"} 41
podnet_controller_sync_failures_total{controller="proxy"} 2
podnet_controller_sync_failures_total{controller="proxy-extra"} 5
podnet_proxy_transaction_operations 7
podnet_proxy_transaction_operations_other 100
apiserver_request_total{code="200",resource="services",verb="LIST"} 3 1700000000000
not a sample line
`
	s := parseSamples(page)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"podnet_proxy_sync_duration_seconds_count", nil, 42},
		{"podnet_proxy_sync_duration_seconds_count", []string{label("kind", "full")}, 1},
		{"podnet_proxy_sync_duration_seconds_count", []string{label("kind", "partial")}, 41},
		// label values match whole, not as a prefix
		{"podnet_controller_sync_failures_total", []string{label("controller", "proxy")}, 2},
		// a metric name matches whole, not as a prefix
		{"podnet_proxy_transaction_operations", nil, 7},
		{"apiserver_request_total", []string{label("verb", "LIST"), label("resource", "services")}, 3},
		{"apiserver_request_total", []string{label("verb", "WATCH")}, 0},
		{"absent", nil, 0},
	} {
		if got := s.sum(c.name, c.labels...); got != c.want {
			t.Errorf("sum(%s, %v) = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if len(s) != 8 {
		t.Errorf("parsed %d samples, want 8: %v", len(s), s)
	}
}

func TestParseAudit(t *testing.T) {
	log := `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/services?limit=500\u0026resourceVersion=0","verb":"list","user":{"username":"x"},"sourceIPs":["172.29.60.11"],"userAgent":"podnet-agent/n-1","objectRef":{"resource":"services","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200}}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a2","stage":"ResponseStarted","requestURI":"/apis/discovery.k8s.io/v1/endpointslices?allowWatchBookmarks=true\u0026resourceVersionMatch=NotOlderThan\u0026sendInitialEvents=true\u0026timeoutSeconds=400\u0026watch=true","verb":"watch","sourceIPs":["10.190.0.5"],"userAgent":"podnet-dns","objectRef":{"resource":"endpointslices","apiGroup":"discovery.k8s.io","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200}}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a3","stage":"ResponseStarted","requestURI":"/api/v1/namespaces/default/pods?resourceVersion=12\u0026watch=true","verb":"watch","sourceIPs":["172.29.60.12"],"userAgent":"podnet-runtime/n-2","objectRef":{"resource":"pods","namespace":"default","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200}}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a2","stage":"ResponseComplete","requestURI":"/apis/discovery.k8s.io/v1/endpointslices?sendInitialEvents=true\u0026watch=true","verb":"watch","sourceIPs":["10.190.0.5"],"userAgent":"podnet-dns","objectRef":{"resource":"endpointslices","apiGroup":"discovery.k8s.io","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200}}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a4","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods/web/status","verb":"update","sourceIPs":["172.29.60.12"],"userAgent":"podnet-runtime/n-2","objectRef":{"resource":"pods","namespace":"default","name":"web","apiVersion":"v1","subresource":"status"},"responseStatus":{"metadata":{},"code":409}}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a5","stage":"ResponseComplete","requestURI":"/api/v1/nodes","verb":"list","sourceIPs":["127.0.0.1"],"userAgent":"","objectRef":{"resource":"nodes","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":503}}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a6","stage":"ResponseComplete","requestURI":"/readyz","verb":"get","sourceIPs":["127.0.0.1"],"userAgent":"e2e.test","responseStatus":{"metadata":{},"code":200}}
`
	got, err := parseAudit(log)
	if err != nil {
		t.Fatal(err)
	}
	want := []apiRequest{
		{id: "a1", verb: "list", resource: "services", userAgent: "podnet-agent/n-1", srcHost: "172.29.60.11", status: 200},
		{id: "a2", verb: "watch", resource: "endpointslices.discovery.k8s.io", userAgent: "podnet-dns", srcHost: "10.190.0.5", status: 200, initialEvents: true},
		{id: "a3", verb: "watch", resource: "pods", userAgent: "podnet-runtime/n-2", srcHost: "172.29.60.12", status: 200},
		{id: "a4", verb: "update", resource: "pods/status", userAgent: "podnet-runtime/n-2", srcHost: "172.29.60.12", status: 409},
		{id: "a5", verb: "list", resource: "nodes", srcHost: "127.0.0.1", status: 503, consistent: true},
		{id: "a6", verb: "get", userAgent: "e2e.test", srcHost: "127.0.0.1", status: 200},
	}
	if !slices.Equal(got, want) {
		t.Errorf("parseAudit:\n got %+v\nwant %+v", got, want)
	}
	counts := countRequests(got, apiRequest.relist)
	wantCounts := map[string]int{"podnet-agent list services": 1, "podnet-dns watch-list endpointslices.discovery.k8s.io": 1,
		"? list (etcd) nodes": 1}
	if !maps.Equal(counts, wantCounts) {
		t.Errorf("countRequests = %v, want %v", counts, wantCounts)
	}
	if _, err := parseAudit("not json\n"); err == nil {
		t.Error("parseAudit accepted a line that is not JSON")
	}
}

func TestFlagValue(t *testing.T) {
	argv := []string{"/bin/etcd", "--name=x", "--listen-client-urls=http://127.0.0.1:2379", "--listen-client-urls-extra=no"}
	if got := flagValue(argv, "listen-client-urls"); got != "http://127.0.0.1:2379" {
		t.Errorf("flagValue = %q", got)
	}
	if got := flagValue(argv, "absent"); got != "" {
		t.Errorf("flagValue(absent) = %q", got)
	}
}
