package ui

// Fixture conventions: nodes n1 and n2 (172.29.0.11, .12); pods in
// namespace shop on 10.160.x.y; Service shop/web on 10.161.0.10. Nothing
// here touches a cluster: the client is client-go's fake and the flow,
// status, matrix and trace sources are functions of the test.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/podnet/podnet/internal/flow"
	"github.com/podnet/podnet/internal/policy/status"
	"github.com/podnet/podnet/internal/probe"
	"github.com/podnet/podnet/internal/trace"
)

func serve(t *testing.T, src Sources) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(Handler(src))
	t.Cleanup(s.Close)
	return s
}

// call sends method to path (with a JSON body when body is not nil) and
// decodes the JSON answer into out; it returns the status code.
func call(t *testing.T, s *httptest.Server, method, path string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

func TestTopologyListsNodesPodsWithTheirIPsServicesAndPolicies(t *testing.T) {
	ready := v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionTrue}
	client := fake.NewClientset(
		&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}, Spec: v1.NodeSpec{PodCIDRs: []string{"10.160.2.0/24"}},
			Status: v1.NodeStatus{Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "172.29.0.12"}}}},
		&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: v1.NodeStatus{Conditions: []v1.NodeCondition{ready},
			Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "172.29.0.11"}}}},
		&v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"}},
			Spec: v1.PodSpec{NodeName: "n2"}, Status: v1.PodStatus{PodIP: "10.160.2.5", Phase: v1.PodRunning}},
		&v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "client"},
			Spec: v1.PodSpec{NodeName: "n1"}, Status: v1.PodStatus{PodIP: "10.160.1.7", Phase: v1.PodRunning}},
		&v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}, Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP,
			ClusterIP: "10.161.0.10", Ports: []v1.ServicePort{{Port: 80, Protocol: v1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}}}},
		&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "deny"}, Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
	)
	s := serve(t, Sources{Client: client})
	var got Topology
	if code := call(t, s, "GET", "/api/topology", nil, &got); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	want := Topology{
		Nodes: []Node{{Name: "n1", Address: "172.29.0.11", Ready: true}, {Name: "n2", Address: "172.29.0.12", PodCIDRs: []string{"10.160.2.0/24"}}},
		Pods: []Pod{{Namespace: "shop", Name: "client", IP: "10.160.1.7", Node: "n1", Phase: "Running"},
			{Namespace: "shop", Name: "web", IP: "10.160.2.5", Node: "n2", Phase: "Running", Labels: map[string]string{"app": "web"}}},
		Services: []Service{{Namespace: "shop", Name: "web", Type: "ClusterIP", ClusterIP: "10.161.0.10", Ports: []string{"80/TCP->8080"}}},
		Policies: []NetworkPolicy{{Namespace: "shop", Name: "deny", PodSelector: "app=web", Types: []string{"Ingress"}}},
	}
	if g, w := jsonText(t, got), jsonText(t, want); g != w {
		t.Errorf("topology\n got %s\nwant %s", g, w)
	}
}

