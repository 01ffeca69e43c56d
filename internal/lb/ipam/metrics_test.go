package ipam

import (
	"os"
	"strings"
	"testing"

	"github.com/podnet/podnet/internal/controller"
)

// TestEveryMetricIsDocumented keeps docs/metrics.md true for the
// LoadBalancer IPAM controller.
func TestEveryMetricIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	_, _, reg, err := newRegistry()
	if err != nil {
		t.Fatal(err)
	}
	isLB := func(name string) bool { return strings.HasPrefix(name, "podnet_lbipam_") }
	for _, p := range controller.DocProblems(reg, string(doc), isLB) {
		t.Errorf("docs/metrics.md: %s", p)
	}
}
