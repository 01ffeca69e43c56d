package podruntime

import (
	"context"
	"net/netip"
	"strconv"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// When another writer changes the status the worker reported — the node
// lifecycle controller marks every pod of a node not Ready once its Lease
// is stale, as after an API-server outage — the worker writes its own
// status back at the next pod update, as the kubelet's status manager
// does. Its own write coming back, an update that leaves its fields alone,
// or no update at all write nothing.
func TestAStatusOverwrittenByAnotherWriterIsWrittenBack(t *testing.T) {
	w, _ := eventWorker(t, v1.RestartPolicyAlways)
	w.sandbox = &sandbox{ips: []netip.Addr{netip.MustParseAddr("10.244.1.5")}}
	running(w, "c").ready = true
	running(w, "d").ready = true
	client := w.r.client.(*fake.Clientset)
	// The fake keeps resourceVersions as given: each status write gets
	// the next one, as the API server would give it.
	writes, rv := 0, 10
	client.PrependReactor("update", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "status" {
			writes++
			rv++
			a.(k8stesting.UpdateAction).GetObject().(*v1.Pod).ResourceVersion = strconv.Itoa(rv)
		}
		return false, nil, nil
	})
	ctx := context.Background()
	apiPod := func() *v1.Pod {
		t.Helper()
		p, err := client.CoreV1().Pods("shop").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// store writes p to the fake API as another writer does (no status
	// write of the worker's) and hands it to the worker as its informer
	// would.
	store := func(p *v1.Pod, rv string) {
		t.Helper()
		p.ResourceVersion = rv
		if err := client.Tracker().Update(v1.SchemeGroupVersion.WithResource("pods"), p, p.Namespace); err != nil {
			t.Fatal(err)
		}
		w.pod, w.fresh = p.DeepCopy(), true
	}
	readyInAPI := func() v1.ConditionStatus {
		for _, c := range apiPod().Status.Conditions {
			if c.Type == v1.PodReady {
				return c.Status
			}
		}
		return ""
	}

	w.pushStatus()
	if writes != 1 || readyInAPI() != v1.ConditionTrue {
		t.Fatalf("first push: %d status writes, Ready=%s in the API; want 1 and True", writes, readyInAPI())
	}
	steps := []struct {
		name       string
		change     func()
		wantWrites int
	}{
		{"the worker's own write comes back", func() { w.pod, w.fresh = apiPod(), true }, 1},
		{"a label changes, the status stays", func() {
			p := apiPod()
			p.Labels = map[string]string{"tier": "front"}
			store(p, "50")
		}, 1},
		{"the node lifecycle controller marks the pod not Ready", func() {
			p := apiPod()
			for i, c := range p.Status.Conditions {
				if c.Type == v1.PodReady || c.Type == v1.ContainersReady {
					p.Status.Conditions[i].Status, p.Status.Conditions[i].Reason = v1.ConditionFalse, "NodeNotReady"
				}
			}
			store(p, "60")
		}, 2},
		{"no new object: the same one is not looked at again", func() {}, 2},
		{"the written-back status comes back", func() { w.pod, w.fresh = apiPod(), true }, 2},
	}
	for _, s := range steps {
		s.change()
		w.pushStatus()
		if writes != s.wantWrites {
			t.Errorf("%s: %d status writes in all, want %d", s.name, writes, s.wantWrites)
		}
		if got := readyInAPI(); got != v1.ConditionTrue {
			t.Errorf("%s: Ready=%s in the API, want True", s.name, got)
		}
	}
	// A pod another writer ended (the pod garbage collector sets Failed)
	// is not made running again.
	p := apiPod()
	p.Status.Phase = v1.PodFailed
	store(p, "70")
	w.pushStatus()
	if writes != 2 || apiPod().Status.Phase != v1.PodFailed {
		t.Errorf("a pod marked Failed by another writer: %d status writes in all, phase %s in the API; want 2 and Failed",
			writes, apiPod().Status.Phase)
	}
}

func TestSameOwnStatusComparesWhatTheWorkerSets(t *testing.T) {
	own := v1.PodStatus{Phase: v1.PodRunning, PodIP: "10.244.1.5", PodIPs: []v1.PodIP{{IP: "10.244.1.5"}},
		Conditions:        []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue}},
		ContainerStatuses: []v1.ContainerStatus{{Name: "c", Ready: true, RestartCount: 1}}}
	for _, c := range []struct {
		name   string
		change func(*v1.PodStatus)
		same   bool
	}{
		{"identical", func(*v1.PodStatus) {}, true},
		{"times and extra conditions of others", func(s *v1.PodStatus) {
			s.Conditions[0].LastTransitionTime = metav1.Now()
			s.Conditions = append(s.Conditions, v1.PodCondition{Type: "DisruptionTarget", Status: v1.ConditionTrue})
		}, true},
		{"Ready turned False", func(s *v1.PodStatus) { s.Conditions[0].Status = v1.ConditionFalse }, false},
		{"Ready missing", func(s *v1.PodStatus) { s.Conditions = nil }, false},
		{"another phase", func(s *v1.PodStatus) { s.Phase = v1.PodFailed }, false},
		{"another IP", func(s *v1.PodStatus) { s.PodIPs = []v1.PodIP{{IP: "10.244.1.6"}} }, false},
		{"a container not ready", func(s *v1.PodStatus) { s.ContainerStatuses[0].Ready = false }, false},
		{"another restart count", func(s *v1.PodStatus) { s.ContainerStatuses[0].RestartCount = 0 }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			api := *own.DeepCopy()
			c.change(&api)
			if got := sameOwnStatus(api, own); got != c.same {
				t.Errorf("sameOwnStatus = %v, want %v", got, c.same)
			}
		})
	}
}