func jsonText(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPoliciesPassTheNamespaceAndSayWhenTheAgentsCannotBeRead(t *testing.T) {
	var asked string
	rows := []status.PolicyStatus{{Namespace: "shop", Name: "deny", Nodes: []status.NodeStatus{{Node: "n1", State: status.InForce}, {Node: "n2", State: status.Lagging}}}}
	s := serve(t, Sources{Policies: func(_ context.Context, ns string) ([]status.PolicyStatus, error) {
		asked = ns
		if ns == "broken" {
			return nil, errors.New("nodes: connection refused")
		}
		return rows, nil
	}})
	var got []status.PolicyStatus
	if code := call(t, s, "GET", "/api/policies?namespace=shop", nil, &got); code != http.StatusOK || asked != "shop" {
		t.Fatalf("status %d, namespace asked %q", code, asked)
	}
	if len(got) != 1 || got[0].InForceOn() != 1 || got[0].Nodes[1].State != status.Lagging {
		t.Errorf("got %+v", got)
	}
	var e map[string]string
	if code := call(t, s, "GET", "/api/policies?namespace=broken", nil, &e); code != http.StatusBadGateway || !strings.Contains(e["error"], "connection refused") {
		t.Errorf("failing read: status %d, %v", code, e)
	}
}

// A denied connection from the fake agents reaches the page as a "record"
// event with its policy, after the stream opened, and the stream's end
// (the browser going) ends the agents' Follow.
func TestFlowsStreamRecordsWithTheirPolicyAsServerSentEvents(t *testing.T) {
	drop := flow.Record{Time: time.Unix(1700000000, 0).UTC(), Node: "n2", Event: flow.EventDrop, Verdict: flow.Dropped, Reason: "policy-denied",
		Direction: "ingress", Protocol: "TCP",
		Source:      flow.Endpoint{IP: netip.MustParseAddr("10.160.1.7"), Namespace: "shop", Pod: "client"},
		Destination: flow.Endpoint{IP: netip.MustParseAddr("10.160.2.5"), Port: 8080, Namespace: "shop", Pod: "web"},
		Policies:    []flow.Policy{{Direction: "ingress", IsolatedBy: []string{"shop/deny"}, DefaultDeny: true}}}
	asked := make(chan flow.Query, 1)
	ended := make(chan struct{})
	s := serve(t, Sources{Follow: func(ctx context.Context, q flow.Query, out chan<- flow.Record, nodeErr func(flow.NodeError)) error {
		asked <- q
		out <- drop
		nodeErr(flow.NodeError{Node: "n1", Err: errors.New("proxy: dial timeout")})
		<-ctx.Done()
		close(ended)
		return nil
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/api/flows?namespace=shop&verdict=dropped&last=7", nil)
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	q := <-asked
	if q.Namespace != "shop" || q.Verdict != flow.Dropped || q.Last != 7 {
		t.Errorf("query %+v, want namespace shop, verdict dropped, last 7", q)
	}
	events := readEvents(t, resp.Body, 2)
	if events[0].name != "record" || events[1].name != "nodeerror" {
		t.Fatalf("events %+v", events)
	}
	var got FlowEvent
	if err := json.Unmarshal([]byte(events[0].data), &got); err != nil {
		t.Fatal(err)
	}
	if got.PolicyText != "ingress default deny (shop/deny)" || got.Destination.Pod != "web" || got.Reason != "policy-denied" || !got.Time.Equal(drop.Time) {
		t.Errorf("record event %s", events[0].data)
	}
	if !strings.Contains(events[1].data, `"node":"n1"`) || !strings.Contains(events[1].data, "dial timeout") {
		t.Errorf("nodeerror event %s", events[1].data)
	}
	cancel()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("Follow still runs 5s after the browser went")
	}
}

type event struct{ name, data string }

// readEvents reads n server-sent events (skipping comments).
func readEvents(t *testing.T, r io.Reader, n int) []event {
	t.Helper()
	sc := bufio.NewScanner(r)
	var out []event
	var cur event
	for len(out) < n && sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		case line == "" && cur.name != "":
			out = append(out, cur)
			cur = event{}
		}
	}
	if len(out) < n {
		t.Fatalf("read %d events, want %d: %v", len(out), n, sc.Err())
	}
	return out
}

func TestFlowsRefuseABadFilter(t *testing.T) {
	s := serve(t, Sources{Follow: func(context.Context, flow.Query, chan<- flow.Record, func(flow.NodeError)) error {
		t.Error("Follow called for a bad filter")
		return nil
	}})
	for _, q := range []string{"verdict=maybe", "last=-1", "since=yesterday"} {
		var e map[string]string
		if code := call(t, s, "GET", "/api/flows?"+q, nil, &e); code != http.StatusBadRequest || e["error"] == "" {
			t.Errorf("%s: status %d, %v", q, code, e)
		}
	}
}

// matrixSources has pods a, b, c of shop; only b's port 80 answers, and
// never from c.
func matrixSources(t *testing.T) Sources {
	return Sources{
		MatrixPods: func(_ context.Context, namespaces []string, selector string) ([]probe.MatrixPod, error) {
			if strings.Join(namespaces, ",") != "shop" || selector != "tier=web" {
				return nil, fmt.Errorf("asked for %v %q", namespaces, selector)
			}
			var out []probe.MatrixPod
			for i, n := range []string{"a", "b", "c"} {
				out = append(out, probe.MatrixPod{Key: "shop/" + n, Name: n, Addr: netip.AddrFrom4([4]byte{10, 160, 1, byte(i + 1)}), NetNS: "/ns/" + n})
			}
			return out, nil
		},
		Probe: func(nsPath, protocol, target string, _ time.Duration) (probe.Reply, error) {
			if protocol != "tcp" {
				t.Errorf("protocol %s", protocol)
			}
			if target == "10.160.1.2:80" && nsPath != "/ns/c" {
				return probe.Reply{Pod: "b"}, nil
			}
			return probe.Reply{}, &probe.NoReplyError{Err: errors.New("timeout")}
		},
	}
}

func TestMatrixProbesEveryPairOfTheChosenPods(t *testing.T) {
	s := serve(t, matrixSources(t))
	var got MatrixResult
	if code := call(t, s, "POST", "/api/matrix", MatrixRequest{Namespaces: []string{"shop"}, Selector: "tier=web", Port: 80}, &got); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	m := got.Matrix
	for _, from := range []string{"shop/a", "shop/b", "shop/c"} {
		for _, to := range []string{"shop/a", "shop/b", "shop/c"} {
			want := to == "shop/b" && from != "shop/c"
			if m.Allowed[from][to] != want {
				t.Errorf("%s -> %s: %v, want %v", from, to, m.Allowed[from][to], want)
			}
		}
	}
	if why := m.Why["shop/c -> shop/b"]; !strings.Contains(why, "timeout") {
		t.Errorf("why c -> b: %q", why)
	}
	if !regexp.MustCompile(`shop/c\s+X\s+X\s+X`).MatchString(got.Text) || !regexp.MustCompile(`shop/a\s+X\s+\.\s+X`).MatchString(got.Text) {
		t.Errorf("text:\n%s", got.Text)
	}
}

func TestMatrixAndTraceRefuseWhatTheyCannotRun(t *testing.T) {
	s := serve(t, matrixSources(t))
	for _, tc := range []struct {
		name, path, contentType, body string
	}{
		{"a matrix without namespaces", "/api/matrix", "application/json", `{"port":80}`},
		{"a matrix of an unknown protocol", "/api/matrix", "application/json", `{"namespaces":["shop"],"selector":"tier=web","port":80,"protocol":"icmp"}`},
		{"a matrix on port 0", "/api/matrix", "application/json", `{"namespaces":["shop"],"selector":"tier=web","port":0}`},
		{"a form post (a cross-site page can send one)", "/api/matrix", "application/x-www-form-urlencoded", `namespaces=shop`},
		{"an unknown field", "/api/matrix", "application/json", `{"namespaces":["shop"],"ports":80}`},
		{"a trace without a pod", "/api/trace", "application/json", `{"target":"svc/web:80"}`},
		{"a trace to a bad port", "/api/trace", "application/json", `{"pod":"client","target":"web:99999"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := s.Client().Post(s.URL+tc.path, tc.contentType, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `"error"`) {
				t.Errorf("status %d: %s", resp.StatusCode, b)
			}
		})
	}
	resp, err := s.Client().Get(s.URL + "/api/matrix")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Errorf("GET /api/matrix: status %d, want an error (probes only on POST)", resp.StatusCode)
	}
}

func TestTraceParsesTheFormAndAnswersWithTheVerdictAndText(t *testing.T) {
	var got trace.Request
	var gotProbe bool
	s := serve(t, Sources{Trace: func(_ context.Context, req trace.Request, withProbe bool) (TraceResult, error) {
		got, gotProbe = req, withProbe
		if req.Src.Name == "ghost" {
			return TraceResult{}, fmt.Errorf("pod shop/ghost: %w", trace.ErrNotFound)
		}
		e := &trace.Explanation{Source: "shop/client", SrcAddr: netip.MustParseAddr("10.160.1.7"), SrcNode: "n1", Target: "pod/web",
			Protocol: v1.ProtocolTCP, Port: 8080, Verdict: trace.VerdictDenied}
		return TraceResult{Explanation: e, Probe: &trace.ProbeCheck{Target: "10.160.2.5:8080", Agrees: true}}, nil
	}})
	var out struct {
		TraceResult
		Text string `json:"text"`
	}
	if code := call(t, s, "POST", "/api/trace", TraceRequest{Namespace: "shop", Pod: "client", Target: "pod/web:8080", Probe: true}, &out); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if got.Src.Namespace != "shop" || got.Src.Name != "client" || !gotProbe || got.Target.Port != 8080 {
		t.Errorf("trace asked for %+v probe=%v", got, gotProbe)
	}
	if out.Explanation.Verdict != trace.VerdictDenied || !strings.Contains(out.Text, "DENIED") || !strings.Contains(out.Text, "agrees") {
		t.Errorf("answer %+v\n%s", out.Explanation, out.Text)
	}
	var e map[string]string
	if code := call(t, s, "POST", "/api/trace", TraceRequest{Pod: "ghost", Target: "pod/web:8080"}, &e); code != http.StatusNotFound || got.Src.Namespace != "default" {
		t.Errorf("unknown pod: status %d (%v), namespace %q", code, e, got.Src.Namespace)
	}
}

// A page of another site whose name resolves to 127.0.0.1 (DNS rebinding)
// sends its own Host: the server refuses it.
func TestOnlyLocalHostNamesAreServed(t *testing.T) {
	h := Handler(Sources{})
	for host, want := range map[string]int{"127.0.0.1:8089": 200, "localhost:8089": 200, "[::1]:8089": 200, "evil.example:8089": 403, "evil.example": 403} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %s: status %d, want %d", host, rec.Code, want)
		}
	}
}

// The page is served from the binary and loads nothing from elsewhere:
// every src and href of its files is a relative path.
func TestThePageIsEmbeddedAndSelfContained(t *testing.T) {
	s := serve(t, Sources{})
	for _, path := range []string{"/", "/app.js", "/style.css"} {
		resp, err := s.Client().Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(b) == 0 {
			t.Errorf("%s: status %d, %d bytes", path, resp.StatusCode, len(b))
		}
	}
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]|@import|url\(\s*['"]?[a-z]+:`)
	err := fs.WalkDir(static, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(path)
		if err != nil {
			return err
		}
		if m := external.Find(b); m != nil {
			t.Errorf("%s refers to %q outside the machine", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A cluster without Services or policies answers empty lists, not null
// (the page iterates over them).
func TestAnEmptyClusterHasEmptyListsNotNull(t *testing.T) {
	s := serve(t, Sources{Client: fake.NewClientset()})
	var got map[string]json.RawMessage
	if code := call(t, s, "GET", "/api/topology", nil, &got); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	for _, k := range []string{"nodes", "pods", "services", "policies"} {
		if string(got[k]) != "[]" {
			t.Errorf("%s: %s, want []", k, got[k])
		}
	}
}
