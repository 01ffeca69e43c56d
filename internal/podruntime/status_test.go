package podruntime

import (
	"net/netip"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// TestStatusFollowsTheContainers pins the pod status the worker reports:
// phase, readiness and each container's state, for the situations a pod
// of two containers ("a", "b") goes through.
func TestStatusFollowsTheContainers(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	exit := func(code int) *exitInfo {
		return &exitInfo{code: code, reason: "Error", startedAt: t0, finishedAt: t0.Add(time.Second)}
	}
	running := func(ready bool) *container {
		return &container{running: true, ready: ready, startedAt: t0, generation: 1}
	}
	sb := &sandbox{ips: []netip.Addr{netip.MustParseAddr("10.244.1.5")}}
	for _, tc := range []struct {
		name       string
		sandbox    *sandbox
		sandboxErr string
		a, b       *container
		phase      v1.PodPhase
		ready      bool
		states     [2]string // each container's state: a reason, "running" or "terminated:CODE"
	}{
		{"no sandbox: the network is not ready", nil, "no CNI config", nil, nil, v1.PodPending, false,
			[2]string{"NetworkNotReady", "NetworkNotReady"}},
		{"a sandbox, nothing started yet", sb, "", nil, nil, v1.PodPending, false,
			[2]string{"ContainerCreating", "ContainerCreating"}},
		{"both running, one ready", sb, "", running(true), running(false), v1.PodRunning, false,
			[2]string{"running", "running"}},
		{"both running and ready", sb, "", running(true), running(true), v1.PodRunning, true,
			[2]string{"running", "running"}},
		{"one crashed and waits for its restart", sb, "", running(true),
			&container{curExit: exit(1), nextStart: t0.Add(time.Minute), backoff: 10 * time.Second, restarts: 2, lastExit: exit(2)},
			v1.PodRunning, false, [2]string{"running", "CrashLoopBackOff"}},
		{"both finished, one failed", sb, "", &container{curExit: exit(0), finished: true}, &container{curExit: exit(3), finished: true},
			v1.PodFailed, false, [2]string{"terminated:0", "terminated:3"}},
		{"both finished well", sb, "", &container{curExit: exit(0), finished: true}, &container{curExit: exit(0), finished: true},
			v1.PodSucceeded, false, [2]string{"terminated:0", "terminated:0"}},
		{"one finished, one not started", sb, "", &container{curExit: exit(0), finished: true}, &container{},
			v1.PodRunning, false, [2]string{"terminated:0", "ContainerCreating"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := testPod()
			pod.Spec.Containers = []v1.Container{{Name: "a"}, {Name: "b"}}
			w := &podWorker{r: &Runtime{cfg: Config{NodeIP: netip.MustParseAddr("172.30.0.11")}}, pod: pod,
				sandbox: tc.sandbox, sandboxErr: tc.sandboxErr, containers: map[string]*container{}}
			for name, c := range map[string]*container{"a": tc.a, "b": tc.b} {
				if c != nil {
					w.containers[name] = c
				}
			}
			st := w.status()
			if st.Phase != tc.phase {
				t.Errorf("phase %s, want %s", st.Phase, tc.phase)
			}
			for _, c := range st.Conditions {
				if c.Type == v1.PodReady && (c.Status == v1.ConditionTrue) != tc.ready {
					t.Errorf("Ready %s, want %v", c.Status, tc.ready)
				}
			}
			for i, cs := range st.ContainerStatuses {
				if got := stateOf(cs.State); got != tc.states[i] {
					t.Errorf("container %s: %s, want %s", cs.Name, got, tc.states[i])
				}
			}
			if b := st.ContainerStatuses[1]; tc.name == "one crashed and waits for its restart" {
				if b.RestartCount != 2 || b.LastTerminationState.Terminated == nil || b.LastTerminationState.Terminated.ExitCode != 1 {
					t.Errorf("crashed container: restarts %d, last state %+v; want 2 and the exit code 1", b.RestartCount, b.LastTerminationState)
				}
			}
		})
	}
}

func stateOf(s v1.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running"
	case s.Terminated != nil:
		return "terminated:" + string(rune('0'+s.Terminated.ExitCode))
	case s.Waiting != nil:
		return s.Waiting.Reason
	}
	return "none"
}
