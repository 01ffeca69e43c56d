package podruntime

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

type eventKind int

const (
	evExit eventKind = iota
	evReady
	evLivenessFailed
	evPoke
)

type event struct {
	kind       eventKind
	container  string
	generation int
	code       int
	ok         bool
	at         time.Time
}

// podWorker owns one pod: only its goroutine touches the fields below.
type podWorker struct {
	r   *Runtime
	ctx context.Context

	updates chan *v1.Pod // latest pod object; nil means deleted from the API
	events  chan event

	pod        *v1.Pod
	gone       bool // the API object is gone
	sandbox    *sandbox
	sandboxErr string
	containers map[string]*container
	startTime  *metav1.Time
	lastStatus *v1.PodStatus
	// pushedRV is the resourceVersion the API gave the pod for
	// lastStatus; fresh is set when a newer pod object arrived since the
	// last pushStatus (see overwritten).
	pushedRV  string
	fresh     bool
	nextRetry time.Time
	warned    warningGate // of the pod's Events (events.go)
	done      chan struct{}
}

func (w *podWorker) key() string { return w.pod.Namespace + "/" + w.pod.Name }

func (w *podWorker) send(ev event) {
	select {
	case w.events <- ev:
	case <-w.done:
	}
}

// update hands the worker the newest pod object without blocking.
func (w *podWorker) update(p *v1.Pod) {
	for {
		select {
		case w.updates <- p:
			return
		default:
		}
		select {
		case <-w.updates: // drop the stale one
		default:
		}
	}
}

func (w *podWorker) run() {
	defer close(w.done)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-w.ctx.Done():
			w.killAll(0)
			return
		case p := <-w.updates:
			if p == nil {
				w.gone = true
			} else {
				w.pod, w.fresh = p, true
			}
		case ev := <-w.events:
			w.handle(ev)
		case <-tick.C:
		}
		if finished := w.reconcile(); finished {
			w.unpublish()
			return
		}
		w.publish()
	}
}

func (w *podWorker) handle(ev event) {
	c := w.containers[ev.container]
	if c == nil || ev.generation != c.generation {
		return // an old process or probe
	}
	switch ev.kind {
	case evExit:
		c.exited(ev)
		if w.terminating() || !shouldRestart(w.pod.Spec.RestartPolicy, ev.code) {
			c.finished = true
			return
		}
		if time.Since(c.startedAt) > backoffReset {
			c.backoff = 0
		}
		c.backoff = min(max(c.backoff*2, initialBackoff), maxBackoff)
		c.nextStart = time.Now().Add(c.backoff)
		w.backingOff(c)
		w.r.log.Info("container exited; restarting after backoff", "pod", w.key(), "container", c.spec.Name, "code", ev.code, "backoff", c.backoff)
	case evReady:
		if c.running {
			c.ready = ev.ok
		}
	case evLivenessFailed:
		if c.running && !w.terminating() {
			w.r.log.Info("liveness probe failed; killing container", "pod", w.key(), "container", c.spec.Name)
			w.livenessKill(c)
			c.signal(syscall.SIGKILL)
		}
	}
}

func (w *podWorker) terminating() bool {
	return w.gone || w.pod.DeletionTimestamp != nil
}

