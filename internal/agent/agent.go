package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/podnet/podnet/internal/controller"
	"github.com/podnet/podnet/internal/lb/announce"
	"github.com/podnet/podnet/internal/policy"
	"github.com/podnet/podnet/internal/policy/status"
	"github.com/podnet/podnet/internal/proxy"
	"github.com/podnet/podnet/internal/routing"
	"github.com/podnet/podnet/internal/wireguard"
)

// EncryptionWireGuard is the one encryption there is.
const EncryptionWireGuard = "wireguard"

// Config configures the agent on one node.
type Config struct {
	// Kubeconfig is a path; empty means in-cluster configuration.
	Kubeconfig string
	// APIServerHost and APIServerPort, when set, replace the API server
	// address of that configuration: a hostNetwork agent on a cluster
	// without kube-proxy cannot reach the kubernetes Service's ClusterIP
	// before its own proxy runs.
	APIServerHost, APIServerPort string

	NodeName     string
	RoutingMode  string
	ClusterCIDRs []netip.Prefix
	ServiceCIDRs []netip.Prefix
	// CNIConfDir receives the conflist; empty disables writing it.
	CNIConfDir string
	// CNINetwork is the network name in the conflist.
	CNINetwork string
	// CNIDataDir is podnet-cni's IPAM directory on this node.
	CNIDataDir string
	// MTU of pod interfaces; 0 picks 1500, less the VXLAN overhead in
	// vxlan mode.
	MTU int
	// DisableProxy turns the service proxy off (kube-proxy runs instead).
	DisableProxy bool
	// DisablePolicy turns NetworkPolicy enforcement off.
	DisablePolicy bool
	// DisableFlows turns flow records off (package flow; GET /flows then
	// answers 404); DisableFlowConntrack keeps only the drop records (no
	// conntrack events).
	DisableFlows, DisableFlowConntrack bool
	// NodePortAddresses selects the node addresses NodePorts answer on
	// (zero: the node's InternalIPs).
	NodePortAddresses proxy.NodePortAddresses
	// LBAnnounce answers ARP/NDP for LoadBalancer IPs this node owns
	// (package lb/announce); LBHeartbeatPort and LBKeyFile configure it.
	LBAnnounce      bool
	LBHeartbeatPort uint16
	LBKeyFile       string
	// LBKeyNamespace holds the heartbeat key's Secret when there is no
	// LBKeyFile (kube-system when empty).
	LBKeyNamespace string
	// Encryption is "" (off) or "wireguard" (package wireguard); WireGuard
	// configures it.
	Encryption string
	WireGuard  wireguard.Config
	// MetricsAddr serves /metrics and HealthzAddr /healthz ("" disables).
	MetricsAddr, HealthzAddr string
	Log                      *slog.Logger
}

