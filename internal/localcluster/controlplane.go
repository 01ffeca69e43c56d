package localcluster

// The control plane of a local cluster (controlplane*.go): etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler, run from the
// binaries built under tools/ as detached processes in the root network
// namespace, recorded under <StateDir>/procs so that a later `podnet down`
// ends exactly them. Certificates and kubeconfigs come from package pki.
//
// Dangerous: StartControlPlane writes a CA whose key can mint any identity
// (including system:masters) to <StateDir>/pki, and hands the same key to
// kube-controller-manager to sign CSRs; the state directory must stay
// root-only. kube-apiserver listens on APIAddress:APIPort; etcd listens on
// loopback without TLS or authentication, so any local process can read
// and write the whole cluster state through it.

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
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

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

// ControlPlaneBinaries are the programs StartControlPlane needs in BinDir.
var ControlPlaneBinaries = []string{ProcEtcd, ProcAPIServer, ProcControllerManager, ProcScheduler}

// controlPlaneProcs in start order; they are stopped in reverse.
var controlPlaneProcs = []string{ProcEtcd, ProcAPIServer, ProcControllerManager, ProcScheduler}

// ServiceAccountIssuer is kube-apiserver's --service-account-issuer.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// Defaults of ControlPlaneConfig.
const (
	DefaultControlPlaneTimeout = 2 * time.Minute
	// DefaultStopGrace is how long a control-plane process has between
	// SIGTERM and SIGKILL.
	DefaultStopGrace = 15 * time.Second
)

// ControlPlaneConfig says where and how to run a control plane.
type ControlPlaneConfig struct {
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

	// Timeout bounds each wait for a process to become healthy. Default
	// DefaultControlPlaneTimeout.
	Timeout time.Duration
	// Progress, if set, receives one self-contained line per step.
	Progress func(string)
}

// Defaults fills in the zero fields that have defaults.
func (c *ControlPlaneConfig) Defaults() {
	if c.ClusterName == "" {
		c.ClusterName = "podnet"
	}
	if c.APIPort == 0 {
		c.APIPort = DefaultAPIServerPort
	}
	if c.NodeCIDRMaskSize == 0 {
		c.NodeCIDRMaskSize = DefaultNodeCIDRMaskSize
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultControlPlaneTimeout
	}
}

// Validate reports every problem of the configuration, joined, or nil.
func (c *ControlPlaneConfig) Validate() error {
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
	if c.Timeout < 0 {
		add("timeout %v: want positive", c.Timeout)
	}
	return errors.Join(errs...)
}

// APIServerURL is https://APIAddress:APIPort.
func (c *ControlPlaneConfig) APIServerURL() string {
	return "https://" + netip.AddrPortFrom(c.APIAddress, uint16(c.APIPort)).String()
}

// ControlPlane is a running control plane, as started by StartControlPlane.
type ControlPlane struct {
	// Config is the configuration with defaults and chosen ports filled in.
	Config ControlPlaneConfig
	// Files are the paths of everything it wrote.
	Files ControlPlaneFiles
	// Procs are the records of etcd, kube-apiserver,
	// kube-controller-manager and kube-scheduler, in start order.
	Procs []*proc.Record
	// Ports chosen on 127.0.0.1 for kube-controller-manager's and
	// kube-scheduler's health endpoints.
	ControllerManagerPort, SchedulerPort int
	// Timings of the start, for progress and benchmarks.
	Timings ControlPlaneTimings

	// Used while starting only.
	progressMu sync.Mutex
	admin      kubernetes.Interface
}

// ControlPlaneTimings says how long each step of StartControlPlane took.
type ControlPlaneTimings struct {
	PKI, Etcd, APIServer, RBAC, Controllers, Total time.Duration
}

// EtcdURL is etcd's client URL.
func (cp *ControlPlane) EtcdURL() string { return cpEtcdURL(cp.Config.EtcdPort) }

// AdminKubeconfig is the path of the system:masters kubeconfig.
func (cp *ControlPlane) AdminKubeconfig() string { return cp.Files.AdminKubeconfig }

// RESTConfig returns a client config for the admin identity (dialing from
// Config.Netns when set).
func (cp *ControlPlane) RESTConfig() (*rest.Config, error) {
	return cp.Config.RESTConfig(cp.Files.AdminKubeconfig)
}

// RESTConfig loads a kubeconfig as a client config that dials from Netns
// when set.
func (c *ControlPlaneConfig) RESTConfig(kubeconfig string) (*rest.Config, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	if c.Netns != "" {
		rc.Dial = cpDialer(c.Netns)
	}
	rc.Proxy = cpNoProxy // never send cluster traffic to an HTTP(S)_PROXY
	return rc, nil
}

func cpNoProxy(*http.Request) (*url.URL, error) { return nil, nil }

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
// StopControlPlane does.
func (cp *ControlPlane) Stop() error { return StopControlPlane(cp.Config.StateDir) }

// StopControlPlane ends the control-plane processes recorded under
// stateDir/procs (only those whose pid still has the recorded start time)
// and removes their records: kube-scheduler and kube-controller-manager
// first, then kube-apiserver, then etcd. Records of other processes (node
// runtimes, agents) are left alone. Missing records are success.
func StopControlPlane(stateDir string) error {
	dir := filepath.Join(stateDir, "procs")
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

// cpCheckBinaries names every missing program in binDir.
func cpCheckBinaries(binDir string) error {
	var missing []string
	for _, b := range ControlPlaneBinaries {
		if st, err := os.Stat(filepath.Join(binDir, b)); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, filepath.Join(binDir, b))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("control plane: missing %s (build them with `make tools`)", strings.Join(missing, ", "))
	}
	return nil
}

// cpStart starts one control-plane process and appends its record to cp.
func cpStart(cp *ControlPlane, name string, args []string) (*proc.Record, error) {
	rec, err := proc.Start(filepath.Join(cp.Config.StateDir, "procs"), proc.Spec{
		Name:    name,
		Argv:    append([]string{filepath.Join(cp.Config.BinDir, name)}, args...),
		Env:     ProcessEnv(),
		Dir:     cp.Config.StateDir,
		LogFile: filepath.Join(cp.Config.StateDir, "logs", name+".log"),
		Netns:   cp.Config.Netns,
	})
	if err != nil {
		return nil, err
	}
	cp.Procs = append(cp.Procs, rec)
	return rec, nil
}

// cpFreePorts returns n distinct free TCP ports on 127.0.0.1 of the
// namespace at nsPath ("" for the caller's). They are free when returned;
// nothing reserves them.
func cpFreePorts(nsPath string, n int) ([]int, error) {
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

// cpDialer dials from the namespace at nsPath: the socket is made on a
// thread inside it and keeps that namespace. Only IP literals: resolving
// a name could race other goroutines, which run in the root namespace.
func cpDialer(nsPath string) func(ctx context.Context, network, address string) (net.Conn, error) {
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

func cpEtcdURL(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }

func cpRound(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }
