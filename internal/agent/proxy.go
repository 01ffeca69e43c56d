package agent

import (
	"context"
	"fmt"
	"net/netip"
	"runtime/debug"
	"time"

	"github.com/vishvananda/netlink"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/podnet/podnet/internal/nldump"
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
	elems, err := proxy.NewNetlinkElements()
	if err != nil {
		return nil, fmt.Errorf("agent: nftables netlink for the proxy: %w", err)
	}
	go func() {
		<-ctx.Done()
		_ = elems.Close()
	}()
	syncer := proxy.NewSyncer(nft, proxy.KernelConntrack{}).WithElementWriter(elems)
	hcServers := proxy.NewHealthServers("")
	go func() {
		<-ctx.Done()
		hcServers.Close()
	}()
	services := factory.Core().V1().Services()
	slices := factory.Discovery().V1().EndpointSlices()
	if err := slices.Informer().AddIndexers(cache.Indexers{sliceServiceIndex: func(obj any) ([]string, error) {
		sl, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok {
			return nil, nil
		}
		if k := proxy.SliceServiceKey(sl); k != "" {
			return []string{k}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, err
	}
	src := &serviceSource{services: services.Lister(), slices: slices.Informer().GetIndexer()}
	ports := proxy.NewPortCache()
	sync := func(ctx context.Context) error {
		pc := proxy.Config{PodCIDRs: cfg.ClusterCIDRs}
		topo := proxy.Topology{Node: cfg.NodeName}
		var internalIPs, local []netip.Addr
		if n, err := nodes.Get(cfg.NodeName); err == nil {
			topo.Zone = n.Labels["topology.kubernetes.io/zone"]
			for _, fam := range []int{4, 6} {
				if ip, ok := routing.NodeInternalIP(n, fam); ok {
					internalIPs = append(internalIPs, ip)
				}
			}
		}
		if cfg.NodePortAddresses.NeedsLocal() {
			var err error
			// Read again at every sync (one netlink dump): addresses
			// come and go without an event here; the runner syncs at
			// least once a minute.
			if local, err = localAddrs(); err != nil {
				err = fmt.Errorf("node addresses for --nodeport-addresses: %w", err)
				metrics.Observe(proxy.SyncResult{}, err, nil, nil, time.Now())
				return err
			}
		}
		pc.NodeIPs = cfg.NodePortAddresses.Select(internalIPs, local)
		src.read = src.read[:0]
		sps, err := ports.Update(topo, src)
		if err != nil {
			return err
		}
		res, err := syncer.Sync(ctx, pc, sps)
		metrics.Observe(res, err, sps, src.read, time.Now())
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
		cfg.Log.Debug("proxy synced", "services", len(ports.Changed()), "operations", res.Operations, "took", res.Duration, "netlink", res.Netlink, "conntrackDeleted", res.ConntrackDeleted)
		return nil
	}
	r := runner.New("proxy", sync, 50*time.Millisecond, time.Minute, func(err error) {
		cfg.Log.Error("proxy sync failed; the previous rules stay; will retry", "err", err)
	})
	mark := func(key string) {
		ports.Mark(key)
		health.changed()
		r.Poke()
	}
	serviceKey := func(obj any) string {
		k, _ := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
		return k
	}
	sliceKey := func(obj any) string {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if sl, ok := obj.(*discoveryv1.EndpointSlice); ok {
			return proxy.SliceServiceKey(sl)
		}
		return ""
	}
	for _, h := range []struct {
		inf cache.SharedIndexInformer
		key func(any) string
	}{{services.Informer(), serviceKey}, {slices.Informer(), sliceKey}} {
		key := h.key
		if _, err := h.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) { mark(key(obj)) },
			UpdateFunc: func(old, obj any) {
				// A slice may move to another Service: both change.
				if k := key(old); k != key(obj) {
					mark(k)
				}
				mark(key(obj))
			},
			DeleteFunc: func(obj any) { mark(key(obj)) },
		}); err != nil {
			return nil, err
		}
	}
	return r, nil
}

const sliceServiceIndex = "service"

// localAddrs lists the addresses on the interfaces of the agent's network
// namespace, the node's.
func localAddrs() ([]netip.Addr, error) {
	addrs, err := nldump.Do(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}

// serviceSource reads one Service and its slices from the informers' caches
// and remembers the slices it read (for the programming-latency metric).
type serviceSource struct {
	services corelisters.ServiceLister
	slices   cache.Indexer
	read     []*discoveryv1.EndpointSlice
}

func (s *serviceSource) ServiceKeys() ([]string, error) {
	svcs, err := s.services.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(svcs))
	for i, svc := range svcs {
		keys[i] = svc.Namespace + "/" + svc.Name
	}
	return keys, nil
}

func (s *serviceSource) Service(key string) (*v1.Service, []*discoveryv1.EndpointSlice, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil, nil, err
	}
	svc, err := s.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	objs, err := s.slices.ByIndex(sliceServiceIndex, key)
	if err != nil {
		return nil, nil, err
	}
	out := make([]*discoveryv1.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		if sl, ok := o.(*discoveryv1.EndpointSlice); ok {
			out = append(out, sl)
		}
	}
	s.read = append(s.read, out...)
	return svc, out, nil
}
