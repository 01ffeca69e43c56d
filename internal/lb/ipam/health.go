package ipam

import (
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// healthState answers /healthz: a standby replica (not leading) is
// healthy; the leader is as healthy as its controller.
type healthState struct {
	mu sync.Mutex // guards c
	c  *Controller
}

func (h *healthState) set(c *Controller) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.c = c
}

// Healthy implements what controller.HealthHandler reads.
func (h *healthState) Healthy(now time.Time) (bool, string) {
	h.mu.Lock()
	c := h.c
	h.mu.Unlock()
	if c == nil {
		return true, "ok (standby: not leading)"
	}
	return c.Healthy(now)
}

func metav1ObjectMeta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name}
}
