package proxy

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"testing"
)

func freeTCPPort(t *testing.T) int32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return int32(ln.Addr().(*net.TCPAddr).Port)
}

func TestHealthServersAnswerLikeKubeProxy(t *testing.T) {
	h := NewHealthServers("127.0.0.1")
	defer h.Close()
	port := freeTCPPort(t)
	get := func() (int, map[string]any) {
		t.Helper()
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	if err := h.Sync(map[int32]HealthStatus{port: {Namespace: "default", Name: "web", LocalEndpoints: 2}}); err != nil {
		t.Fatal(err)
	}
	code, body := get()
	if code != 200 || body["localEndpoints"] != float64(2) || body["service"].(map[string]any)["name"] != "web" {
		t.Errorf("with 2 local endpoints: %d %v, want 200 and the count", code, body)
	}
	if err := h.Sync(map[int32]HealthStatus{port: {Namespace: "default", Name: "web"}}); err != nil {
		t.Fatal(err)
	}
	if code, body = get(); code != 503 || body["localEndpoints"] != float64(0) {
		t.Errorf("with no local endpoint: %d %v, want 503", code, body)
	}
	if err := h.Sync(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
		t.Error("the server still answers after its Service went away")
	}
}

func TestHealthFromCountsLocalEndpoints(t *testing.T) {
	s := svc("default", "web", "10.96.0.5", 80, 8080, 30080)
	s.Spec.ExternalTrafficPolicy = "Local"
	s.Spec.HealthCheckNodePort = 32000
	sps := BuildServicePorts("node-1", []*v1Service{s}, []*v1Slice{slice("default", "web", "", 8080,
		ep("10.244.1.2", "node-1", true, false), ep("10.244.2.2", "node-2", true, false))})
	got := HealthFrom(sps)
	if got[32000].LocalEndpoints != 1 || got[32000].Name != "web" {
		t.Errorf("HealthFrom = %+v, want 1 local endpoint of web on 32000", got)
	}
}
