package agent

import (
	"os"
	"strings"
	"testing"

	"github.com/podnet/podnet/internal/controller"
)

// TestEveryMetricIsDocumented keeps docs/metrics.md true for the agent:
// every metric it registers, with its labels, is listed, and every listed
// metric that is not the DNS server's or the LoadBalancer IPAM
// controller's is registered.
func TestEveryMetricIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	m, err := newMetrics(Config{LBAnnounce: true, Encryption: EncryptionWireGuard}) // every component on
	if err != nil {
		t.Fatal(err)
	}
	agents := func(name string) bool {
		return !strings.HasPrefix(name, "podnet_dns_") && !strings.HasPrefix(name, "podnet_lbipam_")
	}
	for _, p := range controller.DocProblems(m.reg, string(doc), agents) {
		t.Errorf("docs/metrics.md: %s", p)
	}
}
