package controller

// Fixture conventions: a fake clientset with informers from a factory with
// no resync; Services live in namespace "default"; EndpointSlices name
// their Service in the kubernetes.io/service-name label, which the tests'
// Key reads.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	"github.com/podnet/podnet/internal/runner"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func service(name string) *v1.Service {
	return &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}
}

func slice(name, svc string) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name,
		Labels: map[string]string{discoveryv1.LabelServiceName: svc}}}
}

func sliceService(obj any) string {
	sl := obj.(*discoveryv1.EndpointSlice)
	return sl.Namespace + "/" + sl.Labels[discoveryv1.LabelServiceName]
}

// fixture is a fake clientset, its factory, and a context for one test.
type fixture struct {
	client  *fake.Clientset
	factory informers.SharedInformerFactory
	metrics *Metrics
	ctx     context.Context
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	client := fake.NewClientset(objs...)
	ctx, cancel := context.WithCancel(context.Background())
	f := &fixture{client: client, factory: informers.NewSharedInformerFactory(client, 0), metrics: NewMetrics(), ctx: ctx}
	t.Cleanup(func() {
		cancel()
		f.factory.Shutdown()
	})
	return f
}

func (f *fixture) deps() Deps {
	return Deps{Client: f.client, Factory: f.factory, Metrics: f.metrics, Log: quiet}
}

// start starts the informers and runs c.
func (f *fixture) start(c *Controller) {
	f.factory.Start(f.ctx.Done())
	go c.Run(f.ctx)
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s never happened", what)
	}
	panic("unreachable")
}

func TestNoSyncBeforeEveryInformerSynced(t *testing.T) {
	f := newFixture(t, service("web"), service("db"))
	listing := make(chan struct{})
	var once sync.Once
	var released atomic.Bool
	// The Service list fails until released (the reflector retries); the
	// Node informer syncs at once. (A reactor must not block: the fake
	// clientset holds its lock while reactors run.)
	f.client.PrependReactor("list", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		once.Do(func() { close(listing) })
		if !released.Load() {
			return true, nil, errors.New("not yet")
		}
		return false, nil, nil
	})
	svcs := f.factory.Core().V1().Services()
	nodes := f.factory.Core().V1().Nodes()
	seen := make(chan int, 10)
	c, err := New(f.deps(), Spec{Name: "test", MinInterval: time.Millisecond,
		Sources: []Source{{Informer: nodes.Informer()}, {Informer: svcs.Informer()}},
		Sync: func(context.Context) error {
			l, err := svcs.Lister().List(labels.Everything())
			seen <- len(l)
			return err
		}})
	if err != nil {
		t.Fatal(err)
	}
	f.start(c)
	receive(t, listing, "the Service list")
	if !cache.WaitForCacheSync(f.ctx.Done(), nodes.Informer().HasSynced) {
		t.Fatal("the Node informer never synced")
	}
	select {
	case n := <-seen:
		t.Fatalf("synced with %d Services while the Service informer had not synced", n)
	case <-time.After(200 * time.Millisecond):
	}
	released.Store(true)
	if n := receive(t, seen, "the first sync"); n != 2 {
		t.Errorf("the first sync saw %d Services, want 2", n)
	}
}

