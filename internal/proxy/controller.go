package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"time"

	"github.com/vishvananda/netlink"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/knftables"

	"github.com/podnet/podnet/internal/controller"
	"github.com/podnet/podnet/internal/nldump"
	"github.com/podnet/podnet/internal/routing"
)

// ControllerConfig configures the service proxy of one node.
type ControllerConfig struct {
	NodeName string
	// PodCIDRs are the cluster's pod ranges (see Config).
	PodCIDRs []netip.Prefix
	// NodePortAddresses selects the node addresses NodePorts answer on.
	NodePortAddresses NodePortAddresses
}

// NewController returns the service proxy: it reads Services,
// EndpointSlices and Nodes (this node's addresses and zone); Service and
// slice events mark their Service, so a sync rebuilds only those. Its kernel
// handles (nft, netlink, health check servers) close when ctx ends.
func NewController(ctx context.Context, d controller.Deps, m *Metrics, cfg ControllerConfig) (*controller.Controller, error) {
	nft, err := NewNFT()
	if err != nil {
		return nil, fmt.Errorf("proxy: nftables: %w", err)
	}
	elems, err := NewNetlinkElements()
	if err != nil {
		return nil, fmt.Errorf("proxy: nftables netlink: %w", err)
	}
	p, spec, err := newProxySync(d, m, cfg, kernel{nft: nft, elems: elems, ct: KernelConntrack{}, hcHost: ""})
	if err != nil {
		_ = elems.Close()
		return nil, err
	}
	go func() {
		<-ctx.Done()
		_ = elems.Close()
		p.hcServers.Close()
	}()
	return controller.New(d, spec)
}

// kernel is what the proxy's sync writes to: the real handles in the
// agent, fakes in tests and benchmarks.
type kernel struct {
	nft    knftables.Interface
	elems  ElementWriter // nil: element changes go through nft too
	ct     Conntrack     // nil: no conntrack cleaning
	hcHost string        // where health check servers listen
}

// newProxySync builds the proxy's sync over k and the controller spec that
// runs it; it registers the slice index on d's informers.
func newProxySync(d controller.Deps, m *Metrics, cfg ControllerConfig, k kernel) (*proxySync, controller.Spec, error) {
	services := d.Factory.Core().V1().Services()
	slices := d.Factory.Discovery().V1().EndpointSlices()
	nodes := d.Factory.Core().V1().Nodes()
	if err := slices.Informer().AddIndexers(cache.Indexers{sliceServiceIndex: sliceServiceKeys}); err != nil {
		return nil, controller.Spec{}, fmt.Errorf("proxy: slice index: %w", err)
	}
	syncer := NewSyncer(k.nft, k.ct)
	if k.elems != nil {
		syncer.WithElementWriter(k.elems)
	}
	p := &proxySync{
		cfg: cfg, nodes: nodes.Lister(), metrics: m, log: d.Logger("proxy"),
		syncer:    syncer,
		hcServers: NewHealthServers(k.hcHost),
		src:       &serviceSource{services: services.Lister(), slices: slices.Informer().GetIndexer()},
		ports:     NewPortCache(),
		health:    newHealthPorts(),
	}
	return p, controller.Spec{
		Name: "proxy",
		Sources: []controller.Source{
			// A periodic resync or a relist marks no Service: package
			// controller drops updates of an unchanged version.
			{Informer: services.Informer(), Key: serviceKey},
			{Informer: slices.Informer(), Key: sliceKey},
			{Informer: nodes.Informer()}, // node addresses feed NodePorts
		},
		Mark:        p.ports.Mark,
		Sync:        p.sync,
		MinInterval: 50 * time.Millisecond, MaxInterval: time.Minute,
		FailureEffect: "the previous rules stay",
	}, nil
}

// proxySync is the proxy's sync and what it keeps between syncs.
type proxySync struct {
	// set at construction, read-only
	cfg       ControllerConfig
	nodes     corelisters.NodeLister
	metrics   *Metrics
	log       *slog.Logger
	syncer    *Syncer
	hcServers *HealthServers

	// src and health are used by the one sync at a time; ports is also
	// marked by informer handlers (it locks).
	src    *serviceSource
	health *healthPorts
	ports  *PortCache
}