// reconcile moves the pod toward its desired state and reports status. It
// returns true when the worker is done (the pod is deleted and cleaned up).
func (w *podWorker) reconcile() bool {
	ctx := w.ctx
	if w.terminating() {
		grace := int64(30)
		if w.pod.DeletionGracePeriodSeconds != nil {
			grace = *w.pod.DeletionGracePeriodSeconds
		}
		w.stopping()
		w.killAll(time.Duration(grace) * time.Second)
		if err := w.r.teardownSandbox(ctx, w.pod, w.sandbox); err != nil {
			w.r.log.Warn("sandbox teardown", "pod", w.key(), "err", err)
		}
		w.sandbox = nil
		if !w.gone {
			err := w.r.client.CoreV1().Pods(w.pod.Namespace).Delete(ctx, w.pod.Name, metav1.DeleteOptions{
				GracePeriodSeconds: ptr.To[int64](0), Preconditions: metav1.NewUIDPreconditions(string(w.pod.UID))})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				w.r.log.Warn("final delete", "pod", w.key(), "err", err)
				return false
			}
		}
		w.r.log.Info("pod removed", "pod", w.key())
		return true
	}
	if w.sandbox == nil && time.Now().After(w.nextRetry) && !w.podFinished() {
		if ready, msg := w.r.networkReady(); !ready {
			w.sandboxErr = msg
			w.networkNotReady(msg)
		} else if sb, err := w.r.createSandbox(ctx, w.pod); err != nil {
			w.sandboxErr = err.Error()
			w.sandboxFailed(err)
			w.nextRetry = time.Now().Add(2 * time.Second)
			w.r.log.Warn("sandbox", "pod", w.key(), "err", err)
		} else {
			w.sandbox, w.sandboxErr = sb, ""
			now := metav1.Now()
			w.startTime = &now
			w.r.log.Info("sandbox ready", "pod", w.key(), "ips", sb.ips, "netns", sb.nsPath)
		}
	}
	if w.sandbox != nil {
		for _, spec := range w.pod.Spec.Containers {
			c := w.containers[spec.Name]
			if c == nil {
				c = &container{spec: spec}
				w.containers[spec.Name] = c
			}
			if c.running || c.finished || time.Now().Before(c.nextStart) {
				continue
			}
			if c.curExit != nil {
				c.lastExit, c.curExit = c.curExit, nil
				c.restarts++
			}
			if err := w.start(c); err != nil {
				w.r.log.Warn("start container", "pod", w.key(), "err", err)
				c.curExit = &exitInfo{code: 128, reason: "StartError", startedAt: time.Now(), finishedAt: time.Now()}
				c.nextStart = time.Now().Add(maxBackoff)
			}
		}
		if w.podFinished() {
			// A finished pod gives its network back, as the kubelet does.
			if err := w.r.teardownSandbox(ctx, w.pod, w.sandbox); err == nil {
				w.sandbox.nsPath = ""
			}
		}
	}
	w.pushStatus()
	return false
}

// podFinished reports whether every container has finished for good.
func (w *podWorker) podFinished() bool {
	if len(w.containers) < len(w.pod.Spec.Containers) {
		return false
	}
	for _, c := range w.containers {
		if !c.finished {
			return false
		}
	}
	return len(w.containers) > 0
}

// killAll stops every container: SIGTERM, then SIGKILL after grace (at once
// when grace is 0). As the kubelet does, liveness probes stop at once while
// readiness probes go on until their container exits, and their results
// are pushed as the pod's status meanwhile: a server failing its readiness
// in a lame-duck period turns the pod not ready, and its endpoints not
// serving, before it exits.
func (w *podWorker) killAll(grace time.Duration) {
	running := 0
	for _, c := range w.containers {
		if !c.running {
			continue
		}
		running++
		if grace <= 0 {
			stopIfSet(c.stopProbes)
			c.signal(syscall.SIGKILL)
		} else {
			stopIfSet(c.stopLiveness)
			c.signal(syscall.SIGTERM)
		}
	}
	deadline := time.After(grace)
	for running > 0 {
		select {
		case ev := <-w.events:
			if w.handleTerminating(ev) {
				running--
			}
		case <-deadline:
			for _, c := range w.containers {
				c.signal(syscall.SIGKILL)
			}
			deadline = nil
		}
	}
}

// handleTerminating handles an event of a pod whose containers are being
// stopped and reports whether a running container exited. A readiness
// change is pushed as status at once; a liveness failure kills nothing.
func (w *podWorker) handleTerminating(ev event) bool {
	c := w.containers[ev.container]
	if c == nil || ev.generation != c.generation || !c.running {
		return false
	}
	switch ev.kind {
	case evExit:
		c.exited(ev)
		c.finished = true
		return true
	case evReady:
		if c.ready != ev.ok {
			c.ready = ev.ok
			w.r.log.Info("terminating container's readiness changed", "pod", w.key(), "container", c.spec.Name, "ready", ev.ok)
			w.pushStatus()
		}
	}
	return false
}

// stopIfSet calls stop, a probe's cancel function, if there is one.
func stopIfSet(stop func()) {
	if stop != nil {
		stop()
	}
}

