package controlplane

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

// pollInterval is how often a wait checks health; most checks answer in
// well under a millisecond on loopback.
const pollInterval = 50 * time.Millisecond

// logTailLines is how much of a process's log an error quotes.
const logTailLines = 15

// healthCheck is one health probe; nil means healthy.
type healthCheck func(ctx context.Context) error

// waitHealthy polls check until it succeeds, failing early if rec's process
// exits, and after timeout. Errors name the process and quote its log.
func waitHealthy(ctx context.Context, timeout time.Duration, rec *proc.Record, what string, check healthCheck) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if !proc.Alive(rec) {
			return procError(rec, "exited while starting", nil)
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
				return procError(rec, fmt.Sprintf("not healthy (%s) after %s", what, timeout), last)
			}
			return procError(rec, "start canceled", ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// retryUntil polls fn until it succeeds or timeout passes.
func retryUntil(ctx context.Context, timeout time.Duration, fn healthCheck) error {
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
		case <-time.After(pollInterval):
		}
	}
}

// procError is "<name> (pid N) <what>: <cause>; log <file>:" followed by
// the log's last lines, indented.
func procError(rec *proc.Record, what string, cause error) error {
	msg := fmt.Sprintf("%s (pid %d) %s", rec.Name, rec.PID, what)
	if cause != nil {
		msg += ": " + strings.ReplaceAll(cause.Error(), "\n", "; ")
	}
	if tail := proc.LogTail(rec, logTailLines); tail != "" {
		msg += "; last lines of " + rec.LogFile + ":\n    " + strings.ReplaceAll(tail, "\n", "\n    ")
	}
	return errors.New(msg)
}

// allOf succeeds when every check does, trying them in order.
func allOf(checks ...healthCheck) healthCheck {
	return func(ctx context.Context) error {
		for _, c := range checks {
			if err := c(ctx); err != nil {
				return err
			}
		}
		return nil
	}
}

// etcdHealthy asks etcd's /health, which answers {"health":"true"} once
// the member has a leader and serves requests.
func etcdHealthy(nsPath string, port int) healthCheck {
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
		DialContext: Dialer(nsPath)}}
	url := etcdURL(port) + "/health"
	return func(ctx context.Context) error {
		body, err := get(ctx, client, url)
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

// httpsHealthy GETs url with tlsCfg and wants 200 and "ok".
func httpsHealthy(nsPath string, tlsCfg *tls.Config, url string) healthCheck {
	client := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: tlsCfg,
		DisableKeepAlives: true, DialContext: Dialer(nsPath)}}
	return func(ctx context.Context) error {
		body, err := get(ctx, client, url)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(body)) != "ok" {
			return fmt.Errorf("%s: %q", url, body)
		}
		return nil
	}
}

func get(ctx context.Context, client *http.Client, url string) ([]byte, error) {
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
		return nil, fmt.Errorf("%s: %s: %s", url, resp.Status, firstLines(string(body), 3))
	}
	return body, nil
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "; ")
}

// defaultServiceAccount succeeds once kube-controller-manager's
// serviceaccount controller has created default/default, which the
// ServiceAccount admission plugin needs before any pod is admitted.
func defaultServiceAccount(client kubernetes.Interface) healthCheck {
	return func(ctx context.Context) error {
		_, err := client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return errors.New("ServiceAccount default/default not created yet")
		}
		return err
	}
}

// adminTLS authenticates as the admin and trusts only the cluster CA.
func adminTLS(f *Files) (*tls.Config, error) {
	cfg, err := localTLS(f)
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

// localTLS trusts only the cluster CA.
func localTLS(f *Files) (*tls.Config, error) {
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