func TestEventsMarkKeys(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var marks []string
	synced := make(chan struct{}, 100)
	c, err := New(f.deps(), Spec{Name: "test", MinInterval: time.Millisecond,
		Sources: []Source{{Informer: f.factory.Discovery().V1().EndpointSlices().Informer(), Key: sliceService}},
		Mark: func(k string) {
			mu.Lock()
			marks = append(marks, k)
			mu.Unlock()
		},
		Sync: func(context.Context) error { synced <- struct{}{}; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	f.start(c)
	receive(t, synced, "the first sync")
	take := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			got := slices.Clone(marks)
			if len(got) >= len(want) {
				marks = nil
			}
			mu.Unlock()
			slices.Sort(got)
			if len(got) >= len(want) {
				if !slices.Equal(got, want) {
					t.Errorf("marked %v, want %v", got, want)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("marked %v, want %v", got, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	api := f.client.DiscoveryV1().EndpointSlices("default")
	if _, err := api.Create(f.ctx, slice("s1", "web"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	take("default/web")
	receive(t, synced, "a sync after the event")
	// A slice that moves to another Service changes both.
	if _, err := api.Update(f.ctx, slice("s1", "db"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	take("default/db", "default/web")
	if err := api.Delete(f.ctx, "s1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	take("default/db")
	// A delete seen late comes as a tombstone: the key is the object's.
	c.handler(Source{Key: sliceService}).OnDelete(cache.DeletedFinalStateUnknown{Key: "default/s2", Obj: slice("s2", "cache")})
	take("default/cache")
}

func TestFailuresAreCountedAndRetried(t *testing.T) {
	f := newFixture(t, service("web"))
	var calls atomic.Int32
	done := make(chan struct{}, 10)
	c, err := New(f.deps(), Spec{Name: "test", MinInterval: time.Millisecond,
		Sources: []Source{{Informer: f.factory.Core().V1().Services().Informer()}},
		Sync: func(context.Context) error {
			defer func() { done <- struct{}{} }()
			if calls.Add(1) <= 2 {
				return errors.New("boom")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	f.start(c)
	for i := range 3 {
		receive(t, done, "sync "+string(rune('1'+i)))
	}
	if got := testutil.ToFloat64(f.metrics.SyncFailures.WithLabelValues("test")); got != 2 {
		t.Errorf("failures = %v, want 2", got)
	}
	// done is sent before the controller accounts for the sync: poll.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		got := testutil.ToFloat64(f.metrics.LastSuccess.WithLabelValues("test"))
		if got >= float64(time.Now().Add(-time.Minute).Unix()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("last success = %v, want about now", got)
		}
	}
	if n := testutil.CollectAndCount(f.metrics.SyncDuration); n != 1 {
		t.Errorf("%d duration series, want 1", n)
	}
	select {
	case <-done:
		t.Error("a sync ran after the success without a change")
	case <-time.After(100 * time.Millisecond):
	}
}

func TestHealthTurnsUnhealthyAfterAStall(t *testing.T) {
	f := newFixture(t)
	var fail atomic.Bool
	fail.Store(true)
	tried := make(chan struct{}, 100)
	c, err := New(f.deps(), Spec{Name: "test", MinInterval: time.Millisecond,
		Sources: []Source{{Informer: f.factory.Core().V1().Services().Informer()}},
		Sync: func(context.Context) error {
			defer func() { tried <- struct{}{} }()
			if fail.Load() {
				return errors.New("boom")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	f.start(c)
	receive(t, tried, "the first sync")
	if ok, why := c.Healthy(time.Now().Add(2 * StallAfter)); !ok {
		t.Errorf("unhealthy without any change: %s", why)
	}
	if _, err := f.client.CoreV1().Services("default").Create(f.ctx, service("web"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Syncs keep failing (and are retried): once the event arrived, a
	// wait of two minutes is a stall.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if ok, _ := c.Healthy(time.Now().Add(2 * StallAfter)); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a change waiting two minutes without a successful sync left it healthy")
		}
		receive(t, tried, "a retry")
	}
	if ok, why := c.Healthy(time.Now().Add(10 * time.Second)); !ok {
		t.Errorf("a change waiting 10s made it unhealthy: %s", why)
	}
	rec := httptest.NewRecorder()
	// The handler asks at the real time: not stalled yet.
	HealthHandler(c).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz/test", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Body.String(), "ok") {
		t.Errorf("handler: %d %q", rec.Code, rec.Body.String())
	}
	fail.Store(false)
	// (tried is sent before the controller accounts for the sync: poll.)
	deadline := time.Now().Add(10 * time.Second)
	for ok := false; !ok; ok, _ = c.Healthy(time.Now().Add(2 * StallAfter)) {
		if time.Now().After(deadline) {
			t.Fatal("a successful retry did not make it healthy")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHealthKeepsAChangeSeenDuringASync(t *testing.T) {
	var h health
	t0 := time.Now()
	h.changed(t0)
	start := t0.Add(time.Second)
	h.changed(start.Add(time.Millisecond)) // coalesced: the oldest counts
	h.synced(start, start.Add(time.Second))
	if ok, _ := h.healthy(start.Add(2 * StallAfter)); !ok {
		t.Error("a change seen before the sync started still counts as waiting")
	}
	h.changed(start.Add(3 * time.Second))
	h.synced(start.Add(2*time.Second), start.Add(4*time.Second))
	if ok, _ := h.healthy(start.Add(2 * StallAfter)); ok {
		t.Error("a change seen while a sync ran was taken as synced by it")
	}
}

func TestBadSpecsAreRejected(t *testing.T) {
	f := newFixture(t)
	inf := f.factory.Core().V1().Services().Informer()
	sync := func(context.Context) error { return nil }
	for _, tc := range []struct {
		name string
		d    Deps
		s    Spec
		want string
	}{
		{"no name", f.deps(), Spec{Sources: []Source{{Informer: inf}}, Sync: sync}, "no name"},
		{"no sync", f.deps(), Spec{Name: "a", Sources: []Source{{Informer: inf}}}, "no sync"},
		{"no informer", f.deps(), Spec{Name: "a", Sync: sync}, "no informer"},
		{"a key without mark", f.deps(), Spec{Name: "a", Sources: []Source{{Informer: inf, Key: sliceService}}, Sync: sync}, "no Mark"},
		{"no metrics", Deps{}, Spec{Name: "a", Sources: []Source{{Informer: inf}}, Sync: sync}, "no metrics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.d, tc.s); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	s := Spec{Name: "twice", Sources: []Source{{Informer: inf}}, Sync: sync}
	if _, err := New(f.deps(), s); err != nil {
		t.Fatal(err)
	}
	if _, err := New(f.deps(), s); err == nil {
		t.Error("two controllers share one name's metrics")
	}
}

func TestDocProblems(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	doc := "| `podnet_controller_sync_duration_seconds` | histogram | `controller` |\n" +
		"| `podnet_controller_sync_failures_total` | counter | controller, without quotes |\n" +
		"podnet_controller_last_success_timestamp_seconds without quotes\n" +
		"| `podnet_controller_gone_total` | counter | |\n| `podnet_other_total` | counter | |\n"
	got := DocProblems(reg, doc, func(name string) bool { return strings.HasPrefix(name, "podnet_controller_") })
	want := []string{
		"podnet_controller_gone_total is documented but not registered",
		"podnet_controller_last_success_timestamp_seconds is not documented",
		"podnet_controller_sync_failures_total: label controller is not documented on its line",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestIgnoredUpdatesMarkNothing(t *testing.T) {
	var marked []string
	c := &Controller{spec: Spec{Mark: func(k string) { marked = append(marked, k) }}, runner: runner.New("t", func(context.Context) error { return nil }, time.Hour, 0, nil)}
	sameService := func(old, cur any) bool { return sliceService(old) == sliceService(cur) }
	h := c.handler(Source{Key: sliceService, Ignore: sameService})
	h.OnUpdate(slice("s1", "web"), slice("s1", "web"))
	if len(marked) != 0 {
		t.Errorf("an ignored update marked %v", marked)
	}
	h.OnUpdate(slice("s1", "web"), slice("s1", "db"))
	if !slices.Equal(marked, []string{"default/web", "default/db"}) {
		t.Errorf("an update that matters marked %v, want default/web and default/db", marked)
	}
}

func TestReadyOnlyOnceASyncSucceededAndWhileItKeepsUp(t *testing.T) {
	var h health
	t0 := time.Now()
	if ok, why := h.ready(t0); ok || why != "no successful sync yet" {
		t.Errorf("before any sync: %v %q, want not ready", ok, why)
	}
	h.changed(t0)
	if ok, _ := h.ready(t0.Add(time.Second)); ok {
		t.Error("a change without a sync made it ready")
	}
	h.synced(t0.Add(time.Second), t0.Add(2*time.Second))
	if ok, why := h.ready(t0.Add(3 * time.Second)); !ok {
		t.Errorf("after a successful sync: not ready: %s", why)
	}
	h.changed(t0.Add(4 * time.Second))
	if ok, _ := h.ready(t0.Add(4*time.Second + 2*StallAfter)); ok {
		t.Error("a stalled change left it ready")
	}
}

func TestSameVersion(t *testing.T) {
	a := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", ResourceVersion: "7"}}
	same := a.DeepCopy()
	newer := a.DeepCopy()
	newer.ResourceVersion = "8"
	unversioned := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}}
	for _, tc := range []struct {
		name     string
		old, cur any
		want     bool
	}{
		{"the very object again (a resync)", a, a, true},
		{"a copy of the same version (a relist)", a, same, true},
		{"a new version", a, newer, false},
		{"objects without a version", unversioned, unversioned.DeepCopy(), false},
		{"not objects", "x", "y", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SameVersion(tc.old, tc.cur); got != tc.want {
				t.Errorf("SameVersion = %v, want %v", got, tc.want)
			}
		})
	}
}
