package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"
)

// HealthStatus is what a healthCheckNodePort reports for one Service.
type HealthStatus struct {
	Namespace, Name string
	LocalEndpoints  int
}

// HealthServers serves the healthCheckNodePorts of externalTrafficPolicy
// Local Services, answering like kube-proxy: 200 with the count of local
// endpoints when there is at least one, 503 when there is none, so an
// external load balancer sends traffic only to nodes that can serve it.
type HealthServers struct {
	// set at construction, read-only
	host string

	// mu guards the fields below.
	mu      sync.Mutex
	status  map[int32]HealthStatus
	servers map[int32]*http.Server
}

// NewHealthServers listens on host ("" for every address of the node).
func NewHealthServers(host string) *HealthServers {
	return &HealthServers{host: host, status: map[int32]HealthStatus{}, servers: map[int32]*http.Server{}}
}

// HealthFrom collects the health check ports of the Service ports.
func HealthFrom(sps []*ServicePort) map[int32]HealthStatus {
	out := map[int32]HealthStatus{}
	for _, sp := range sps {
		if sp.HealthCheckNodePort == 0 {
			continue
		}
		st := out[sp.HealthCheckNodePort]
		st.Namespace, st.Name = sp.Namespace, sp.Name
		if n := len(localOnly(sp.Endpoints)); n > st.LocalEndpoints {
			st.LocalEndpoints = n
		}
		out[sp.HealthCheckNodePort] = st
	}
	return out
}

// Sync opens servers for new ports, closes those no longer wanted and
// updates what every server reports.
func (h *HealthServers) Sync(want map[int32]HealthStatus) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status = want
	var errs []error
	for port, srv := range h.servers {
		if _, ok := want[port]; !ok {
			_ = srv.Close()
			delete(h.servers, port)
		}
	}
	ports := make([]int, 0, len(want))
	for p := range want {
		ports = append(ports, int(p))
	}
	sort.Ints(ports)
	for _, p := range ports {
		port := int32(p)
		if h.servers[port] != nil {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(h.host, fmt.Sprint(port)))
		if err != nil {
			errs = append(errs, fmt.Errorf("health check port %d: %w", port, err))
			continue
		}
		srv := &http.Server{Handler: h.handler(port), ReadHeaderTimeout: 5 * time.Second}
		h.servers[port] = srv
		go func() { _ = srv.Serve(ln) }()
	}
	return errors.Join(errs...)
}

// Close stops every server.
func (h *HealthServers) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for port, srv := range h.servers {
		_ = srv.Close()
		delete(h.servers, port)
	}
}

func (h *HealthServers) handler(port int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h.mu.Lock()
		st, ok := h.status[port]
		h.mu.Unlock()
		if !ok {
			http.Error(w, "no such service", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if st.LocalEndpoints == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"service":             map[string]string{"namespace": st.Namespace, "name": st.Name},
			"localEndpoints":      st.LocalEndpoints,
			"serviceProxyHealthy": true,
		})
	})
}
