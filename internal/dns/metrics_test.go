package dns

import (
	"os"
	"strings"
	"testing"

	"github.com/podnet/podnet/internal/controller"
)

// TestEveryMetricIsDocumented keeps docs/metrics.md true for the DNS
// server: every metric it registers, with its labels, is listed, and every
// listed podnet_dns_ metric is registered.
func TestEveryMetricIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	_, _, reg, err := newMetrics()
	if err != nil {
		t.Fatal(err)
	}
	isDNS := func(name string) bool { return strings.HasPrefix(name, "podnet_dns_") }
	for _, p := range controller.DocProblems(reg, string(doc), isDNS) {
		t.Errorf("docs/metrics.md: %s", p)
	}
}
