package ipam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"

	"github.com/podnet/podnet/internal/controller"
	"github.com/podnet/podnet/internal/lb/pool"
)

// RunConfig configures `podnet controller`.
type RunConfig struct {
	// Kubeconfig; empty: the in-cluster configuration.
	Kubeconfig string
	// LeaderElect makes the replica wait for the Lease LeaseNamespace/
	// LeaseName before it allocates (one active replica cluster-wide).
	LeaderElect                               bool
	LeaseNamespace, LeaseName                 string
	Identity                                  string
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// MetricsAddr serves /metrics, HealthAddr /healthz; empty: off.
	MetricsAddr, HealthAddr string
	Log                     *slog.Logger
}

// Defaults fills what is unset (client-go's usual lease timings).
func (c *RunConfig) Defaults() {
	if c.LeaseNamespace == "" {
		c.LeaseNamespace = "kube-system"
	}
	if c.LeaseName == "" {
		c.LeaseName = "podnet-lb-ipam"
	}
	if c.Identity == "" {
		host, _ := os.Hostname()
		c.Identity = host + "_" + string(uuid.NewUUID())
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration, c.RenewDeadline, c.RetryPeriod = 15*time.Second, 10*time.Second, 2*time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Run runs the controller until ctx ends (or, with leader election, until
// the Lease is lost: the process should then exit and start over).
func Run(ctx context.Context, cfg RunConfig) error {
	rc, err := controller.RESTConfig(cfg.Kubeconfig, "podnet-controller")
	if err != nil {
		return fmt.Errorf("lb ipam: client config: %w", err)
	}
	// One status write and one Event per new Service: client-go's
	// default 5 requests/s gave 1,000 Services their addresses in 7.5
	// minutes (bench/lbbench). The pod runtime's limits are the model.
	rc.QPS, rc.Burst = 50, 100
	return RunWithConfig(ctx, rc, cfg)
}

// RunWithConfig is Run with a client configuration.
func RunWithConfig(ctx context.Context, rc *rest.Config, cfg RunConfig) error {
	cfg.Defaults()
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("lb ipam: client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("lb ipam: dynamic client: %w", err)
	}
	m, cm, reg, err := newRegistry()
	if err != nil {
		return fmt.Errorf("lb ipam: %w", err)
	}
	h := &healthState{}
	if err := serve(ctx, cfg.MetricsAddr, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})); err != nil {
		return err
	}
	if err := serve(ctx, cfg.HealthAddr, controller.HealthHandler(h)); err != nil {
		return err
	}
	run := func(ctx context.Context) error {
		m.Leader.Set(1)
		defer m.Leader.Set(0)
		return runController(ctx, client, dyn, m, cm, h, cfg.Log)
	}
	if !cfg.LeaderElect {
		return run(ctx)
	}
	return leaderElect(ctx, client, cfg, run)
}

// leaderElect runs run while this replica holds the Lease; it returns
// when ctx ends or the Lease is lost, and releases the Lease then.
func leaderElect(ctx context.Context, client kubernetes.Interface, cfg RunConfig, run func(context.Context) error) error {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1ObjectMeta(cfg.LeaseNamespace, cfg.LeaseName),
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	var started atomic.Bool
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock, LeaseDuration: cfg.LeaseDuration, RenewDeadline: cfg.RenewDeadline, RetryPeriod: cfg.RetryPeriod,
		// The Lease is released as soon as ctx ends, so that a successor
		// starts at once; a status write still in flight then races its
		// first sync, which is harmless: writes carry the resourceVersion
		// they read (the loser re-reads) and both compute one allocation.
		ReleaseOnCancel: true, Name: cfg.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				started.Store(true)
				cfg.Log.Info("leading: allocating LoadBalancer addresses", "identity", cfg.Identity)
				done <- run(ctx)
			},
			OnStoppedLeading: func() { cfg.Log.Info("not leading any more", "identity", cfg.Identity); cancel() },
			OnNewLeader:      func(id string) { cfg.Log.Info("leader", "identity", id) },
		},
	})
	if err != nil {
		return fmt.Errorf("lb ipam: leader election: %w", err)
	}
	le.Run(ctx)
	if started.Load() {
		return <-done // run ends with le.Run's context
	}
	return nil
}

// runController runs the informers and the controller until ctx ends; the
// informers start fresh, so a new leader lists the current state.
func runController(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface, m *Metrics,
	cm *controller.Metrics, h *healthState, log *slog.Logger) error {
	factory := informers.NewSharedInformerFactory(client, 0)
	defer factory.Shutdown()
	dfactory := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	defer dfactory.Shutdown()
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	recorder := broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "podnet-lb-ipam"})
	c, err := NewController(controller.Deps{Client: client, Factory: factory, Metrics: cm, Log: log},
		dyn, dfactory.ForResource(pool.GVR).Informer(), recorder, m)
	if err != nil {
		return err
	}
	h.set(c)
	defer h.set(nil)
	factory.Start(ctx.Done())
	dfactory.Start(ctx.Done())
	c.Run(ctx)
	return nil
}

// serve serves h on addr until ctx ends ("" serves nothing).
func serve(ctx context.Context, addr string, h http.Handler) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("lb ipam: listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("lb ipam: serve", "addr", addr, "err", err)
		}
	}()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	return nil
}
