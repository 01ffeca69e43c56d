package podruntime

// Fixture conventions for the Event tests: pod shop/web (UID testUID) on
// node-1 with containers "c" and "d", played by a worker whose runtime has
// a capturing recorder and a fake API; nothing runs and nothing needs root
// except where a test says so. Events are compared as
// "<type> <reason> <fieldPath>: <message>" strings.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
)

// captureRecorder is a record.EventRecorder that keeps what it is given.
type captureRecorder struct {
	mu     sync.Mutex
	events []string
}

var _ record.EventRecorder = (*captureRecorder)(nil)

func (c *captureRecorder) Event(o runtime.Object, eventtype, reason, message string) {
	c.Eventf(o, eventtype, reason, "%s", message)
}

func (c *captureRecorder) AnnotatedEventf(o runtime.Object, _ map[string]string, eventtype, reason, format string, args ...any) {
	c.Eventf(o, eventtype, reason, format, args...)
}

func (c *captureRecorder) Eventf(o runtime.Object, eventtype, reason, format string, args ...any) {
	ref, ok := o.(*v1.ObjectReference)
	if !ok || ref.Kind != "Pod" || ref.APIVersion != "v1" || ref.Namespace != "shop" || ref.Name != "web" || ref.UID != testUID {
		panic(fmt.Sprintf("event about %#v, want a reference to pod shop/web", o))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, fmt.Sprintf("%s %s %s: %s", eventtype, reason, ref.FieldPath, fmt.Sprintf(format, args...)))
}

// take returns the events recorded since the last take.
func (c *captureRecorder) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.events
	c.events = nil
	return e
}

// eventWorker is a worker for pod shop/web on a runtime with a capturing
// recorder, a fake API holding the pod and an empty CNI configuration
// directory; its podnet binary does not exist.
func eventWorker(t *testing.T, policy v1.RestartPolicy) (*podWorker, *captureRecorder) {
	t.Helper()
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: testUID},
		Spec: v1.PodSpec{NodeName: "node-1", RestartPolicy: policy,
			Containers: []v1.Container{{Name: "c", Command: []string{"sleep", "1000"}}, {Name: "d", Command: []string{"true"}}}}}
	rec := &captureRecorder{}
	r := &Runtime{cfg: Config{NodeName: "node-1", NodeIP: netip.MustParseAddr("172.30.0.11"), StateDir: t.TempDir(),
		CNIConfDir: t.TempDir(), Self: "/nonexistent/podnet"},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), client: fake.NewClientset(pod), recorder: rec,
		workers: map[types.UID]*podWorker{}, probeClient: &http.Client{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w := &podWorker{r: r, ctx: ctx, events: make(chan event, 16), pod: pod, containers: map[string]*container{},
		done: make(chan struct{})}
	return w, rec
}

// running gives the worker a running container (no process) of
// generation 1.
func running(w *podWorker, name string) *container {
	for _, spec := range w.pod.Spec.Containers {
		if spec.Name == name {
			c := &container{spec: spec, running: true, generation: 1, startedAt: time.Now()}
			w.containers[name] = c
			return c
		}
	}
	panic("no container " + name)
}

