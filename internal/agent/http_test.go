package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
