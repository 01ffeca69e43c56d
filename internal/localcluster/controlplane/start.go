package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/proc"
)

// Start starts etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler and returns once all four are healthy: etcd answers
// /health, kube-apiserver /readyz, the RBAC for podnet's agents is applied,
// kube-controller-manager answers /healthz and has created the default
// ServiceAccount, and kube-scheduler answers /readyz (informers synced).
//
// It refuses to start while any control-plane process recorded under
// StateDir is alive. On failure, everything it started is stopped again and
// the error names the process and ends with the tail of its log.
func Start(ctx context.Context, cfg Config) (_ *ControlPlane, err error) {
	start := time.Now()
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("control plane config: %w", err)
	}
	if err := CheckBinaries(cfg.BinDir); err != nil {
		return nil, err
	}
	procsDir := plan.ProcsDir(cfg.StateDir)
	for _, name := range processes {
		if rec, err := proc.Read(procsDir, name); err == nil && proc.Alive(rec) {
			return nil, fmt.Errorf("control plane already running in %s: %s is pid %d; stop it first",
				cfg.StateDir, name, rec.PID)
		}
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			// Transactional: leave nothing running that this call started.
			if serr := Stop(cfg.StateDir); serr != nil {
				err = errors.Join(err, serr)
			}
		}
	}()

	cp := &ControlPlane{Config: cfg}
	steps := []struct {
		took *time.Duration
		run  func(context.Context) error
	}{
		{&cp.Timings.PKI, cp.ensureFiles},
		{&cp.Timings.Etcd, cp.startEtcd},
		{&cp.Timings.APIServer, cp.startAPIServer},
		{&cp.Timings.RBAC, cp.applyRBAC},
		{&cp.Timings.Controllers, cp.startControllers},
	}
	for _, step := range steps {
		t := time.Now()
		if err := step.run(ctx); err != nil {
			return nil, err
		}
		*step.took = time.Since(t)
	}
	cp.Timings.Total = time.Since(start)
	cp.progress("control plane: all healthy in %s; kubeconfig %s", round(cp.Timings.Total), cp.Files.AdminKubeconfig)
	cp.admin = nil // needed while starting only
	return cp, nil
}

// progress reports one line to Config.Progress; safe for concurrent use.
func (cp *ControlPlane) progress(format string, args ...any) {
	if cp.Config.Progress == nil {
		return
	}
	cp.progressMu.Lock()
	defer cp.progressMu.Unlock()
	cp.Config.Progress(fmt.Sprintf(format, args...))
}

// ensureFiles makes the PKI and kubeconfigs and picks the ports.
func (cp *ControlPlane) ensureFiles(context.Context) error {
	t := time.Now()
	files, err := ensurePKI(&cp.Config)
	if err != nil {
		return err
	}
	cp.Files = *files
	cp.progress("control plane: certificates and kubeconfigs ready in %s (%s)", round(time.Since(t)), files.PKIDir)

	ports, err := freePorts(cp.Config.Netns, 4)
	if err != nil {
		return err
	}
	if cp.Config.EtcdPort == 0 {
		cp.Config.EtcdPort = ports[0]
	}
	if cp.Config.EtcdPeerPort == 0 {
		cp.Config.EtcdPeerPort = ports[1]
	}
	cp.ControllerManagerPort, cp.SchedulerPort = ports[2], ports[3]
	return nil
}

func (cp *ControlPlane) startEtcd(ctx context.Context) error {
	t := time.Now()
	rec, err := startProc(cp, ProcEtcd, etcdArgs(&cp.Config, &cp.Files))
	if err != nil {
		return err
	}
	if err := waitHealthy(ctx, cp.Config.Timeout, rec, "/health", etcdHealthy(cp.Config.Netns, cp.Config.EtcdPort)); err != nil {
		return err
	}
	cp.progress("control plane: etcd healthy at %s in %s (pid %d)", cp.EtcdURL(), round(time.Since(t)), rec.PID)
	return nil
}

func (cp *ControlPlane) startAPIServer(ctx context.Context) error {
	t := time.Now()
	rec, err := startProc(cp, ProcAPIServer, apiServerArgs(&cp.Config, &cp.Files))
	if err != nil {
		return err
	}
	tlsAdmin, err := adminTLS(&cp.Files)
	if err != nil {
		return err
	}
	url := cp.Config.APIServerURL()
	if err := waitHealthy(ctx, cp.Config.Timeout, rec, "/readyz", httpsHealthy(cp.Config.Netns, tlsAdmin, url+"/readyz")); err != nil {
		return err
	}
	cp.progress("control plane: kube-apiserver ready at %s in %s (pid %d)", url, round(time.Since(t)), rec.PID)

	rc, err := cp.RESTConfig()
	if err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	cp.admin, err = kubernetes.NewForConfig(rc)
	return err
}

// applyRBAC gives podnet's agents their ClusterRole.
func (cp *ControlPlane) applyRBAC(ctx context.Context) error {
	t := time.Now()
	err := retryUntil(ctx, cp.Config.Timeout, func(ctx context.Context) error {
		return ApplyAgentRBAC(ctx, cp.admin)
	})
	if err != nil {
		return fmt.Errorf("kube-apiserver: apply RBAC for %s: %w", AgentClusterRole, err)
	}
	cp.progress("control plane: ClusterRole %s bound to group %s in %s", AgentClusterRole, AgentGroup, round(time.Since(t)))
	return nil
}

// startControllers starts kube-controller-manager and kube-scheduler
// together and waits for both.
func (cp *ControlPlane) startControllers(ctx context.Context) error {
	t := time.Now()
	kcm, err := startProc(cp, ProcControllerManager, controllerManagerArgs(&cp.Config, &cp.Files, cp.ControllerManagerPort))
	if err != nil {
		return err
	}
	sched, err := startProc(cp, ProcScheduler, schedulerArgs(&cp.Files, cp.SchedulerPort))
	if err != nil {
		return err
	}
	tlsLocal, err := localTLS(&cp.Files)
	if err != nil {
		return err
	}
	local := func(port int, path string) string { return fmt.Sprintf("https://127.0.0.1:%d%s", port, path) }
	waits := []struct {
		rec   *proc.Record
		what  string
		check healthCheck
	}{
		{kcm, "/healthz and the default ServiceAccount", allOf(
			httpsHealthy(cp.Config.Netns, tlsLocal, local(cp.ControllerManagerPort, "/healthz")),
			defaultServiceAccount(cp.admin))},
		{sched, "/readyz", httpsHealthy(cp.Config.Netns, tlsLocal, local(cp.SchedulerPort, "/readyz"))},
	}
	errs := make([]error, len(waits))
	var wg sync.WaitGroup
	for i, w := range waits {
		wg.Go(func() {
			if errs[i] = waitHealthy(ctx, cp.Config.Timeout, w.rec, w.what, w.check); errs[i] == nil {
				cp.progress("control plane: %s healthy in %s (pid %d)", w.rec.Name, round(time.Since(t)), w.rec.PID)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