// Run runs the agent until ctx ends: it assembles the controllers that are
// on, serves metrics and health, starts the informers and runs the
// controllers (each waits for its own informers).
func Run(ctx context.Context, cfg Config) error {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.NodeName == "" {
		return errors.New("agent: node name is required")
	}
	rc, err := restConfig(cfg)
	if err != nil {
		return fmt.Errorf("agent: client config: %w", err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("agent: client: %w", err)
	}
	m, err := newMetrics(cfg)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	// The informers' reads wait out an API server that refuses
	// connections (controller.InformerConfig): after an outage the node
	// follows changes again within a second of its return, not after the
	// reflectors' backoff. Writes go through client and fail as usual.
	watchClient, err := kubernetes.NewForConfig(controller.InformerConfig(rc, cfg.Log))
	if err != nil {
		return fmt.Errorf("agent: client: %w", err)
	}
	// The caches keep every Service, EndpointSlice and Node of the
	// cluster; their managedFields are often most of an object's size and
	// nothing here reads them.
	factory := informers.NewSharedInformerFactoryWithOptions(watchClient, 10*time.Minute, informers.WithTransform(controller.Transform))
	d := controller.Deps{Client: client, Factory: factory, Metrics: m.controllers, Log: cfg.Log}
	ex := extras{lb: announce.NewStatus(), stopped: &sync.WaitGroup{}}
	if !cfg.DisablePolicy {
		ex.policy = status.NewTracker(cfg.NodeName)
	}
	if ex.tunnel, err = newTunnel(ctx, d, cfg, m); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	ctrls, err := newControllers(ctx, d, cfg, m, ex)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	pages := map[string]http.Handler{"/lb/announcements": ex.lb, status.Path: ex.policy}
	if ex.tunnel != nil {
		pages[wireguard.StatusPath] = ex.tunnel
	}
	fl := m.flows
	if fl != nil {
		fl.watch(factory)
		pages["/flows"] = fl.handler()
	}
	if err := serveHTTP(ctx, cfg, m.reg, ctrls, pages); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	cfg.Log.Info("agent running", "node", cfg.NodeName, "routing", cfg.RoutingMode, "proxy", !cfg.DisableProxy, "policy", !cfg.DisablePolicy)
	var wg sync.WaitGroup
	for _, c := range ctrls {
		wg.Go(func() { c.Run(ctx) })
	}
	if fl != nil {
		wg.Go(func() { fl.run(ctx, cfg, d.Logger("flows")) })
	}
	wg.Wait()
	ex.stopped.Wait() // the announcer has handed its VIPs over
	factory.Shutdown()
	return nil
}

// restConfig is the client configuration: the kubeconfig or the in-cluster
// one, with the API server address replaced when APIServerHost is set.
func restConfig(cfg Config) (*rest.Config, error) {
	if (cfg.APIServerHost == "") != (cfg.APIServerPort == "") {
		return nil, fmt.Errorf("the API server's host (%q) and port (%q) go together", cfg.APIServerHost, cfg.APIServerPort)
	}
	if p, err := strconv.ParseUint(cfg.APIServerPort, 10, 16); cfg.APIServerPort != "" && (err != nil || p == 0) {
		return nil, fmt.Errorf("API server port %q is not a port number", cfg.APIServerPort)
	}
	rc, err := controller.RESTConfig(cfg.Kubeconfig, "podnet-agent/"+cfg.NodeName)
	if err != nil {
		return nil, err
	}
	if cfg.APIServerHost != "" {
		rc.Host = "https://" + net.JoinHostPort(cfg.APIServerHost, cfg.APIServerPort)
	}
	return rc, nil
}

// newControllers constructs the controllers that are on. A new component
// adds one line here.
func newControllers(ctx context.Context, d controller.Deps, cfg Config, m *metrics, ex extras) ([]*controller.Controller, error) {
	var ctrls []*controller.Controller
	for _, c := range []struct {
		on  bool
		new func() (*controller.Controller, error)
	}{
		{true, func() (*controller.Controller, error) {
			return routing.NewController(d, routing.ControllerConfig{NodeName: cfg.NodeName, Mode: cfg.RoutingMode,
				Masq: routing.MasqConfig{PodCIDRs: cfg.ClusterCIDRs, ServiceCIDRs: cfg.ServiceCIDRs}, Tunnel: ex.routingTunnel()})
		}},
		{cfg.CNIConfDir != "", func() (*controller.Controller, error) { return newCNIConfController(d, cfg) }},
		{!cfg.DisableProxy, func() (*controller.Controller, error) {
			return proxy.NewController(ctx, d, m.proxy, proxy.ControllerConfig{NodeName: cfg.NodeName,
				PodCIDRs: cfg.ClusterCIDRs, NodePortAddresses: cfg.NodePortAddresses})
		}},
		{!cfg.DisablePolicy, func() (*controller.Controller, error) {
			return policy.NewController(ctx, d, m.policy, policy.ControllerConfig{NodeName: cfg.NodeName, Status: ex.policy})
		}},
		{cfg.LBAnnounce, func() (*controller.Controller, error) {
			return announce.NewController(ctx, d, m.lb, announce.ControllerConfig{NodeName: cfg.NodeName,
				Port: cfg.LBHeartbeatPort, KeyFile: cfg.LBKeyFile, KeyNamespace: cfg.LBKeyNamespace,
				Status: ex.lb, Stopped: ex.stopped})
		}},
	} {
		if !c.on {
			continue
		}
		ctrl, err := c.new()
		if err != nil {
			return nil, err
		}
		ctrls = append(ctrls, ctrl)
	}
	return ctrls, nil
}

// extras are what controllers share with the agent: the LoadBalancer
// announcer's status page and the wait for its graceful leave, the policy
// enforcer's status (nil when policy is off) and the encryption (nil when
// off).
type extras struct {
	lb      *announce.Status
	stopped *sync.WaitGroup
	policy  *status.Tracker
	tunnel  *wireguard.Manager
}

// routingTunnel is the encryption as routing sees it (nil, not a nil
// pointer in an interface, when off).
func (ex extras) routingTunnel() routing.Tunnel {
	if ex.tunnel == nil {
		return nil
	}
	return ex.tunnel
}

// newTunnel opens the WireGuard device when encryption is on; when it is
// off it removes what an earlier agent with encryption left (the device
// and its routes, the strict-mode table), so no route points into a dead
// tunnel.
func newTunnel(ctx context.Context, d controller.Deps, cfg Config, m *metrics) (*wireguard.Manager, error) {
	switch cfg.Encryption {
	case "":
		nft, err := wireguard.NewNFT()
		if err == nil {
			err = wireguard.DeleteStrict(ctx, nft)
		}
		uctx, cancel := context.WithTimeout(ctx, 5*time.Second) // the API server may be away: no reason to wait
		defer cancel()
		err = errors.Join(err, wireguard.DeleteDevice(), wireguard.Unpublish(uctx, d.Client, cfg.NodeName))
		if err != nil {
			d.Logger("wireguard").Warn("encryption is off but what it left cannot be removed", "err", err)
		}
		return nil, nil
	case EncryptionWireGuard:
	default:
		return nil, fmt.Errorf("unknown encryption %q (want %s)", cfg.Encryption, EncryptionWireGuard)
	}
	wc := cfg.WireGuard
	wc.NodeName = cfg.NodeName
	wc.ClusterCIDRs = cfg.ClusterCIDRs
	if wc.MTU == 0 && cfg.MTU != 0 {
		wc.MTU = cfg.MTU
	}
	rec := controller.NewEventRecorder(ctx, d.Client, "podnet-agent", cfg.NodeName)
	return wireguard.NewManager(ctx, wc, d.Client, rec, m.wireguard, d.Logger("wireguard"))
}