func (p *proxySync) sync(ctx context.Context) error {
	pc, topo, err := p.node()
	if err != nil {
		return err
	}
	p.src.read = p.src.read[:0]
	changes, err := p.ports.Update(topo, p.src)
	if err != nil {
		return err
	}
	p.health.record(changes)
	res, err := p.syncer.Apply(ctx, pc, changes)
	if err != nil {
		return err
	}
	p.metrics.Observe(res, p.src.read, time.Now())
	if res.Full {
		// A full sync of a large cluster leaves a large transaction
		// behind as garbage; hand the memory back now rather than keep
		// it as heap headroom.
		debug.FreeOSMemory()
	}
	if want, ok := p.health.want(); ok {
		if err := p.hcServers.Sync(want); err != nil {
			p.health.dirty = true
			return err
		}
	}
	p.log.Debug("synced", "services", len(p.ports.Changed()), "operations", res.Operations, "took", res.Duration,
		"netlink", res.Netlink, "conntrackDeleted", res.ConntrackDeleted)
	return nil
}

// healthPorts keeps the Service ports that have a health check port, so
// that a sync looks at them only when one of them changed.
type healthPorts struct {
	ports map[string]*ServicePort
	dirty bool
}

func newHealthPorts() *healthPorts {
	return &healthPorts{ports: map[string]*ServicePort{}, dirty: true}
}

// record notes the changes of Service ports that have or had a health
// check port.
func (h *healthPorts) record(changes []PortChange) {
	for _, c := range changes {
		_, had := h.ports[c.Key]
		has := c.Port != nil && c.Port.HealthCheckNodePort != 0
		if has {
			h.ports[c.Key] = c.Port
		} else if had {
			delete(h.ports, c.Key)
		}
		h.dirty = h.dirty || had || has
	}
}

// want returns what the health check servers serve, when it may have
// changed since the last call.
func (h *healthPorts) want() (map[int32]HealthStatus, bool) {
	if !h.dirty {
		return nil, false
	}
	h.dirty = false
	sps := make([]*ServicePort, 0, len(h.ports))
	for _, sp := range h.ports {
		sps = append(sps, sp)
	}
	return HealthFrom(sps), true
}

// node returns the configuration and topology that come from this node:
// its zone and the addresses NodePorts answer on.
func (p *proxySync) node() (Config, Topology, error) {
	pc := Config{PodCIDRs: p.cfg.PodCIDRs}
	topo := Topology{Node: p.cfg.NodeName}
	var internalIPs, local []netip.Addr
	if n, err := p.nodes.Get(p.cfg.NodeName); err == nil {
		topo.Zone = n.Labels[v1.LabelTopologyZone]
		for _, fam := range []int{4, 6} {
			if ip, ok := routing.NodeInternalIP(n, fam); ok {
				internalIPs = append(internalIPs, ip)
			}
		}
	}
	if p.cfg.NodePortAddresses.NeedsLocal() {
		var err error
		// Read again at every sync (one netlink dump): addresses come and
		// go without an event here; the controller syncs at least once a
		// minute.
		if local, err = localAddrs(); err != nil {
			return pc, topo, fmt.Errorf("node addresses for --nodeport-addresses: %w", err)
		}
	}
	pc.NodeIPs = p.cfg.NodePortAddresses.Select(internalIPs, local)
	return pc, topo, nil
}

// serviceKey is the key of a Service event: the Service's.
func serviceKey(obj any) string {
	k, _ := cache.MetaNamespaceKeyFunc(obj)
	return k
}

// sliceKey is the key of an EndpointSlice event: its Service's.
func sliceKey(obj any) string {
	if sl, ok := obj.(*discoveryv1.EndpointSlice); ok {
		return SliceServiceKey(sl)
	}
	return ""
}

const sliceServiceIndex = "service"

// sliceServiceKeys indexes EndpointSlices by their Service's key.
func sliceServiceKeys(obj any) ([]string, error) {
	if k := sliceKey(obj); k != "" {
		return []string{k}, nil
	}
	return nil, nil
}

// localAddrs lists the addresses on the interfaces of the caller's network
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

var _ ServiceSource = (*serviceSource)(nil)

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
