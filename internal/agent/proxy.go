package agent

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/podnet/podnet/internal/proxy"
	"github.com/podnet/podnet/internal/routing"
	"github.com/podnet/podnet/internal/runner"
)

// newProxyRunner wires Services and EndpointSlices to the service proxy:
// handlers only poke the runner; the sync reads the listers.
func newProxyRunner(ctx context.Context, cfg Config, factory informers.SharedInformerFactory, nodes corelisters.NodeLister, metrics *proxy.Metrics, health *syncHealth) (*runner.Runner, error) {
	nft, err := proxy.NewNFT()
	if err != nil {
		return nil, fmt.Errorf("agent: nftables for the proxy: %w", err)
	}
	syncer := proxy.NewSyncer(nft, proxy.KernelConntrack{})
	hcServers := proxy.NewHealthServers("")
	go func() {
		<-ctx.Done()
		hcServers.Close()
	}()
	services := factory.Core().V1().Services()
	slices := factory.Discovery().V1().EndpointSlices()
	svcLister, sliceLister := services.Lister(), slices.Lister()
	sync := func(ctx context.Context) error {
		svcs, err := svcLister.List(labels.Everything())
		if err != nil {
			return err
		}
		sls, err := sliceLister.List(labels.Everything())
		if err != nil {
			return err
		}
		pc := proxy.Config{PodCIDRs: cfg.ClusterCIDRs}
		topo := proxy.Topology{Node: cfg.NodeName}
		if n, err := nodes.Get(cfg.NodeName); err == nil {
			topo.Zone = n.Labels["topology.kubernetes.io/zone"]
			for _, fam := range []int{4, 6} {
				if ip, ok := routing.NodeInternalIP(n, fam); ok {
					pc.NodeIPs = append(pc.NodeIPs, ip)
				}
			}
		}
		sps := proxy.BuildServicePortsIn(topo, svcs, sls)
		res, err := syncer.Sync(ctx, pc, sps)
		metrics.Observe(res, err, sps, sls, time.Now())
		if err != nil {
			return err
		}
		health.synced()
		if res.Full {
			// A full sync of a large cluster leaves a large transaction
			// behind as garbage; hand the memory back now rather than
			// keep it as heap headroom.
			debug.FreeOSMemory()
		}
		if err := hcServers.Sync(proxy.HealthFrom(sps)); err != nil {
			return err
		}
		cfg.Log.Debug("proxy synced", "operations", res.Operations, "took", res.Duration, "conntrackDeleted", res.ConntrackDeleted)
		return nil
	}
	r := runner.New("proxy", sync, 50*time.Millisecond, time.Minute, func(err error) {
		cfg.Log.Error("proxy sync failed; the previous rules stay; will retry", "err", err)
	})
	poke := func() {
		health.changed()
		r.Poke()
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(_, _ any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	for _, inf := range []cache.SharedIndexInformer{services.Informer(), slices.Informer()} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return nil, err
		}
	}
	return r, nil
}