// exited records the exit ev of c's process and stops its probes.
func (c *container) exited(ev event) {
	c.running, c.ready = false, false
	stopIfSet(c.stopProbes)
	reason := "Completed"
	if ev.code != 0 {
		reason = "Error"
	}
	c.curExit = &exitInfo{code: ev.code, reason: reason, startedAt: c.startedAt, finishedAt: ev.at}
}

func (w *podWorker) pushStatus() {
	st := w.status()
	if w.lastStatus != nil && reflect.DeepEqual(*w.lastStatus, st) && !w.overwritten(st) {
		return
	}
	for attempt := 0; attempt < 3; attempt++ {
		p, err := w.r.client.CoreV1().Pods(w.pod.Namespace).Get(w.ctx, w.pod.Name, metav1.GetOptions{})
		if err != nil || p.UID != w.pod.UID {
			return
		}
		p.Status = st
		p, err = w.r.client.CoreV1().Pods(w.pod.Namespace).UpdateStatus(w.ctx, p, metav1.UpdateOptions{})
		if err == nil {
			w.lastStatus, w.pushedRV, w.fresh = &st, p.ResourceVersion, false
			return
		}
		if !apierrors.IsConflict(err) {
			w.r.log.Warn("pod status", "pod", w.key(), "err", err)
			return
		}
	}
}

// overwritten reports whether someone else changed what this worker last
// wrote: a pod object that arrived since the last check, other than the one
// its own write returned, whose phase, IPs, conditions or container
// readiness differ from st. The node lifecycle controller does that: when a
// node's Lease has gone stale, as during an API-server outage, it marks
// every pod of the node not Ready, and nobody but the node sets them Ready
// again; their endpoints would stay out of their Services for good. The
// kubelet's status manager writes its own view back in that case
// (needsReconcile); so does the worker.
func (w *podWorker) overwritten(st v1.PodStatus) bool {
	if !w.fresh {
		return false
	}
	w.fresh = false
	if terminal(w.pod.Status.Phase) && !terminal(st.Phase) {
		// A pod the API says has ended (the pod garbage collector's
		// Failed) is never made running again, as with the kubelet.
		return false
	}
	return w.pod.ResourceVersion != w.pushedRV && !sameOwnStatus(w.pod.Status, st)
}

func terminal(p v1.PodPhase) bool { return p == v1.PodSucceeded || p == v1.PodFailed }

// sameOwnStatus reports whether api shows what the worker reported in own:
// the phase, the pod IPs, the status of each condition and the readiness
// and restarts of each container (the fields that survive the round trip
// exactly; times lose their fraction of a second).
func sameOwnStatus(api, own v1.PodStatus) bool {
	if api.Phase != own.Phase || api.PodIP != own.PodIP || !slices.Equal(api.PodIPs, own.PodIPs) {
		return false
	}
	for _, c := range own.Conditions {
		if !slices.ContainsFunc(api.Conditions, func(a v1.PodCondition) bool { return a.Type == c.Type && a.Status == c.Status }) {
			return false
		}
	}
	for _, cs := range own.ContainerStatuses {
		if !slices.ContainsFunc(api.ContainerStatuses, func(a v1.ContainerStatus) bool {
			return a.Name == cs.Name && a.Ready == cs.Ready && a.RestartCount == cs.RestartCount
		}) {
			return false
		}
	}
	return true
}

func cond(t v1.PodConditionType, ok bool, reason string) v1.PodCondition {
	s := v1.ConditionFalse
	if ok {
		s = v1.ConditionTrue
		reason = ""
	}
	return v1.PodCondition{Type: t, Status: s, Reason: reason}
}

