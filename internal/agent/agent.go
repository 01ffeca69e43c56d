package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podnet/podnet/internal/proxy"
	"github.com/podnet/podnet/internal/routing"
	"github.com/podnet/podnet/internal/runner"
)

// Config configures the agent on one node.
type Config struct {
	// Kubeconfig is a path; empty means in-cluster configuration.
	Kubeconfig   string
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
	// NodePortAddresses selects the node addresses NodePorts answer on
	// (zero: the node's InternalIPs).
	NodePortAddresses proxy.NodePortAddresses
	// MetricsAddr serves /metrics and HealthzAddr /healthz ("" disables).
	MetricsAddr, HealthzAddr string
	Log                      *slog.Logger
}

// RESTConfig builds the client configuration.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		return rest.InClusterConfig()
	}
	return clientcmd.BuildConfigFromFlags("", kubeconfig)
}

// Run runs the agent until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.NodeName == "" {
		return errors.New("agent: node name is required")
	}
	rc, err := RESTConfig(cfg.Kubeconfig)
	if err != nil {
		return fmt.Errorf("agent: client config: %w", err)
	}
	rc.UserAgent = "podnet-agent/" + cfg.NodeName
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	nft, err := routing.NewNFT()
	if err != nil {
		return fmt.Errorf("agent: nftables: %w", err)
	}
	syncer, err := routing.NewSyncer(cfg.RoutingMode, routing.MasqConfig{PodCIDRs: cfg.ClusterCIDRs, ServiceCIDRs: cfg.ServiceCIDRs}, nft)
	if err != nil {
		return err
	}
	// The caches keep every Service, EndpointSlice and Node of the
	// cluster; their managedFields are often most of an object's size and
	// nothing here reads them.
	factory := informers.NewSharedInformerFactoryWithOptions(client, 10*time.Minute, informers.WithTransform(dropManagedFields))
	nodes := factory.Core().V1().Nodes()
	nodeLister := nodes.Lister()
	var proxyRunner *runner.Runner
	health := &syncHealth{}
	if !cfg.DisableProxy {
		metrics := proxy.NewMetrics()
		if err := metrics.Register(prometheus.DefaultRegisterer); err != nil {
			return err
		}
		if proxyRunner, err = newProxyRunner(ctx, cfg, factory, nodeLister, metrics, health); err != nil {
			return err
		}
	}
	var policyRunner *runner.Runner
	policyHealth := &syncHealth{}
	if !cfg.DisablePolicy {
		if policyRunner, err = newPolicyRunner(ctx, cfg, client, factory, policyHealth); err != nil {
			return err
		}
	}
	if err := serveHTTP(ctx, cfg, health, policyHealth); err != nil {
		return err
	}

	sync := func(ctx context.Context) error {
		all, err := nodeLister.List(labels.Everything())
		if err != nil {
			return err
		}
		me, peers := routing.Peers(cfg.NodeName, all)
		var errs []error
		if err := syncer.Sync(ctx, me, peers); err != nil {
			errs = append(errs, fmt.Errorf("routing: %w", err))
		}
		if cfg.CNIConfDir != "" && me != nil && len(me.PodCIDRs) > 0 {
			mtu := cfg.MTU
			if mtu == 0 {
				mtu = 1500
				if cfg.RoutingMode == routing.ModeVXLAN {
					mtu -= routing.VXLANOverhead
				}
			}
			wrote, err := WriteCNIConf(cfg.CNIConfDir, CNIConf{Network: cfg.CNINetwork, PodCIDRs: me.PodCIDRs, DataDir: cfg.CNIDataDir, MTU: mtu})
			if err != nil {
				errs = append(errs, fmt.Errorf("cni config: %w", err))
			} else if wrote {
				cfg.Log.Info("wrote CNI configuration", "dir", cfg.CNIConfDir, "podCIDRs", me.PodCIDRs)
			}
		}
		if len(errs) == 0 {
			cfg.Log.Debug("synced", "peers", len(peers))
		}
		return errors.Join(errs...)
	}
	r := runner.New("routing", sync, 200*time.Millisecond, time.Minute, func(err error) {
		cfg.Log.Error("sync failed; will retry", "err", err)
	})
	poke := func(any) {
		r.Poke()
		if proxyRunner != nil {
			proxyRunner.Poke() // node addresses feed NodePorts
		}
	}
	if _, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    poke,
		UpdateFunc: func(_, o any) { poke(o) },
		DeleteFunc: poke,
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	cfg.Log.Info("waiting for informers to sync")
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("agent: cache for %v never synced", typ)
		}
	}
	cfg.Log.Info("agent running", "node", cfg.NodeName, "routing", cfg.RoutingMode, "proxy", !cfg.DisableProxy, "policy", !cfg.DisablePolicy)
	if proxyRunner != nil {
		go proxyRunner.Run(ctx)
	}
	if policyRunner != nil {
		go policyRunner.Run(ctx)
	}
	r.Run(ctx)
	factory.Shutdown()
	return nil
}

// dropManagedFields is an informer transform that removes managedFields.
func dropManagedFields(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}
