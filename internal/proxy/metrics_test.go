package proxy

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

func TestMetricsObserve(t *testing.T) {
	m := NewMetrics()
	if err := m.Register(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	sl := slice("default", "web", "", 8080, ep("10.244.1.2", "node-1", true, false))
	sl.Annotations = map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": now.Add(-250 * time.Millisecond).Format(time.RFC3339Nano)}
	sps := BuildServicePorts("node-1", []*v1Service{svc("default", "web", "10.96.0.5", 80, 8080, 0)}, []*v1Slice{sl})
	m.Observe(SyncResult{Operations: 40, Duration: 3 * time.Millisecond, ConntrackDeleted: 2, ServicePorts: len(sps), Endpoints: len(sps[0].Endpoints)}, []*v1Slice{sl}, now)
	m.Observe(SyncResult{Operations: 40, Duration: 3 * time.Millisecond, ServicePorts: len(sps), Endpoints: len(sps[0].Endpoints)}, []*v1Slice{sl}, now.Add(time.Second))
	if got := testutil.ToFloat64(m.Endpoints); got != 1 {
		t.Errorf("endpoints = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.ConntrackDeleted); got != 2 {
		t.Errorf("conntrack deleted = %v, want 2", got)
	}
	// The same change is measured once, not at every sync.
	var d dto.Metric
	if err := m.ProgrammingLatency.(prometheus.Metric).Write(&d); err != nil {
		t.Fatal(err)
	}
	if n := d.GetHistogram().GetSampleCount(); n != 1 {
		t.Errorf("programming latency samples = %d, want 1", n)
	}
	if sum := d.GetHistogram().GetSampleSum(); sum < 0.24 || sum > 0.26 {
		t.Errorf("programming latency = %vs, want 0.25", sum)
	}
	// A slice read again long after its change (its Service changed) is
	// not measured as an hour-long latency.
	old := slice("default", "old", "", 8080, ep("10.244.1.3", "node-1", true, false))
	old.Annotations = map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": now.Add(-time.Hour).Format(time.RFC3339Nano)}
	m.Observe(SyncResult{}, []*v1Slice{old}, now.Add(2*time.Second))
	d = dto.Metric{}
	if err := m.ProgrammingLatency.(prometheus.Metric).Write(&d); err != nil {
		t.Fatal(err)
	}
	if n := d.GetHistogram().GetSampleCount(); n != 1 {
		t.Errorf("programming latency samples = %d after an hour-old change, want still 1", n)
	}
}