func TestEventsOfContainerTransitions(t *testing.T) {
	backOff := "Warning BackOff spec.containers{c}: Back-off restarting failed container c in pod web_shop(" + testUID + ")"
	for _, tc := range []struct {
		name   string
		policy v1.RestartPolicy
		ev     event
		want   []string
	}{
		{"a container that failed and will be restarted backs off", v1.RestartPolicyAlways,
			event{kind: evExit, code: 1}, []string{backOff}},
		{"a container that completed under restartPolicy Always backs off too", v1.RestartPolicyAlways,
			event{kind: evExit, code: 0}, []string{backOff}},
		{"a container that completed under OnFailure is done, with no event", v1.RestartPolicyOnFailure,
			event{kind: evExit, code: 0}, nil},
		{"a container that failed under Never is done, with no event", v1.RestartPolicyNever,
			event{kind: evExit, code: 2}, nil},
		{"a failed liveness probe kills the container to restart it", v1.RestartPolicyAlways,
			event{kind: evLivenessFailed}, []string{"Normal Killing spec.containers{c}: Container c failed liveness probe, will be restarted"}},
		{"a failed liveness probe under Never kills it for good", v1.RestartPolicyNever,
			event{kind: evLivenessFailed}, []string{"Normal Killing spec.containers{c}: Container c failed liveness probe"}},
		{"a readiness result is no event (failures are recorded by the probe)", v1.RestartPolicyAlways,
			event{kind: evReady, ok: false}, nil},
		{"the exit of an earlier instance is no event", v1.RestartPolicyAlways,
			event{kind: evExit, code: 1, generation: 7}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, rec := eventWorker(t, tc.policy)
			running(w, "c")
			tc.ev.container = "c"
			if tc.ev.generation == 0 {
				tc.ev.generation = 1
			}
			tc.ev.at = time.Now()
			w.handle(tc.ev)
			if got := rec.take(); !slices.Equal(got, tc.want) {
				t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestEventsOfADeletedPodNameEachRunningContainer(t *testing.T) {
	w, rec := eventWorker(t, v1.RestartPolicyAlways)
	running(w, "c")
	d := running(w, "d")
	d.running, d.finished = false, true
	now := metav1.Now()
	w.pod.DeletionTimestamp, w.pod.DeletionGracePeriodSeconds = &now, new(int64)
	*w.pod.DeletionGracePeriodSeconds = 5
	w.events <- event{kind: evExit, container: "c", generation: 1, code: 143, at: time.Now()}
	if done := w.reconcile(); !done {
		t.Fatal("the deleted pod's worker did not finish")
	}
	want := []string{"Normal Killing spec.containers{c}: Stopping container c"}
	if got := rec.take(); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

func TestEventsOfAPodWaitingForItsNetwork(t *testing.T) {
	w, rec := eventWorker(t, v1.RestartPolicyAlways)
	notReady := "Warning NetworkNotReady : network is not ready: container runtime network not ready: " +
		"NetworkReady=false reason:NetworkPluginNotReady message:no CNI configuration in " + w.r.cfg.CNIConfDir +
		" yet (the podnet agent writes it once the node has a pod CIDR)"
	w.reconcile()
	if got := rec.take(); !slices.Equal(got, []string{notReady}) {
		t.Errorf("node without CNI configuration: events %q, want %q", got, notReady)
	}
	w.reconcile()
	if got := rec.take(); len(got) != 0 {
		t.Errorf("the same warning again at once, want it only after %s: %q", podWarningRepeat, got)
	}
	w.warned.at = time.Now().Add(-podWarningRepeat)
	w.reconcile()
	if got := rec.take(); !slices.Equal(got, []string{notReady}) {
		t.Errorf("after %s: events %q, want the warning again (the correlator counts it)", podWarningRepeat, got)
	}

	// A configuration that libcni cannot load fails the sandbox, with
	// libcni's error.
	conflist := filepath.Join(w.r.cfg.CNIConfDir, "10-podnet.conflist")
	if err := os.WriteFile(conflist, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.reconcile()
	got := rec.take()
	if len(got) != 1 || !strings.HasPrefix(got[0], "Warning FailedCreatePodSandBox : Failed to create pod sandbox: ") ||
		!strings.Contains(got[0], conflist) {
		t.Errorf("broken CNI configuration: events %q, want one FailedCreatePodSandBox naming %s", got, conflist)
	}
}

func TestEventsOfAContainerThatCannotStart(t *testing.T) {
	w, rec := eventWorker(t, v1.RestartPolicyAlways)
	w.sandbox = &sandbox{dir: t.TempDir(), ips: []netip.Addr{netip.MustParseAddr("10.244.1.5")}}
	c := &container{spec: w.pod.Spec.Containers[0]}
	if err := w.start(c); err == nil {
		t.Fatal("a container started with a podnet binary that does not exist")
	}
	got := rec.take()
	if len(got) != 1 || !strings.HasPrefix(got[0], "Warning Failed spec.containers{c}: Error: start c: ") ||
		!strings.Contains(got[0], "/nonexistent/podnet") {
		t.Errorf("events %q, want one Failed with the start error", got)
	}
}

func TestEventsOfFailedProbesCarryTheProbesOutput(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not yet", http.StatusInternalServerError)
	}))
	defer srv.Close()
	srvPort := srv.Listener.Addr().(*net.TCPAddr).Port
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	for _, tc := range []struct {
		name, probeType string
		probe           v1.ProbeHandler
		want            string
	}{
		{"an HTTP probe answered 500", "Readiness",
			v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt(srvPort)}},
			"Readiness probe failed: HTTP probe failed with statuscode: 500"},
		{"a TCP probe refused", "Liveness",
			v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt(closedPort)}},
			fmt.Sprintf("Liveness probe failed: dial tcp 127.0.0.1:%d: connect: connection refused", closedPort)},
		{"a probe on a port name the pod does not declare", "Readiness",
			v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Port: intstr.FromString("admin")}},
			`Readiness probe failed: no container port named "admin"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, rec := eventWorker(t, v1.RestartPolicyAlways)
			w.sandbox = &sandbox{ips: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}
			results := make(chan bool, 4)
			ctx, cancel := context.WithCancel(w.ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				w.probeLoop(ctx, &v1.Probe{ProbeHandler: tc.probe, PeriodSeconds: 1, FailureThreshold: 1},
					nil, func(ok bool) { results <- ok }, w.probeFailed("c", tc.probeType), tc.probeType == "Liveness")
			}()
			select {
			case ok := <-results:
				if ok {
					t.Fatal("the probe passed")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no probe result")
			}
			cancel()
			<-done
			want := "Warning Unhealthy spec.containers{c}: " + tc.want
			if got := rec.take(); len(got) != 1 || got[0] != want {
				t.Errorf("events %q, want [%q]", got, want)
			}
		})
	}
}

func TestEventsOfAStartedContainerAndItsExecProbe(t *testing.T) {
	tr := runPod(t) // root: the container and the probe run in a pod
	rec := &captureRecorder{}
	tr.w.r.recorder = rec
	spec := v1.Container{Name: "c", Command: []string{"sleep", "1000"}, ReadinessProbe: &v1.Probe{
		ProbeHandler:  v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"sh", "-c", "echo not ready; echo because >&2; exit 1"}}},
		PeriodSeconds: 1}}
	tr.w.pod.Spec.Containers = []v1.Container{spec}
	c := &container{spec: spec}
	tr.w.containers["c"] = c
	if err := tr.w.start(c); err != nil {
		t.Fatal(err)
	}
	want := []string{"Normal Created spec.containers{c}: Container created", "Normal Started spec.containers{c}: Container started",
		"Warning Unhealthy spec.containers{c}: Readiness probe failed: not ready\nbecause\n"}
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		got = append(got, rec.take()...)
		time.Sleep(50 * time.Millisecond)
	}
	if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Errorf("events:\n%q\nwant first:\n%q", got, want)
	}
}

// The correlator is the kubelet's: repeats of one event are counted in one
// Event, events that differ only in their message are combined after 10,
// and one object gets at most 25 per type before the rate limit.
func TestEventsAreCorrelatedAsTheKubeletsAre(t *testing.T) {
	client := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := newEventRecorder(ctx, client, "node-1")
	pod := func(name string) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: types.UID(name + "-uid")}}
	}
	crashing, flapping := pod("crashing"), pod("flapping")
	for range 40 {
		recordEvent(rec, podRef(crashing, "c"), v1.EventTypeWarning, reasonBackOff, "Back-off restarting failed container c in pod %s", podDesc(crashing))
	}
	for i := range 12 {
		recordEvent(rec, podRef(flapping, "c"), v1.EventTypeWarning, reasonUnhealthy, "Readiness probe failed: attempt %d", i)
	}
	var list *v1.EventList
	eventually := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var err error
			if list, err = client.CoreV1().Events("shop").List(ctx, metav1.ListOptions{}); err != nil {
				t.Fatal(err)
			}
			if ok() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: events %+v", what, list.Items)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	about := func(name string) []v1.Event {
		var out []v1.Event
		for _, e := range list.Items {
			if e.InvolvedObject.Name == name {
				out = append(out, e)
			}
		}
		return out
	}
	eventually("40 BackOffs are one Event counting the 25 the rate limit lets through", func() bool {
		e := about("crashing")
		return len(e) == 1 && e[0].Count == 25
	})
	e := about("crashing")[0]
	if e.Source != (v1.EventSource{Component: "kubelet", Host: "node-1"}) || e.InvolvedObject.FieldPath != "spec.containers{c}" ||
		e.Type != v1.EventTypeWarning || e.Reason != "BackOff" || e.InvolvedObject.UID != "crashing-uid" {
		t.Errorf("BackOff event %+v", e)
	}
	eventually("12 Unhealthy with different outputs are 9 Events and one combining the rest", func() bool {
		combined := 0
		for _, e := range about("flapping") {
			if strings.HasPrefix(e.Message, "(combined from similar events): Readiness probe failed: attempt ") && e.Count == 3 {
				combined++
			}
		}
		return len(about("flapping")) == 10 && combined == 1
	})
}
