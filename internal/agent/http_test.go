package agent

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/podnet/podnet/internal/controller"
)

func TestHealthzAnswersForTheProxyAndEachController(t *testing.T) {
	factory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	d := controller.Deps{Factory: factory, Metrics: controller.NewMetrics()}
	ctrl := func(name string) *controller.Controller {
		c, err := controller.New(d, controller.Spec{Name: name, Sync: func(context.Context) error { return nil },
			Sources: []controller.Source{{Informer: factory.Core().V1().Nodes().Informer()}}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	routing, proxy := ctrl("routing"), ctrl("proxy")
	get := func(mux http.Handler, path string) (int, string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	for _, tc := range []struct {
		name  string
		ctrls []*controller.Controller
		path  string
		code  int
		body  string
	}{
		{"the proxy answers /healthz", []*controller.Controller{routing, proxy}, "/healthz", 200, "ok (last successful sync never)"},
		{"each controller has its path", []*controller.Controller{routing, proxy}, "/healthz/routing", 200, "ok"},
		{"a controller that is off has none", []*controller.Controller{routing, proxy}, "/healthz/policy", 404, ""},
		{"without the proxy /healthz is ok", []*controller.Controller{routing}, "/healthz", 200, "ok (the service proxy is off)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(healthMux(tc.ctrls), tc.path)
			if code != tc.code || !strings.HasPrefix(body, tc.body) {
				t.Errorf("%s: %d %q, want %d %q", tc.path, code, body, tc.code, tc.body)
			}
		})
	}
}

// TestReadyzWaitsForEveryControllersFirstSync: the DaemonSet's readiness
// probe (/readyz on the metrics address) fails until every controller
// has applied its state once, so a rolling update moves to the next node
// only when this one's rules are installed; /livez stays ok meanwhile.
func TestReadyzWaitsForEveryControllersFirstSync(t *testing.T) {
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	d := controller.Deps{Factory: factory, Metrics: controller.NewMetrics()}
	var proxyFails atomic.Bool
	proxyFails.Store(true)
	var ctrls []*controller.Controller
	for _, name := range []string{"routing", "proxy"} {
		c, err := controller.New(d, controller.Spec{Name: name, MinInterval: time.Millisecond,
			Sources: []controller.Source{{Informer: factory.Core().V1().Nodes().Informer()}},
			Sync: func(context.Context) error {
				if name == "proxy" && proxyFails.Load() {
					return errors.New("nft failed")
				}
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		ctrls = append(ctrls, c)
	}
	mux := metricsMux(prometheus.NewRegistry(), healthMux(ctrls), map[string]http.Handler{"/lb/announcements": http.NotFoundHandler()})
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "routing: no successful sync yet") {
		t.Errorf("before the informers started: /readyz %d %q, want 503", code, body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	factory.Start(ctx.Done())
	for _, c := range ctrls {
		go c.Run(ctx)
	}
	waitFor(t, "routing synced", func() bool {
		_, body := get("/readyz")
		return strings.Contains(body, "routing: ok")
	})
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "proxy: no successful sync yet") {
		t.Errorf("proxy failing: /readyz %d %q, want 503 naming the proxy", code, body)
	}
	if code, body := get("/livez"); code != 200 {
		t.Errorf("proxy failing for a moment: /livez %d %q, want 200", code, body)
	}
	proxyFails.Store(false)
	waitFor(t, "/readyz 200", func() bool {
		code, _ := get("/readyz")
		return code == 200
	})
	if code, _ := get("/healthz/proxy"); code != 200 {
		t.Errorf("the metrics address does not serve /healthz/proxy: %d", code)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
