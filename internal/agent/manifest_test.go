package agent

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/podnet/podnet/deploy"
	"github.com/podnet/podnet/internal/controller"
	"github.com/podnet/podnet/internal/lb/announce"
	"github.com/podnet/podnet/internal/netns"
)

// agentWrites are the API writes of the agent's controllers, which no
// informer shows: the policy controller's Event recorder (core Events,
// create and patch; controller.NewEventRecorder) and the encryption's
// publication of the node's public key (Node patch; package wireguard's
// Manager.publish). The heartbeat key Secret (announce.KeySecret, get and
// create) is a Role of its namespace, checked in deploy/.
var agentWrites = []string{"/events/create", "/events/patch", "/nodes/patch"}

// startedInformers builds every controller of the agent (all of them on)
// over a fake clientset, starts the factory and returns the resources of
// the informers it started. The proxy and policy controllers open their
// nftables and netlink handles, so it runs as root, in a throwaway
// network namespace.
func startedInformers(t *testing.T) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the proxy and policy controllers check nftables access when constructed: needs root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("the nft binary is missing (Debian package nftables)")
	}
	name := netns.UniqueName("pnt-agentrbac-")
	path, err := netns.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Delete(name) })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg := Config{NodeName: "node-1", RoutingMode: "direct", CNIConfDir: t.TempDir(), LBAnnounce: true}
	m, err := newMetrics(cfg)
	if err != nil {
		t.Fatal(err)
	}
	factory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	d := controller.Deps{Client: fake.NewClientset(), Factory: factory, Metrics: m.controllers}
	var ctrls []*controller.Controller
	err = netns.Do(path, func() error {
		var err error
		ctrls, err = newControllers(ctx, d, cfg, m, extras{lb: announce.NewStatus(), stopped: &sync.WaitGroup{}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ctrls) != 5 {
		t.Fatalf("%d controllers, want all 5 on", len(ctrls))
	}
	factory.Start(ctx.Done())
	var out []string
	for typ := range factory.WaitForCacheSync(ctx.Done()) {
		obj, ok := reflect.New(typ.Elem()).Interface().(runtime.Object)
		if !ok {
			t.Fatalf("informer of %v", typ)
		}
		gvks, _, err := scheme.Scheme.ObjectKinds(obj)
		if err != nil {
			t.Fatal(err)
		}
		gvr, _ := meta.UnsafeGuessKindToResource(gvks[0])
		for _, verb := range []string{"get", "list", "watch"} {
			out = append(out, fmt.Sprintf("%s/%s/%s", gvr.Group, gvr.Resource, verb))
		}
	}
	return out
}

// TestAgentClusterRoleIsWhatItsInformersRead: the agent's ClusterRole in
// deploy/ grants get/list/watch on exactly the resources its controllers'
// informers list, and the writes agentWrites names: no more, no less.
func TestAgentClusterRoleIsWhatItsInformersRead(t *testing.T) {
	want := append(startedInformers(t), agentWrites...)
	slices.Sort(want)
	objs, err := deploy.Decode(deploy.Rendered)
	if err != nil {
		t.Fatal(err)
	}
	role, ok := deploy.Find(objs, "ClusterRole", "", "podnet-agent").(*rbacv1.ClusterRole)
	if !ok {
		t.Fatal("no ClusterRole podnet-agent")
	}
	var got []string
	for _, r := range role.Rules {
		if len(r.ResourceNames) > 0 {
			t.Errorf("rule %v names resources", r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					got = append(got, g+"/"+res+"/"+v)
				}
			}
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("ClusterRole podnet-agent grants\n  %v\nthe agent uses\n  %v", got, want)
	}
}

// TestDaemonSetProbesAreServedByTheAgent: the paths and port of the
// DaemonSet's probes are ones the agent serves (on --metrics-addr).
func TestDaemonSetProbesAreServedByTheAgent(t *testing.T) {
	objs, err := deploy.Decode(deploy.Rendered)
	if err != nil {
		t.Fatal(err)
	}
	ds, ok := deploy.Find(objs, "DaemonSet", "podnet-system", "podnet-agent").(*appsv1.DaemonSet)
	if !ok || len(ds.Spec.Template.Spec.Containers) != 1 {
		t.Fatal("no DaemonSet podnet-system/podnet-agent with one container")
	}
	c := ds.Spec.Template.Spec.Containers[0]
	factory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	d := controller.Deps{Factory: factory, Metrics: controller.NewMetrics()}
	routing, err := controller.New(d, controller.Spec{Name: "routing", Sync: func(context.Context) error { return nil },
		Sources: []controller.Source{{Informer: factory.Core().V1().Nodes().Informer()}}})
	if err != nil {
		t.Fatal(err)
	}
	mux := metricsMux(prometheus.NewRegistry(), healthMux([]*controller.Controller{routing}), map[string]http.Handler{"/lb/announcements": http.NotFoundHandler()})
	for _, p := range []struct {
		name string
		pr   *v1.Probe
	}{{"readiness", c.ReadinessProbe}, {"liveness", c.LivenessProbe}} {
		pr := p.pr
		if pr == nil || pr.HTTPGet == nil {
			t.Fatalf("%s probe: none over HTTP", p.name)
		}
		if want := fmt.Sprintf("--metrics-addr=:%d", pr.HTTPGet.Port.IntValue()); !slices.Contains(c.Args, want) {
			t.Errorf("%s probe port %s: the agent's args have no %s", p.name, pr.HTTPGet.Port.String(), want)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, pr.HTTPGet.Path, nil))
		if rec.Code == http.StatusNotFound {
			t.Errorf("%s probe: the agent does not serve %s", p.name, pr.HTTPGet.Path)
		}
	}
}