// status computes the pod's status from what the worker knows.
func (w *podWorker) status() v1.PodStatus {
	st := v1.PodStatus{Phase: v1.PodPending, HostIP: w.r.cfg.NodeIP.String(),
		HostIPs: []v1.HostIP{{IP: w.r.cfg.NodeIP.String()}}, StartTime: w.startTime, QOSClass: v1.PodQOSBestEffort}
	if w.sandbox != nil && len(w.sandbox.ips) > 0 {
		st.PodIP = w.sandbox.ips[0].String()
		for _, ip := range w.sandbox.ips {
			st.PodIPs = append(st.PodIPs, v1.PodIP{IP: ip.String()})
		}
	}
	allReady, anyRunning, allDone, anyFailed := true, false, true, false
	for _, spec := range w.pod.Spec.Containers {
		cs, p := w.containerStatus(spec)
		allReady = allReady && cs.Ready
		anyRunning = anyRunning || p.running
		allDone = allDone && p.done
		anyFailed = anyFailed || p.failed
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	switch {
	case allDone && anyFailed:
		st.Phase = v1.PodFailed
	case allDone:
		st.Phase = v1.PodSucceeded
	case anyRunning || (w.sandbox != nil && len(w.containers) > 0):
		st.Phase = v1.PodRunning
	}
	ready := allReady && st.Phase == v1.PodRunning
	st.Conditions = []v1.PodCondition{
		cond(v1.PodReadyToStartContainers, w.sandbox != nil, "SandboxNotReady"),
		cond(v1.PodInitialized, true, ""),
		cond(v1.ContainersReady, ready, "ContainersNotReady"),
		cond(v1.PodReady, ready, "ContainersNotReady"),
		cond(v1.PodScheduled, true, ""),
	}
	w.keepTransitionTimes(st.Conditions)
	return st
}

// containerPhase is what one container says about its pod's phase.
type containerPhase struct {
	running bool // it runs
	done    bool // it finished for good
	failed  bool // it finished for good with a non-zero exit code
}

// containerStatus returns the status of the container spec.
func (w *podWorker) containerStatus(spec v1.Container) (v1.ContainerStatus, containerPhase) {
	cs := v1.ContainerStatus{Name: spec.Name, Image: spec.Image, ImageID: "podnet://" + spec.Image}
	var p containerPhase
	c := w.containers[spec.Name]
	switch {
	case c == nil:
		reason := "ContainerCreating"
		if w.sandboxErr != "" {
			reason = "NetworkNotReady"
		}
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: reason, Message: w.sandboxErr}
		return cs, p
	case c.running:
		cs.State.Running = &v1.ContainerStateRunning{StartedAt: metav1.NewTime(c.startedAt.Truncate(time.Second))}
		cs.ContainerID = fmt.Sprintf("podnet://%s/%s/%d", w.pod.UID, spec.Name, c.generation)
		cs.Started = ptr.To(true)
		p.running = true
	case c.curExit != nil && (c.finished || !c.nextStart.IsZero()):
		term := c.curExit.terminated()
		if c.finished {
			cs.State.Terminated = term
			p.done, p.failed = true, c.curExit.code != 0
		} else {
			cs.State.Waiting = &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
				Message: fmt.Sprintf("back-off %s restarting failed container %s", c.backoff, spec.Name)}
			cs.LastTerminationState.Terminated = term
		}
		cs.Started = ptr.To(false)
	default:
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: "ContainerCreating"}
	}
	cs.RestartCount = c.restarts
	cs.Ready = c.running && c.ready
	if c.lastExit != nil && cs.LastTerminationState.Terminated == nil {
		cs.LastTerminationState.Terminated = c.lastExit.terminated()
	}
	return cs, p
}

// terminated is the container state of exit e.
func (e *exitInfo) terminated() *v1.ContainerStateTerminated {
	return &v1.ContainerStateTerminated{ExitCode: int32(e.code), Reason: e.reason,
		StartedAt: metav1.NewTime(e.startedAt.Truncate(time.Second)), FinishedAt: metav1.NewTime(e.finishedAt.Truncate(time.Second))}
}

// keepTransitionTimes sets the conditions' transition times: now, or the
// last pushed one for a condition whose status did not change.
func (w *podWorker) keepTransitionTimes(conds []v1.PodCondition) {
	now := metav1.Now()
	for i := range conds {
		conds[i].LastTransitionTime = now
		if w.lastStatus != nil {
			for _, old := range w.lastStatus.Conditions {
				if old.Type == conds[i].Type && old.Status == conds[i].Status {
					conds[i].LastTransitionTime = old.LastTransitionTime
				}
			}
		}
	}
}
