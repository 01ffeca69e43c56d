package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/proc"
)

// Names of the control-plane processes: their records are
// procs/<name>.json and their logs logs/<name>.log.
const (
	ProcEtcd              = "etcd"
	ProcAPIServer         = "kube-apiserver"
	ProcControllerManager = "kube-controller-manager"
	ProcScheduler         = "kube-scheduler"
)

// Kubectl is the client built with the control plane; `podnet kubectl` and
// `podnet up -f` run it.
const Kubectl = "kubectl"

// processes are the control-plane processes in start order.
var processes = []string{ProcEtcd, ProcAPIServer, ProcControllerManager, ProcScheduler}

// Binaries are the programs of tools/bin (make tools) that a local cluster
// needs: its control-plane processes and kubectl. Start, podnet up and the
// tests check for all of them with CheckBinaries; this is the only list.
var Binaries = append(slices.Clone(processes), Kubectl)

// ServiceAccountIssuer is kube-apiserver's --service-account-issuer.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// Defaults of Config.
const (
	DefaultTimeout = 2 * time.Minute
	// DefaultStopGrace is how long a control-plane process has between
	// SIGTERM and SIGKILL.
	DefaultStopGrace = 15 * time.Second
)

// Config says where and how to run a control plane.
type Config struct {
	// ClusterName names the cluster and context in kubeconfigs and is
	// kube-controller-manager's --cluster-name. Default "podnet".
	ClusterName string
	// StateDir holds pki/, kubeconfig, kubeconfigs/, etcd/, logs/ and
	// procs/ (see DESIGN-NOTES.md). Required, absolute.
	StateDir string
	// BinDir holds etcd, kube-apiserver, kube-controller-manager and
	// kube-scheduler (tools/bin). Required.
	BinDir string

	// APIAddress and APIPort are where kube-apiserver listens and what it
	// advertises (the kubernetes Service's endpoint). APIPort defaults to
	// 6443. kube-apiserver refuses to advertise a loopback address (it
	// cannot be an endpoint), so with a loopback APIAddress it runs with
	// --endpoint-reconciler-type=none: the kubernetes Service then exists
	// but has no endpoints.
	APIAddress netip.Addr
	APIPort    int
	// ExtraAPIAddresses are more addresses put in the serving certificate.
	ExtraAPIAddresses []netip.Addr

	// ServiceCIDR is the ClusterIP range; PodCIDR the cluster's pod range,
	// of which kube-controller-manager gives each Node a
	// /NodeCIDRMaskSize (default 24).
	ServiceCIDR      netip.Prefix
	PodCIDR          netip.Prefix
	NodeCIDRMaskSize int

	// EtcdPort and EtcdPeerPort are etcd's loopback ports; 0 picks a free
	// one. Reusing the ports of a previous run is kinder to etcd's member
	// list but not required.
	EtcdPort, EtcdPeerPort int

	// Netns, if set, is the path of a network namespace in which every
	// process runs and from which every health check and client dials.
	// The contract runs the control plane in the root namespace (""); a
	// namespace lets tests use a non-loopback APIAddress without touching
	// the machine. Addresses must then be IP literals.
	Netns string

	// Confine, if set, confines every process Start starts: each is
	// started inside Confine.Do and must then be held (Confine.Holds). The
	// local cluster passes its guard (package guard), so that nothing the
	// control plane sends can leave the cluster's ranges. Do's function
	// forks on the calling thread, so Confine and Netns do not combine:
	// Start refuses both.
	Confine Confiner

	// Timeout bounds each wait for a process to become healthy. Default
	// DefaultTimeout.
	Timeout time.Duration
	// Progress, if set, receives one self-contained line per step.
	Progress func(string)
}

// Confiner confines processes: Do runs a function that starts processes
// so that they begin confined; Holds says whether a pid is.
type Confiner interface {
	Do(start func() error) error
	Holds(pid int) error
}

