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

func TestParseAPIRequests(t *testing.T) {
	log := `---- podnet: starting kube-apiserver
I1207 15:30:01.000001    4242 httplog.go:134] "HTTP" verb="LIST" URI="/api/v1/services?limit=500&resourceVersion=0" latency="2.1ms" userAgent="podnet-agent/n-1" audit-ID="a1" srcIP="172.29.60.11:51234" resp=200
I1207 15:30:01.000002    4242 httplog.go:134] "HTTP" verb="LIST" URI="/apis/discovery.k8s.io/v1/endpointslices?limit=500" latency="1ms" userAgent="podnet-dns" audit-ID="a2" srcIP="10.190.0.5:40000" resp=200
I1207 15:30:01.000003    4242 httplog.go:134] "HTTP" verb="WATCH" URI="/api/v1/namespaces/default/pods?watch=true&resourceVersion=12" latency="5m0s" userAgent="podnet-runtime/n-2" audit-ID="a3" srcIP="172.29.60.12:1" resp=200
I1207 15:30:01.000004    4242 httplog.go:134] "HTTP" verb="GET" URI="/api/v1/namespaces/default" latency="1ms" userAgent="kube-controller-manager/v1.37.2 (linux/amd64) kubernetes/abc/system:serviceaccount:kube-system:namespace-controller" audit-ID="a4" srcIP="127.0.0.1:9" resp=404 statusStack="\"quoted\" stack"
I1207 15:30:01.000005    4242 httplog.go:134] "HTTP" verb="LIST" URI="/api/v1/nodes" latency="1ms" userAgent="" audit-ID="a5" srcIP="[::1]:7" resp=503
I1207 15:30:01.000006    4242 controller.go:1] "Not an HTTP line" verb="LIST"
`
	got := parseAPIRequests(log)
	want := []apiRequest{
		{verb: "LIST", resource: "services", userAgent: "podnet-agent/n-1", srcHost: "172.29.60.11", status: 200},
		{verb: "LIST", resource: "endpointslices.discovery.k8s.io", userAgent: "podnet-dns", srcHost: "10.190.0.5", status: 200, consistent: true},
		{verb: "WATCH", resource: "pods", userAgent: "podnet-runtime/n-2", srcHost: "172.29.60.12", status: 200},
		{verb: "GET", resource: "namespaces", userAgent: "kube-controller-manager/v1.37.2 (linux/amd64) kubernetes/abc/system:serviceaccount:kube-system:namespace-controller",
			srcHost: "127.0.0.1", status: 404},
		{verb: "LIST", resource: "nodes", srcHost: "::1", status: 503, consistent: true},
	}
	if !slices.Equal(got, want) {
		t.Errorf("parseAPIRequests:\n got %+v\nwant %+v", got, want)
	}
	counts := countRequests(got, func(r apiRequest) bool { return r.verb == "LIST" })
	wantCounts := map[string]int{"podnet-agent LIST services": 1, "podnet-dns LIST endpointslices.discovery.k8s.io": 1, "? LIST nodes": 1}
	if !maps.Equal(counts, wantCounts) {
		t.Errorf("countRequests = %v, want %v", counts, wantCounts)
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
