package controller

import (
	"fmt"
	"net/http"
	"sync"
	"time"
)

// StallAfter is how long a change may wait for a successful sync before the
// controller reports itself unhealthy.
const StallAfter = time.Minute

// health tracks whether syncs keep up with changes, as kube-proxy's healthz
// does: healthy unless a change has waited longer than StallAfter without
// a successful sync.
type health struct {
	// mu guards the fields below.
	mu          sync.Mutex
	firstChange time.Time // oldest change not yet synced; zero when none
	lastSuccess time.Time
}

// changed records a change seen at now.
func (h *health) changed(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.firstChange.IsZero() {
		h.firstChange = now
	}
}

// synced records a successful sync that started at start: the changes seen
// before start are synced; a change seen while it ran may not be.
func (h *health) synced(start, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.firstChange.After(start) {
		h.firstChange = time.Time{}
	}
	h.lastSuccess = now
}

// healthy returns whether syncs keep up, and a line saying why.
func (h *health) healthy(now time.Time) (bool, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	last := "never"
	if !h.lastSuccess.IsZero() {
		last = h.lastSuccess.Format(time.RFC3339)
	}
	if !h.firstChange.IsZero() && now.Sub(h.firstChange) > StallAfter {
		return false, fmt.Sprintf("a change has waited %s for a successful sync (last success %s)",
			now.Sub(h.firstChange).Round(time.Second), last)
	}
	return true, fmt.Sprintf("ok (last successful sync %s)", last)
}

// ready is healthy once a sync has succeeded since the start.
func (h *health) ready(now time.Time) (bool, string) {
	h.mu.Lock()
	never := h.lastSuccess.IsZero()
	h.mu.Unlock()
	if never {
		return false, "no successful sync yet"
	}
	return h.healthy(now)
}

// HealthHandler answers 200 while h is healthy, 503 once it stalled, with
// a line saying why.
func HealthHandler(h interface {
	Healthy(now time.Time) (bool, string)
}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		ok, why := h.Healthy(time.Now())
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, why)
	})
}