// Defaults fills in the zero fields that have defaults.
func (c *Config) Defaults() {
	if c.ClusterName == "" {
		c.ClusterName = "podnet"
	}
	if c.APIPort == 0 {
		c.APIPort = plan.DefaultAPIServerPort
	}
	if c.NodeCIDRMaskSize == 0 {
		c.NodeCIDRMaskSize = plan.DefaultNodeCIDRMaskSize
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
}

// Validate reports every problem of the configuration, joined, or nil.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.StateDir == "" || !filepath.IsAbs(c.StateDir) {
		add("stateDir %q: want an absolute path", c.StateDir)
	}
	if c.BinDir == "" {
		add("binDir: required")
	}
	if !c.APIAddress.IsValid() || c.APIAddress.IsUnspecified() {
		add("apiAddress %v: want a specific address", c.APIAddress)
	}
	if c.APIPort < 1 || c.APIPort > 65535 {
		add("apiPort %d: want 1 to 65535", c.APIPort)
	}
	for _, p := range []struct {
		what string
		port int
	}{{"etcdPort", c.EtcdPort}, {"etcdPeerPort", c.EtcdPeerPort}} {
		if p.port < 0 || p.port > 65535 {
			add("%s %d: want 0 (pick a free port) to 65535", p.what, p.port)
		}
	}
	if !c.ServiceCIDR.IsValid() || c.ServiceCIDR != c.ServiceCIDR.Masked() {
		add("serviceCIDR %v: want a network prefix", c.ServiceCIDR)
	}
	if !c.PodCIDR.IsValid() || c.PodCIDR != c.PodCIDR.Masked() {
		add("podCIDR %v: want a network prefix", c.PodCIDR)
	} else if m := c.NodeCIDRMaskSize; m < c.PodCIDR.Bits() || m > c.PodCIDR.Addr().BitLen() {
		add("nodeCIDRMaskSize %d: want %d to %d", m, c.PodCIDR.Bits(), c.PodCIDR.Addr().BitLen())
	}
	if c.ServiceCIDR.IsValid() && c.PodCIDR.IsValid() && c.ServiceCIDR.Overlaps(c.PodCIDR) {
		add("serviceCIDR %v overlaps podCIDR %v", c.ServiceCIDR, c.PodCIDR)
	}
	if c.ServiceCIDR.IsValid() && c.APIAddress.IsValid() && c.ServiceCIDR.Addr().Is4() != c.APIAddress.Is4() {
		add("serviceCIDR %v and apiAddress %v are of different IP families", c.ServiceCIDR, c.APIAddress)
	}
	if c.Netns != "" {
		if _, err := os.Stat(c.Netns); err != nil {
			add("netns: %v", err)
		}
	}
	if c.Confine != nil && c.Netns != "" {
		add("confine and netns: a process started in a namespace would escape the confinement")
	}
	if c.Timeout < 0 {
		add("timeout %v: want positive", c.Timeout)
	}
	return errors.Join(errs...)
}

// APIServerURL is https://APIAddress:APIPort.
func (c *Config) APIServerURL() string {
	return "https://" + netip.AddrPortFrom(c.APIAddress, uint16(c.APIPort)).String()
}

// ControlPlane is a running control plane, as started by Start.
type ControlPlane struct {
	// Config is the configuration with defaults and chosen ports filled in.
	Config Config
	// Files are the paths of everything it wrote.
	Files Files
	// Procs are the records of etcd, kube-apiserver,
	// kube-controller-manager and kube-scheduler, in start order.
	Procs []*proc.Record
	// Ports chosen on 127.0.0.1 for kube-controller-manager's and
	// kube-scheduler's health endpoints.
	ControllerManagerPort, SchedulerPort int
	// Timings of the start, for progress and benchmarks.
	Timings Timings

	// Used while starting only.
	progressMu sync.Mutex
	admin      kubernetes.Interface
}

// Timings says how long each step of Start took.
type Timings struct {
	PKI, Etcd, APIServer, RBAC, Controllers, Total time.Duration
}

// EtcdURL is etcd's client URL.
func (cp *ControlPlane) EtcdURL() string { return etcdURL(cp.Config.EtcdPort) }

// AdminKubeconfig is the path of the system:masters kubeconfig.
func (cp *ControlPlane) AdminKubeconfig() string { return cp.Files.AdminKubeconfig }

// RESTConfig returns a client config for the admin identity (dialing from
// Config.Netns when set).
func (cp *ControlPlane) RESTConfig() (*rest.Config, error) {
	return cp.Config.RESTConfig(cp.Files.AdminKubeconfig)
}

// RESTConfig loads a kubeconfig as a client config that dials from Netns
// when set.
func (c *Config) RESTConfig(kubeconfig string) (*rest.Config, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	if c.Netns != "" {
		rc.Dial = Dialer(c.Netns)
	}
	rc.Proxy = noProxy // never send cluster traffic to an HTTP(S)_PROXY
	return rc, nil
}

