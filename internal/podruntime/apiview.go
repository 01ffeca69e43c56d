package podruntime

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/podnet/podnet/internal/crilog"
	"github.com/podnet/podnet/internal/kubeletapi"
)

// apiState is what the kubelet API reads of the pods. Only a pod's worker
// touches its fields, so after every change it publishes an immutable view
// here; the API reads views and never a worker.
type apiState struct {
	// mu guards pods.
	mu   sync.Mutex
	pods map[types.UID]*podView
}

// podView is a pod as its worker last published it.
type podView struct {
	pod        *v1.Pod
	sb         *sandbox // a copy; nil before the pod has its network
	containers map[string]containerView
}

type containerView struct {
	spec    v1.Container
	running bool
	// restarting: exited and waiting for its restart (CrashLoopBackOff).
	restarting   bool
	out, prevOut *crilog.Capture
}

// previous is the log of the last terminated instance, as `kubectl logs
// --previous` means it: while the container waits for its restart that is
// the latest one.
func (c containerView) previous() *crilog.Capture {
	if c.restarting {
		return c.out
	}
	return c.prevOut
}

// publish records the worker's pod for the kubelet API.
func (w *podWorker) publish() {
	v := &podView{pod: w.pod, containers: make(map[string]containerView, len(w.containers))}
	if w.sandbox != nil {
		sb := *w.sandbox
		v.sb = &sb
	}
	for name, c := range w.containers {
		v.containers[name] = containerView{spec: c.spec, running: c.running, out: c.out, prevOut: c.prevOut,
			restarting: !c.running && !c.finished && c.curExit != nil}
	}
	w.r.api.mu.Lock()
	defer w.r.api.mu.Unlock()
	if w.r.api.pods == nil {
		w.r.api.pods = map[types.UID]*podView{}
	}
	w.r.api.pods[w.pod.UID] = v
}

// unpublish forgets the worker's pod (it is gone).
func (w *podWorker) unpublish() {
	w.r.api.mu.Lock()
	defer w.r.api.mu.Unlock()
	delete(w.r.api.pods, w.pod.UID)
}

// find returns the view of t's pod: the one with t's UID when given, else
// the one not being deleted (a pod of the same name may be on its way out).
func (s *apiState) find(t kubeletapi.Target) (*podView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found *podView
	for uid, v := range s.pods {
		if v.pod.Namespace != t.Namespace || v.pod.Name != t.Pod || (t.UID != "" && t.UID != uid) {
			continue
		}
		if found == nil || found.pod.DeletionTimestamp != nil {
			found = v
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %s/%s is not on this node", kubeletapi.ErrPodNotFound, t.Namespace, t.Pod)
	}
	return found, nil
}

func (s *apiState) list() []*v1.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	pods := make([]*v1.Pod, 0, len(s.pods))
	for _, v := range s.pods {
		pods = append(pods, v.pod)
	}
	return pods
}

// capture starts the log of instance restarts of container name:
// logs/<name>/<restarts>.log in the CRI format (the kubelet's
// /var/log/pods layout), keeping the one before for --previous, while
// logs/<name>.log goes on collecting the plain output of every instance
// (podnet logs reads it).
func (sb *sandbox) capture(name string, restarts int32) (*crilog.Capture, error) {
	dir := filepath.Join(sb.dir, "logs", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if restarts >= 2 {
		_ = os.Remove(filepath.Join(dir, fmt.Sprintf("%d.log", restarts-2)))
	}
	raw, err := os.OpenFile(filepath.Join(sb.dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	c, err := crilog.NewCapture(filepath.Join(dir, fmt.Sprintf("%d.log", restarts)), raw)
	if err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}
