package podruntime

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// Events are what a user reads in `kubectl describe pod`. The runtime
// records them as the kubelet does: the same reasons and messages
// (pkg/kubelet/events, kuberuntime, prober), source component "kubelet"
// on host <node>, about the pod, or about one of its containers with
// fieldPath spec.containers{<name>}. They go through client-go's event
// broadcaster with its default correlator, the kubelet's: a repeat of the
// same event is one Event whose count grows; of the events that differ
// only in their message within 10 minutes, the 10th and later are combined
// into one; and each object gets 25 events per type, then one every 5
// minutes. A
// probe that keeps failing therefore never writes one Event per probe
// forever.
const (
	reasonCreated                = "Created"
	reasonStarted                = "Started"
	reasonFailed                 = "Failed"
	reasonKilling                = "Killing"
	reasonBackOff                = "BackOff"
	reasonUnhealthy              = "Unhealthy"
	reasonFailedCreatePodSandBox = "FailedCreatePodSandBox"
	reasonNetworkNotReady        = "NetworkNotReady"

	// eventComponent is the Events' source: tools filter on the
	// kubelet's name.
	eventComponent = "kubelet"
	// podWarningRepeat is how often a pod warning that persists (network
	// not ready, sandbox failing) is recorded again: the kubelet's pod
	// worker retries a failed sync after about 10 s, while this
	// runtime's worker passes every 2 s.
	podWarningRepeat = 10 * time.Second
	// maxProbeOutput bounds an exec probe's output (the kubelet's 10 KiB).
	maxProbeOutput = 10 * 1024
)

// newEventRecorder starts the runtime's event broadcaster, writing to the
// API server until ctx ends.
func newEventRecorder(ctx context.Context, client kubernetes.Interface, node string) record.EventRecorder {
	b := record.NewBroadcaster(record.WithContext(ctx))
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return b.NewRecorder(scheme.Scheme, v1.EventSource{Component: eventComponent, Host: node})
}

// podRef is the Events' involved object for pod: the Pod itself, or with
// container set, that container of it (the kubelet's GenerateContainerRef).
func podRef(pod *v1.Pod, container string) *v1.ObjectReference {
	ref := &v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name,
		UID: pod.UID, ResourceVersion: pod.ResourceVersion}
	if container != "" {
		ref.FieldPath = "spec.containers{" + container + "}"
	}
	return ref
}

// podDesc names a pod in messages as the kubelet does: name_namespace(uid).
func podDesc(pod *v1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
}

// event records an Event about the worker's pod (container "") or one of
// its containers. A runtime without a recorder (tests of other parts)
// records nothing.
func (w *podWorker) event(container, eventtype, reason, format string, args ...any) {
	recordEvent(w.r.recorder, podRef(w.pod, container), eventtype, reason, format, args...)
}

func recordEvent(rec record.EventRecorder, ref *v1.ObjectReference, eventtype, reason, format string, args ...any) {
	if rec != nil {
		rec.Eventf(ref, eventtype, reason, format, args...)
	}
}

// warningGate keeps a pod warning that persists from being recorded on
// every pass of the worker: the same reason and message pass again after
// podWarningRepeat (the correlator then counts them), a new one at once.
type warningGate struct {
	reason, message string
	at              time.Time
}

func (g *warningGate) pass(reason, message string, now time.Time) bool {
	if g.reason == reason && g.message == message && now.Sub(g.at) < podWarningRepeat {
		return false
	}
	g.reason, g.message, g.at = reason, message, now
	return true
}

// podWarning records a pod-level warning through the worker's gate.
func (w *podWorker) podWarning(reason, message string) {
	if w.warned.pass(reason, message, time.Now()) {
		w.event("", v1.EventTypeWarning, reason, "%s", message)
	}
}

// networkNotReady: the node has no CNI configuration, so the pod waits
// (the kubelet's words, with the runtime's reason in the message).
func (w *podWorker) networkNotReady(why string) {
	w.podWarning(reasonNetworkNotReady, "network is not ready: container runtime network not ready: "+
		"NetworkReady=false reason:NetworkPluginNotReady message:"+why)
}

// sandboxFailed: creating the pod's network failed (the CNI error).
func (w *podWorker) sandboxFailed(err error) {
	w.podWarning(reasonFailedCreatePodSandBox, "Failed to create pod sandbox: "+err.Error())
}

// stopping records Killing for every running container of a pod that is
// being deleted.
func (w *podWorker) stopping() {
	for _, spec := range w.pod.Spec.Containers {
		if c := w.containers[spec.Name]; c != nil && c.running {
			w.event(spec.Name, v1.EventTypeNormal, reasonKilling, "Stopping container %s", spec.Name)
		}
	}
}

// livenessKill records Killing for a container that failed its liveness
// probe.
func (w *podWorker) livenessKill(c *container) {
	msg := fmt.Sprintf("Container %s failed liveness probe", c.spec.Name)
	if w.pod.Spec.RestartPolicy != v1.RestartPolicyNever {
		msg += ", will be restarted"
	}
	w.event(c.spec.Name, v1.EventTypeNormal, reasonKilling, "%s", msg)
}

// backingOff records BackOff for a container that exited and waits for its
// restart.
func (w *podWorker) backingOff(c *container) {
	w.event(c.spec.Name, v1.EventTypeWarning, reasonBackOff, "Back-off restarting failed container %s in pod %s",
		c.spec.Name, podDesc(w.pod))
}

// started records Created and Started for a container whose process runs
// (there is no separate create step), or Failed when it could not start.
func (w *podWorker) started(c *container, err error) {
	if err != nil {
		w.event(c.spec.Name, v1.EventTypeWarning, reasonFailed, "Error: %v", err)
		return
	}
	w.event(c.spec.Name, v1.EventTypeNormal, reasonCreated, "Container created")
	w.event(c.spec.Name, v1.EventTypeNormal, reasonStarted, "Container started")
}

// probeFailed returns what records a failed probe of container name as
// Unhealthy with the probe's output. It is called from the probe's
// goroutine: it holds its own copy of the reference.
func (w *podWorker) probeFailed(name, probeType string) func(output string) {
	ref, rec := podRef(w.pod, name), w.r.recorder
	return func(output string) {
		recordEvent(rec, ref, v1.EventTypeWarning, reasonUnhealthy, "%s probe failed: %s", probeType, output)
	}
}