func noProxy(*http.Request) (*url.URL, error) { return nil, nil }

// ProcessEnv is the environment for the cluster's processes: the caller's,
// without proxy settings. client-go (in kube-controller-manager,
// kube-scheduler, and podnet's own runtime and agent) honours HTTPS_PROXY
// for every address but loopback, which would send cluster traffic to a
// non-loopback API address off the machine.
func ProcessEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// Stop ends the control-plane processes this ControlPlane started, as
// Stop does.
func (cp *ControlPlane) Stop() error { return Stop(cp.Config.StateDir) }

// Stop ends the control-plane processes recorded under
// stateDir/procs (only those whose pid still has the recorded start time)
// and removes their records: kube-scheduler and kube-controller-manager
// first, then kube-apiserver, then etcd. Records of other processes (node
// runtimes, agents) are left alone. Missing records are success.
func Stop(stateDir string) error {
	dir := plan.ProcsDir(stateDir)
	stop := func(name string) error {
		rec, err := proc.Read(dir, name)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := proc.Stop(rec, DefaultStopGrace); err != nil {
			return err
		}
		return proc.Remove(dir, name)
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, name := range []string{ProcScheduler, ProcControllerManager} {
		wg.Go(func() {
			if err := stop(name); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	errs = append(errs, stop(ProcAPIServer), stop(ProcEtcd))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop control plane: %w", err)
	}
	return nil
}

// CheckBinaries names every one of Binaries that binDir lacks (or holds
// as something that cannot be run).
func CheckBinaries(binDir string) error {
	var missing []string
	for _, b := range Binaries {
		if st, err := os.Stat(filepath.Join(binDir, b)); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, filepath.Join(binDir, b))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing control-plane binaries %s (run `make tools`)", strings.Join(missing, ", "))
	}
	return nil
}

// startProc starts one control-plane process (confined, with
// Config.Confine) and appends its record to cp.
func startProc(cp *ControlPlane, name string, args []string) (*proc.Record, error) {
	var rec *proc.Record
	start := func() (err error) {
		rec, err = proc.Start(plan.ProcsDir(cp.Config.StateDir), proc.Spec{
			Name:    name,
			Argv:    append([]string{filepath.Join(cp.Config.BinDir, name)}, args...),
			Env:     ProcessEnv(),
			Dir:     cp.Config.StateDir,
			LogFile: filepath.Join(plan.LogsDir(cp.Config.StateDir), name+".log"),
			Netns:   cp.Config.Netns,
		})
		return err
	}
	// A process started but not confined is recorded: Start's cleanup
	// stops it with the others.
	var err error
	if c := cp.Config.Confine; c != nil {
		if err = c.Do(start); err == nil {
			if herr := c.Holds(rec.PID); herr != nil {
				err = fmt.Errorf("%s (pid %d) is not confined: %w", name, rec.PID, herr)
			}
		}
	} else {
		err = start()
	}
	if err != nil {
		return nil, err
	}
	cp.Procs = append(cp.Procs, rec)
	return rec, nil
}

// freePorts returns n distinct free TCP ports on 127.0.0.1 of the
// namespace at nsPath ("" for the caller's). They are free when returned;
// nothing reserves them.
func freePorts(nsPath string, n int) ([]int, error) {
	var ports []int
	pick := func() error {
		var ls []net.Listener
		defer func() {
			for _, l := range ls {
				l.Close()
			}
		}()
		for range n {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return fmt.Errorf("pick a free port: %w", err)
			}
			ls = append(ls, l)
			ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		}
		return nil
	}
	if nsPath == "" {
		return ports, pick()
	}
	return ports, netns.Do(nsPath, pick)
}

// Dialer dials from the namespace at nsPath ("" for the caller's): the
// socket is made on a thread inside it and keeps that namespace. Only IP
// literals: resolving a name could race other goroutines, which run in the
// root namespace.
func Dialer(nsPath string) func(ctx context.Context, network, address string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if nsPath == "" {
		return d.DialContext
	}
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		var c net.Conn
		err := netns.Do(nsPath, func() error {
			var err error
			c, err = d.DialContext(ctx, network, address)
			return err
		})
		return c, err
	}
}

func etcdURL(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }

func round(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }
