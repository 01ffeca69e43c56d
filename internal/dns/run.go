package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	mdns "github.com/miekg/dns"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/podnet/podnet/internal/controller"
)

// RunConfig configures the DNS server process.
type RunConfig struct {
	// Kubeconfig is a path; empty means in-cluster configuration.
	Kubeconfig string
	// Listen is ADDR:PORT for DNS over UDP and TCP (default ":53"). With
	// port 0 the UDP port is chosen and TCP binds the same one.
	Listen string
	// HealthListen serves /health, /ready and /metrics ("" disables it).
	HealthListen string
	// Zone, TTL and PodMode configure the cluster zone (defaults
	// "cluster.local", 30, insecure).
	Zone    string
	TTL     uint32
	PodMode PodMode
	// Upstreams, CacheSize, CacheMaxTTL, MaxConcurrentUpstream and
	// UpstreamTimeout configure the forwarder (see ForwarderConfig). No
	// upstream: names outside the zone are answered REFUSED, reverse names
	// outside the cluster's ranges NXDOMAIN.
	Upstreams             []string
	CacheSize             int
	CacheMaxTTL           time.Duration
	MaxConcurrentUpstream int
	UpstreamTimeout       time.Duration
	// MinSyncInterval bounds how often the zone is rebuilt (default 100 ms).
	MinSyncInterval time.Duration
	// Lameduck is how long the server goes on answering after it was told
	// to stop, with /ready failing (0: stop at once).
	Lameduck time.Duration
	Log      *slog.Logger
	// Listening, when set, is told the bound addresses once the sockets
	// are open (health is nil when HealthListen is empty).
	Listening func(dns, health net.Addr)
}

// Defaults fills the zero fields.
func (c *RunConfig) Defaults() {
	if c.Listen == "" {
		c.Listen = ":53"
	}
	if c.Zone == "" {
		c.Zone = "cluster.local"
	}
	if c.TTL == 0 {
		c.TTL = 30
	}
	if c.PodMode == "" {
		c.PodMode = PodsInsecure
	}
	if c.MinSyncInterval <= 0 {
		c.MinSyncInterval = 100 * time.Millisecond
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Validate reports every problem of the configuration.
func (c *RunConfig) Validate() error {
	var errs []error
	switch c.PodMode {
	case PodsDisabled, PodsInsecure, PodsVerified:
	default:
		errs = append(errs, fmt.Errorf("pod mode %q is none of disabled, insecure, verified", c.PodMode))
	}
	if _, ok := mdns.IsDomainName(c.Zone); !ok || c.Zone == "." {
		errs = append(errs, fmt.Errorf("zone %q is not a domain name", c.Zone))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen address: %w", err))
	}
	for _, u := range c.Upstreams {
		if _, err := ParseUpstream(u); err != nil {
			errs = append(errs, err)
		}
	}
	if c.CacheSize < 0 {
		errs = append(errs, fmt.Errorf("cache size %d is negative", c.CacheSize))
	}
	if c.MaxConcurrentUpstream < 0 {
		errs = append(errs, fmt.Errorf("max concurrent upstream %d is negative", c.MaxConcurrentUpstream))
	}
	return errors.Join(errs...)
}

// Run runs the DNS server until ctx ends.
func Run(ctx context.Context, cfg RunConfig) error {
	rc, err := controller.RESTConfig(cfg.Kubeconfig, "podnet-dns")
	if err != nil {
		return fmt.Errorf("dns: client config: %w", err)
	}
	// The server only reads, through informers: its reads wait out an
	// API server that refuses connections (controller.InformerConfig), so
	// the zone follows changes again within a second of its return.
	client, err := kubernetes.NewForConfig(controller.InformerConfig(rc, cfg.Log))
	if err != nil {
		return fmt.Errorf("dns: client: %w", err)
	}
	return RunWithClient(ctx, client, cfg)
}

// RunWithClient runs the DNS server with client until ctx ends. It serves
// at once: names outside the zone are forwarded and in-zone names get
// SERVFAIL until every informer has synced and the first snapshot is
// stored.
func RunWithClient(ctx context.Context, client kubernetes.Interface, cfg RunConfig) error {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	log := cfg.Log
	// The server outlives ctx by the lame-duck period: it keeps answering
	// while /ready says 503, so clients move to other replicas before it
	// stops (a deleted pod stays an endpoint for a moment).
	outer := ctx
	ctx, cancel := context.WithCancel(context.WithoutCancel(outer))
	defer cancel()

	metrics, cm, reg, err := newMetrics()
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	zone, srv, err := newServer(cfg, metrics)
	if err != nil {
		return err
	}
	pc, ln, err := listenDNS(cfg.Listen)
	if err != nil {
		return err
	}
	healthAddr, err := serveHealth(ctx, cfg.HealthListen, HTTPHandler(zone, reg))
	if err != nil {
		pc.Close()
		ln.Close()
		return err
	}
	if cfg.Listening != nil {
		cfg.Listening(pc.LocalAddr(), healthAddr)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ctx, pc, ln) }()
	log.Info("dns serving", "listen", pc.LocalAddr().String(), "zone", zone.Name(), "pods", cfg.PodMode,
		"upstreams", cfg.Upstreams, "health", cfg.HealthListen)
	go lameDuck(ctx, outer, cancel, zone, cfg)
	syncErr := make(chan error, 1)
	go func() { syncErr <- watch(ctx, client, cfg, zone, metrics, cm) }()
	select {
	case err = <-serveErr:
		cancel()
		<-syncErr
		if err != nil {
			return fmt.Errorf("dns: serve: %w", err)
		}
	case err = <-syncErr:
		cancel()
		<-serveErr
	}
	return err
}

// newServer returns the zone and the server that answers from it (and
// forwards, when cfg has upstreams).
func newServer(cfg RunConfig, metrics *Metrics) (*Zone, *Server, error) {
	zone := NewZone(Config{Zone: cfg.Zone, TTL: cfg.TTL, PodMode: cfg.PodMode})
	var fwd *Forwarder
	if len(cfg.Upstreams) > 0 {
		var err error
		fwd, err = NewForwarder(ForwarderConfig{Upstreams: cfg.Upstreams, Timeout: cfg.UpstreamTimeout,
			MaxConcurrent: cfg.MaxConcurrentUpstream, CacheSize: cfg.CacheSize, CacheMaxTTL: cfg.CacheMaxTTL, Metrics: metrics})
		if err != nil {
			return nil, nil, err
		}
	}
	return zone, NewServer(ServerConfig{Zone: zone, Forwarder: fwd, Metrics: metrics, Log: cfg.Log}), nil
}

// serveHealth serves h on addr until ctx ends ("" serves nothing) and
// returns the bound address.
func serveHealth(ctx context.Context, addr string, h http.Handler) (net.Addr, error) {
	if addr == "" {
		return nil, nil
	}
	hl, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dns: listen %s: %w", addr, err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(hl) }()
	go func() { <-ctx.Done(); _ = hs.Close() }()
	return hl.Addr(), nil
}

// lameDuck calls cancel once outer ends, after the lame-duck period during
// which the zone is drained (/ready fails) and the server goes on
// answering. It returns early when ctx ends.
func lameDuck(ctx, outer context.Context, cancel context.CancelFunc, zone *Zone, cfg RunConfig) {
	select {
	case <-ctx.Done():
		return
	case <-outer.Done():
	}
	if cfg.Lameduck > 0 {
		zone.Drain()
		cfg.Log.Info("dns stopping: lame duck, still answering", "for", cfg.Lameduck)
		select {
		case <-time.After(cfg.Lameduck):
		case <-ctx.Done():
		}
	}
	cancel()
}

// listenDNS opens UDP and TCP on the same address; with port 0, TCP takes
// the port UDP was given.
func listenDNS(addr string) (net.PacketConn, net.Listener, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns: listen udp %s: %w", addr, err)
	}
	host, _, _ := net.SplitHostPort(addr)
	port := pc.LocalAddr().(*net.UDPAddr).Port
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		pc.Close()
		return nil, nil, fmt.Errorf("dns: listen tcp %s: %w", addr, err)
	}
	return pc, ln, nil
}

// watch keeps the zone's snapshot current until ctx ends: a controller
// (package controller) rebuilds the whole snapshot from the listers at most
// every MinSyncInterval; its handlers only poke. Nothing is stored before
// every informer has synced. Pods are watched only in verified mode, the
// only one that reads them (CoreDNS does the same). ServiceCIDRs and Nodes
// give the cluster's ranges (reverse names inside them are answered here);
// a Node update that leaves its pod CIDRs alone pokes nothing.
func watch(ctx context.Context, client kubernetes.Interface, cfg RunConfig, zone *Zone, metrics *Metrics, cm *controller.Metrics) error {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(slimObject))
	defer factory.Shutdown()
	svcInf := factory.Core().V1().Services()
	sliceInf := factory.Discovery().V1().EndpointSlices()
	cidrInf := factory.Networking().V1().ServiceCIDRs()
	nodeInf := factory.Core().V1().Nodes()
	var podLister corelisters.PodLister
	infs := []toolscache.SharedIndexInformer{svcInf.Informer(), sliceInf.Informer(), cidrInf.Informer(), nodeInf.Informer()}
	if cfg.PodMode == PodsVerified {
		podInf := factory.Core().V1().Pods()
		podLister = podInf.Lister()
		infs = append(infs, podInf.Informer())
	}
	sync := func(context.Context) error {
		svcs, err := svcInf.Lister().List(labels.Everything())
		if err != nil {
			return err
		}
		sls, err := sliceInf.Lister().List(labels.Everything())
		if err != nil {
			return err
		}
		var pods []*v1.Pod
		if podLister != nil {
			if pods, err = podLister.List(labels.Everything()); err != nil {
				return err
			}
		}
		cidrs, err := cidrInf.Lister().List(labels.Everything())
		if err != nil {
			return err
		}
		nodes, err := nodeInf.Lister().List(labels.Everything())
		if err != nil {
			return err
		}
		ranges := ClusterRanges(cidrs, nodes)
		zone.Store(Build(svcs, sls, pods, ranges))
		metrics.ZoneReady.Set(1)
		cfg.Log.Debug("zone snapshot stored", "services", len(svcs), "endpointSlices", len(sls), "pods", len(pods), "ranges", len(ranges))
		return nil
	}
	sources := make([]controller.Source, len(infs))
	for i, inf := range infs {
		sources[i] = controller.Source{Informer: inf, Ignore: sameForDNS}
	}
	c, err := controller.New(controller.Deps{Client: client, Factory: factory, Metrics: cm, Log: cfg.Log},
		controller.Spec{Name: "dns", Sources: sources, Sync: sync, MinInterval: cfg.MinSyncInterval,
			FailureEffect: "the previous snapshot answers"})
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	factory.Start(ctx.Done())
	c.Run(ctx)
	return nil
}

// sameForDNS says whether an update changed nothing the zone reads: a
// Node whose pod CIDRs stayed (kubelets update their Node's status every
// few minutes; a rebuild for each would be wasted).
func sameForDNS(old, cur any) bool {
	o, ok1 := old.(*v1.Node)
	n, ok2 := cur.(*v1.Node)
	return ok1 && ok2 && o.Spec.PodCIDR == n.Spec.PodCIDR && slices.Equal(o.Spec.PodCIDRs, n.Spec.PodCIDRs)
}

// slimObject is the informers' transform: it drops managedFields from
// every object and keeps of a Pod only what Build reads (namespace,
// hostNetwork, pod IPs), as CoreDNS's object.ToPod does, and of a Node
// only its pod CIDRs; the pod cache of a large cluster is otherwise most
// of the server's memory, and a Node's status (images, conditions) is
// large. It is idempotent and leaves tombstones alone.
func slimObject(obj any) (any, error) {
	switch o := obj.(type) {
	case *v1.Node:
		return &v1.Node{
			TypeMeta: o.TypeMeta,
			ObjectMeta: metav1.ObjectMeta{Name: o.Name, UID: o.UID,
				ResourceVersion: o.ResourceVersion, DeletionTimestamp: o.DeletionTimestamp},
			Spec: v1.NodeSpec{PodCIDR: o.Spec.PodCIDR, PodCIDRs: o.Spec.PodCIDRs},
		}, nil
	case *v1.Pod:
		return &v1.Pod{
			TypeMeta: o.TypeMeta,
			ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace, UID: o.UID,
				ResourceVersion: o.ResourceVersion, DeletionTimestamp: o.DeletionTimestamp},
			Spec:   v1.PodSpec{HostNetwork: o.Spec.HostNetwork},
			Status: v1.PodStatus{Phase: o.Status.Phase, PodIP: o.Status.PodIP, PodIPs: o.Status.PodIPs},
		}, nil
	case *v1.Service, *discoveryv1.EndpointSlice, *networkingv1.ServiceCIDR:
		if a, err := meta.Accessor(o); err == nil {
			a.SetManagedFields(nil)
		}
	}
	return obj, nil
}
