package localcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/proc"
)

// cpPollInterval is how often a wait checks health; most checks answer in
// well under a millisecond on loopback.
const cpPollInterval = 50 * time.Millisecond

// cpLogTailLines is how much of a process's log an error quotes.
const cpLogTailLines = 15

// cpCheck is one health probe; nil means healthy.
type cpCheck func(ctx context.Context) error

// cpWait polls check until it succeeds, failing early if rec's process
// exits, and after timeout. Errors name the process and quote its log.
func cpWait(ctx context.Context, timeout time.Duration, rec *proc.Record, what string, check cpCheck) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if !proc.Alive(rec) {
			return cpProcError(rec, "exited while starting", nil)
		}
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return cpProcError(rec, fmt.Sprintf("not healthy (%s) after %s", what, timeout), last)
			}
			return cpProcError(rec, "start canceled", ctx.Err())
		case <-time.After(cpPollInterval):
		}
	}
}

// cpWaitNoProc polls fn until it succeeds or timeout passes.
func cpWaitNoProc(ctx context.Context, timeout time.Duration, fn cpCheck) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up after %s)", err, timeout)
		case <-time.After(cpPollInterval):
		}
	}
}

// cpProcError is "<name> (pid N) <what>: <cause>; log <file>:" followed by
// the log's last lines, indented.
func cpProcError(rec *proc.Record, what string, cause error) error {
	msg := fmt.Sprintf("%s (pid %d) %s", rec.Name, rec.PID, what)
	if cause != nil {
		msg += ": " + strings.ReplaceAll(cause.Error(), "\n", "; ")
	}
	if tail := proc.LogTail(rec, cpLogTailLines); tail != "" {
		msg += "; last lines of " + rec.LogFile + ":\n    " + strings.ReplaceAll(tail, "\n", "\n    ")
	}
	return errors.New(msg)
}

// cpAll succeeds when every check does, trying them in order.
func cpAll(checks ...cpCheck) cpCheck {
	return func(ctx context.Context) error {
		for _, c := range checks {
			if err := c(ctx); err != nil {
				return err
			}
		}
		return nil
	}
}

// cpEtcdHealthy asks etcd's /health, which answers {"health":"true"} once
// the member has a leader and serves requests.
func cpEtcdHealthy(nsPath string, port int) cpCheck {
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
		DialContext: cpDialer(nsPath)}}
	url := cpEtcdURL(port) + "/health"
	return func(ctx context.Context) error {
		body, err := cpGet(ctx, client, url)
		if err != nil {
			return err
		}
		var h struct {
			Health string `json:"health"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(body, &h); err != nil {
			return fmt.Errorf("%s: %w", url, err)
		}
		if h.Health != "true" {
			return fmt.Errorf("%s: health %q %s", url, h.Health, h.Reason)
		}
		return nil
	}
}

// cpHTTPSHealthy GETs url with tlsCfg and wants 200 and "ok".
func cpHTTPSHealthy(nsPath string, tlsCfg *tls.Config, url string) cpCheck {
	client := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: tlsCfg,
		DisableKeepAlives: true, DialContext: cpDialer(nsPath)}}
	return func(ctx context.Context) error {
		body, err := cpGet(ctx, client, url)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(body)) != "ok" {
			return fmt.Errorf("%s: %q", url, body)
		}
		return nil
	}
}

func cpGet(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %s", url, resp.Status, cpFirstLines(string(body), 3))
	}
	return body, nil
}

func cpFirstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "; ")
}

// cpDefaultServiceAccount succeeds once kube-controller-manager's
// serviceaccount controller has created default/default, which the
// ServiceAccount admission plugin needs before any pod is admitted.
func cpDefaultServiceAccount(client kubernetes.Interface) cpCheck {
	return func(ctx context.Context) error {
		_, err := client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return errors.New("ServiceAccount default/default not created yet")
		}
		return err
	}
}

// cpAdminTLS authenticates as the admin and trusts only the cluster CA.
func cpAdminTLS(f *ControlPlaneFiles) (*tls.Config, error) {
	cfg, err := cpLocalTLS(f)
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(f.AdminCert, f.AdminKey)
	if err != nil {
		return nil, fmt.Errorf("admin certificate: %w", err)
	}
	cfg.Certificates = []tls.Certificate{cert}
	return cfg, nil
}

// cpLocalTLS trusts only the cluster CA.
func cpLocalTLS(f *ControlPlaneFiles) (*tls.Config, error) {
	caPEM, err := os.ReadFile(f.CACert)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no certificate in %s", f.CACert)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
