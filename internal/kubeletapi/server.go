package kubeletapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// DefaultPort is the kubelet's port.
const DefaultPort = 10250

// Config configures the server.
type Config struct {
	// Addr is the host:port to listen on (the node's InternalIP and 10250
	// for a kubelet). Empty: no server.
	Addr string
	// CertFile and KeyFile are the serving certificate (its SANs must hold
	// the address the API server dials) and key, PEM.
	CertFile, KeyFile string
	// ClientCAFile holds the CA certificates (PEM) that client certificates
	// must chain to.
	ClientCAFile string
	// AllowedUsers and AllowedGroups may use the API: the API server's
	// kubelet-client identity (--kubelet-client-certificate's CN and O).
	AllowedUsers, AllowedGroups []string
	// StreamIdleTimeout ends a stream idle that long (default 4h, the
	// kubelet's); StreamCreationTimeout bounds the SPDY stream setup.
	StreamIdleTimeout, StreamCreationTimeout time.Duration
	Log                                      *slog.Logger
}

// Validate reports every missing setting at once.
func (c *Config) Validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{
		{"listen address", c.Addr}, {"serving certificate", c.CertFile}, {"serving key", c.KeyFile},
		{"client CA", c.ClientCAFile},
	} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("kubelet API: no %s", f.name))
		}
	}
	if len(c.AllowedUsers) == 0 && len(c.AllowedGroups) == 0 {
		errs = append(errs, errors.New("kubelet API: no allowed user or group (the API server's kubelet-client identity)"))
	}
	return errors.Join(errs...)
}

// Server serves the kubelet API over HTTPS.
type Server struct {
	// set at construction, read-only
	cfg       Config
	rt        Runtime
	log       *slog.Logger
	tls       *tls.Config
	clientCAs *x509.CertPool
	mux       *http.ServeMux
}

// New loads the certificates of cfg and returns a server for rt.
func New(cfg Config, rt Runtime) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.StreamIdleTimeout == 0 {
		cfg.StreamIdleTimeout = 4 * time.Hour
	}
	if cfg.StreamCreationTimeout == 0 {
		cfg.StreamCreationTimeout = remotecommand.DefaultStreamCreationTimeout
	}
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("kubelet API: serving certificate: %w", err)
	}
	caPEM, err := os.ReadFile(cfg.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("kubelet API: client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("kubelet API: client CA: no certificate in %s", cfg.ClientCAFile)
	}
	s := &Server{cfg: cfg, rt: rt, log: cfg.Log, clientCAs: pool, mux: http.NewServeMux()}
	// The certificate is requested, not required by the handshake: the
	// handler verifies it and answers 401, as the kubelet does.
	s.tls = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
		ClientAuth: tls.RequestClientCert, ClientCAs: pool}
	s.routes()
	return s, nil
}

// routes installs the kubelet's paths (pkg/kubelet/server/server.go).
func (s *Server) routes() {
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		for _, p := range []string{"{ns}/{pod}/{container}", "{ns}/{pod}/{uid}/{container}"} {
			s.mux.HandleFunc(method+" /exec/"+p, s.serveExec)
			s.mux.HandleFunc(method+" /attach/"+p, s.serveAttach)
		}
		for _, p := range []string{"{ns}/{pod}", "{ns}/{pod}/{uid}"} {
			s.mux.HandleFunc(method+" /portForward/"+p, s.servePortForward)
		}
	}
	s.mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", s.serveLogs)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	s.mux.HandleFunc("GET /pods", s.servePods)
}

// ServeHTTP authenticates, authorizes and routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, groups, err := s.authenticate(r)
	if err != nil {
		s.log.Debug("kubelet API: unauthenticated request", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	if !s.authorized(user, groups) {
		s.log.Info("kubelet API: forbidden", "user", user, "groups", groups, "path", r.URL.Path)
		http.Error(w, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource(s)=%v)",
			user, verb(r.Method), subresources(r.URL.Path)), http.StatusForbidden)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Serve serves on ln until ctx ends. Open streams (hijacked connections)
// are not ended by it.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s, TLSConfig: s.tls, ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout: 90 * time.Second, MaxHeaderBytes: 1 << 20,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	err := hs.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("kubelet API: %w", err)
}

func target(r *http.Request) Target {
	return Target{Namespace: r.PathValue("ns"), Pod: r.PathValue("pod"), UID: types.UID(r.PathValue("uid")),
		Container: r.PathValue("container")}
}

// servePods lists the node's pods, as the kubelet's /pods.
func (s *Server) servePods(w http.ResponseWriter, _ *http.Request) {
	list := v1.PodList{}
	list.Kind, list.APIVersion = "PodList", "v1"
	for _, p := range s.rt.Pods() {
		list.Items = append(list.Items, *p)
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(&list); err != nil {
		s.log.Debug("kubelet API: writing /pods", "err", err)
	}
}

// verb is the authorization verb of an HTTP method (the kubelet's).
func verb(method string) string {
	switch method {
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	default:
		return "get"
	}
}

// subresources are the node subresources the kubelet checks for a path.
func subresources(path string) []string {
	for _, p := range []struct {
		prefix string
		subs   []string
	}{
		{"/stats", []string{"stats"}}, {"/metrics", []string{"metrics"}}, {"/logs", []string{"log"}},
		{"/pods", []string{"pods", "proxy"}}, {"/healthz", []string{"healthz", "proxy"}},
		{"/configz", []string{"configz", "proxy"}},
	} {
		if path == p.prefix || len(path) > len(p.prefix) && path[:len(p.prefix)+1] == p.prefix+"/" {
			return slices.Clone(p.subs)
		}
	}
	return []string{"proxy"}
}
