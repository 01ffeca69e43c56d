package main

import (
	"strings"
	"testing"
	"time"
)

// A probe target must be an address: a name would be resolved by this
// machine's resolver (outside the cluster) before any packet left the pod.
func TestProbeRefusesNamesAndBadTargets(t *testing.T) {
	for _, target := range []string{"api:8080", "nginx-service.default.svc.cluster.local:80", "10.0.0.1", ""} {
		_, err := probeFrom("/nonexistent-netns", "tcp", target, 10*time.Millisecond)
		if err == nil {
			t.Errorf("probe %q: no error", target)
			continue
		}
		if strings.Contains(target, ":") && !strings.Contains(err.Error(), "IP address") {
			t.Errorf("probe %q: %v, want a request for an IP address", target, err)
		}
	}
}
