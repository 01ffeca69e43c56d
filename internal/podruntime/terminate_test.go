package podruntime

// Fixture conventions for the termination tests (root only): the pod of
// runPod (api_test.go) with one container "app", a shell that on SIGTERM
// creates the file $dir/lame-duck and goes on running for 4 s before it
// exits 0, as a server in its lame-duck period does. Both its probes fail
// once that file exists; every run of the readiness probe appends a line to
// $dir/probes. The API is a fake holding the pod, and every
// status the worker pushes is recorded with the time the container was
// then known to run.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// pushedStatus is one status the worker wrote to the API.
type pushedStatus struct {
	ready   v1.ConditionStatus // the pod's Ready condition
	running bool               // container "app" was running in it
}

// statusLog records the statuses written to a fake API.
type statusLog struct {
	mu       sync.Mutex
	statuses []pushedStatus
}

func (l *statusLog) record(a k8stesting.Action) (bool, runtime.Object, error) {
	u, ok := a.(k8stesting.UpdateAction)
	if !ok || a.GetSubresource() != "status" {
		return false, nil, nil
	}
	p := u.GetObject().(*v1.Pod)
	var s pushedStatus
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			s.ready = c.Status
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == "app" {
			s.running = cs.State.Running != nil
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.statuses = append(l.statuses, s)
	return false, nil, nil // the fake stores it
}

func (l *statusLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, s := range l.statuses {
		fmt.Fprintf(&b, "[Ready=%s running=%t] ", s.ready, s.running)
	}
	return b.String()
}

// find reports whether some pushed status is Ready=ready with the container
// running.
func (l *statusLog) find(ready v1.ConditionStatus) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.statuses {
		if s.ready == ready && s.running {
			return true
		}
	}
	return false
}

// lameDuckPod runs the fixture's pod and waits until it is ready and its
// ready status is in the API.
func lameDuckPod(t *testing.T) (*testRun, *statusLog, string) {
	t.Helper()
	dir := t.TempDir()
	lameDuck, probes := filepath.Join(dir, "lame-duck"), filepath.Join(dir, "probes")
	// Ready only once the shell has set its trap: a SIGTERM before that
	// would end it at once (exit 143), as it did once on a loaded machine.
	trapped := filepath.Join(dir, "trapped")
	healthy := []string{"test", "!", "-f", lameDuck}
	app := v1.Container{Name: "app", Command: []string{"sh", "-c",
		"trap 'touch " + lameDuck + "; sleep 4; exit 0' TERM; touch " + trapped + "; while :; do sleep 0.1; done"},
		ReadinessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{
			Command: []string{"sh", "-c", "echo probe >> " + probes + "; test -f " + trapped + " && test ! -f " + lameDuck}}},
			PeriodSeconds: 1, FailureThreshold: 1},
		LivenessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: healthy}},
			PeriodSeconds: 1, FailureThreshold: 1}}
	tr := runPod(t, app)
	log := &statusLog{}
	client := fake.NewClientset(tr.w.pod.DeepCopy())
	client.PrependReactor("update", "pods", log.record)
	tr.w.r.client = client
	deadline := time.After(20 * time.Second)
	for c := tr.w.containers["app"]; !c.ready; {
		select {
		case ev := <-tr.w.events:
			tr.w.handle(ev)
		case <-deadline:
			t.Fatal("the container never became ready")
		}
	}
	tr.w.pushStatus()
	if !log.find(v1.ConditionTrue) {
		t.Fatalf("the ready pod's status was not pushed: %s", log)
	}
	return tr, log, probes
}

// A pod being deleted keeps running its readiness probes until its
// containers exit, as the kubelet does: a server that fails /ready in its
// lame-duck period makes the pod Ready=false in the API while it still
// runs, so that EndpointSlices mark it not serving before it exits. The
// liveness probe stops at once: its failure during termination kills
// nothing. Once the container has exited, its probes stop.
func TestATerminatingPodsReadinessIsProbedUntilItsContainersExit(t *testing.T) {
	tr, log, probes := lameDuckPod(t)
	now := metav1.Now()
	tr.w.pod.DeletionTimestamp = &now
	start := time.Now()
	tr.w.killAll(15 * time.Second)
	took := time.Since(start)
	c := tr.w.containers["app"]
	if c.running || !c.finished || c.curExit == nil {
		t.Fatalf("after killAll the container runs or is not finished: %+v", c)
	}
	if c.curExit.code != 0 || took < 3*time.Second {
		t.Errorf("the container exited with code %d after %s, want 0 after its 4 s lame duck "+
			"(a liveness probe must not kill a terminating container)", c.curExit.code, took.Round(time.Millisecond))
	}
	if !log.find(v1.ConditionFalse) {
		t.Errorf("no status with Ready=False while the container ran; pushed: %s", log)
	}

	count := func() int {
		b, _ := os.ReadFile(probes)
		return strings.Count(string(b), "probe\n")
	}
	before := count()
	time.Sleep(2500 * time.Millisecond)
	if after := count(); after != before {
		t.Errorf("the readiness probe ran %d times after the container exited", after-before)
	}
}
