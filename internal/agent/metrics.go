package agent

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/podnet/podnet/internal/controller"
	"github.com/podnet/podnet/internal/ctstat"
	"github.com/podnet/podnet/internal/lb/announce"
	"github.com/podnet/podnet/internal/policy"
	"github.com/podnet/podnet/internal/proxy"
	"github.com/podnet/podnet/internal/wireguard"
)

// metrics are the agent's metrics, all in one registry served on /metrics
// (docs/metrics.md lists them): the controllers' common ones, the node's
// conntrack table usage (package ctstat) and the own metrics of each
// component that is on.
type metrics struct {
	reg         *prometheus.Registry
	controllers *controller.Metrics
	proxy       *proxy.Metrics     // nil when the proxy is off
	policy      *policy.Metrics    // nil when policy is off
	lb          *announce.Metrics  // nil when LB announcement is off
	flows       *flows             // the flow collector's ring and metrics; nil when off
	wireguard   *wireguard.Metrics // nil when encryption is off
}

func newMetrics(cfg Config) (*metrics, error) {
	m := &metrics{controllers: controller.NewMetrics()}
	sets := []controller.MetricSet{m.controllers, ctstat.New("/proc")}
	if !cfg.DisableProxy {
		m.proxy = proxy.NewMetrics()
		sets = append(sets, m.proxy)
	}
	if !cfg.DisablePolicy {
		m.policy = policy.NewMetrics()
		sets = append(sets, m.policy)
	}
	if !cfg.DisableFlows {
		m.flows = newFlows()
		sets = append(sets, m.flows.metrics)
	}
	if cfg.Encryption != "" {
		m.wireguard = wireguard.NewMetrics()
		sets = append(sets, m.wireguard)
	}
	if cfg.LBAnnounce {
		m.lb = announce.NewMetrics()
		sets = append(sets, m.lb)
	}
	var err error
	m.reg, err = controller.NewRegistry(sets...)
	return m, err
}
