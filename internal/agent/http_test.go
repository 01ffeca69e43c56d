package agent

import (
	"testing"
	"time"
)

func TestHealthzReportsAStalledProxy(t *testing.T) {
	h := &syncHealth{}
	now := time.Now()
	if ok, why := h.healthy(now); !ok {
		t.Errorf("fresh agent unhealthy: %s", why)
	}
	h.changed()
	if ok, _ := h.healthy(now.Add(10 * time.Second)); !ok {
		t.Error("a change waiting 10s made the agent unhealthy")
	}
	if ok, _ := h.healthy(now.Add(2 * stallAfter)); ok {
		t.Error("a change waiting two minutes without a sync did not make the agent unhealthy")
	}
	h.synced()
	if ok, why := h.healthy(now.Add(2 * stallAfter)); !ok {
		t.Errorf("after a successful sync: %s", why)
	}
}
