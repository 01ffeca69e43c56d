package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/vishvananda/netlink"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podnet/podnet/internal/flow"
	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/probe"
	"github.com/podnet/podnet/internal/routing"
	"github.com/podnet/podnet/internal/trace"
)

const traceLong = `Explain how POD reaches TARGET, layer by layer, in the order a packet meets
them:

  dns      the names the pod's resolver asks for (its resolv.conf search path
           and ndots) and what the cluster's records answer; a name outside
           the cluster is forwarded upstream, which trace cannot see
  service  for a Service's cluster IP, the endpoints the proxy on the pod's
           node may choose (internal traffic policy, trafficDistribution,
           session affinity), or REJECT when none is ready
  route    per destination: same node, or which route to which node (direct
           or VXLAN), or out of the cluster
  policy   the egress verdict at the source and the ingress verdict at the
           destination, with the policies that isolate each end and the rule
           that allows the connection

POD is a pod name in -n's namespace (by default the namespace of the
kubeconfig's current context, as with kubectl), NS/NAME or pod/NAME. TARGET
is a DNS name (web.shop, kube-dns.kube-system.svc.cluster.local, example.com),
a Service (svc/NAME, NS/svc/NAME, or its cluster IP), a pod (pod/NAME,
NS/pod/NAME; NAME and NS/NAME alone are short for these, and a NAME that is
no pod's is resolved as a DNS name), or an address. PORT defaults to 80 and
PROTO to tcp (tcp, udp, sctp, or icmp, which has no port: TARGET:icmp). IPv6
addresses with a port go in brackets: [fd00::1]:53/udp.

The objects are read from the API server once (the local cluster's, or
--kubeconfig's); the answer is what the agents should have programmed.
--probe also makes a real connection from the pod (local cluster only) and
says whether reality agreed.

Exit status: 0 when the connection is allowed (on every path), 1 when it is
not (denied on some path, rejected, dropped, unresolved, or --probe
disagreed), 2 on errors (bad arguments, unknown pods, the API server).`

// traceEnv is what trace reads besides the API server (the tests' seams);
// the local-cluster parts are nil elsewhere.
type traceEnv struct {
	localKubeconfig func() string
	newClient       func(kubeconfig string) (kubernetes.Interface, error)
	// local returns the local cluster, or nil when trace runs against
	// --kubeconfig's (or none is running).
	local func() *localcluster.Config
}

// traceOptions are the command's flags.
type traceOptions struct {
	kubeconfig, output, routingMode, domain string
	timeout, probeTimeout                   time.Duration
	probe                                   bool
	// metricsPort is the agents' port, for the probe's flow records.
	metricsPort int
}

func newTraceCommand(cf *clusterFlags) *cobra.Command {
	return newTraceCommandEnv(traceEnv{
		localKubeconfig: cf.kubeconfig,
		newClient:       func(kubeconfig string) (kubernetes.Interface, error) { return traceClient(cf, kubeconfig) },
		local: func() *localcluster.Config {
			cfg, err := cf.load()
			if err != nil {
				return nil
			}
			return cfg
		},
	})
}

// newTraceCommandWith builds the command on the local cluster's kubeconfig
// path and a client constructor, which gets --kubeconfig (the tests'
// seams).
func newTraceCommandWith(localKubeconfig func() string, newClient func(kubeconfig string) (kubernetes.Interface, error)) *cobra.Command {
	return newTraceCommandEnv(traceEnv{localKubeconfig: localKubeconfig, newClient: newClient, local: func() *localcluster.Config { return nil }})
}

func newTraceCommandEnv(env traceEnv) *cobra.Command {
	var o traceOptions
	nsf := &namespaceFlag{kubeconfig: func() string {
		if o.kubeconfig != "" {
			return o.kubeconfig
		}
		return env.localKubeconfig()
	}}
	cmd := &cobra.Command{
		Use:   "trace [-n NS] POD TARGET[:PORT[/PROTO]]",
		Short: "Explain how POD reaches TARGET: DNS, Service, route and policy; exit 0 allowed, 1 not, 2 on error",
		Long:  traceLong,
		Example: `  podnet trace frontend nginx-service.default:80     # DNS -> Service -> endpoints -> policy
  podnet trace nginx-pod pod/api:8080
  podnet trace frontend svc/nginx-service --probe      # and a real connection
  podnet trace frontend secure/pod/database:5432
  podnet trace -n secure database example.com:443     # forwarded upstream
  podnet trace frontend pod/api:icmp -o json`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 2 {
				return exitError{code: 2, msg: fmt.Sprintf("trace takes POD and TARGET, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.run(cmd, o, nsf.get(), args[0], args[1])
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitError{code: 2, msg: err.Error()} })
	nsf.register(cmd, "namespace of POD and of TARGET when it is a pod name")
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default: the local cluster's admin kubeconfig)")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for the API server")
	f.StringVarP(&o.output, "output", "o", "text", "text or json")
	f.BoolVar(&o.probe, "probe", false, "also connect from the pod (local cluster) and compare")
	f.DurationVar(&o.probeTimeout, "probe-timeout", time.Second, "how long --probe waits for a reply")
	f.StringVar(&o.routingMode, "routing-mode", "", "the agents' --routing-mode, direct or vxlan (default: found on the local cluster's nodes, else direct)")
	f.StringVar(&o.domain, "cluster-domain", "", "the cluster's DNS domain (default: from the pod's resolv.conf on a local cluster, else cluster.local)")
	addMetricsPortFlag(cmd, &o.metricsPort)
	return cmd
}

// traceOutput is what -o json prints.
type traceOutput struct {
	*trace.Explanation
	Probe *trace.ProbeCheck `json:"probe,omitempty"`
	// Flows are the flow records the probe's connection produced on the
	// nodes (package flow), when the agents record flows.
	Flows []flow.Record `json:"flows,omitempty"`
}

func (env traceEnv) run(cmd *cobra.Command, o traceOptions, ns, pod, target string) error {
	if o.output != "text" && o.output != "json" {
		return exitError{code: 2, msg: fmt.Sprintf("-o %q: want text or json", o.output)}
	}
	src, err := trace.ParsePod(pod, ns)
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	tgt, err := trace.ParseTarget(target, ns)
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	client, err := env.newClient(o.kubeconfig)
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	var local *localcluster.Config
	if o.kubeconfig == "" {
		local = env.local()
	}
	if local != nil && local.Containerd() && !cmd.Flags().Changed("metrics-port") {
		o.metricsPort = deployedMetricsPort // the DaemonSet's agents, deploy/base/agent.yaml
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	out, err := explainAndProbe(ctx, client, local, o, trace.Request{Src: src, Target: tgt})
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	for _, e := range out.warnings {
		fmt.Fprintf(cmd.ErrOrStderr(), "podnet: warning: policy %v\n", e)
	}
	if err := printTrace(cmd.OutOrStdout(), o.output, out.traceOutput); err != nil {
		return err
	}
	if !out.Allowed() || out.Probe != nil && !out.Probe.Agrees {
		return exitError{code: 1, quiet: true}
	}
	return nil
}

type traceRun struct {
	traceOutput
	warnings []error
}

// explainAndProbe reads the cluster, explains req and, with --probe,
// makes the real connection.
func explainAndProbe(ctx context.Context, client kubernetes.Interface, local *localcluster.Config, o traceOptions, req trace.Request) (traceRun, error) {
	var loc *localcluster.PodLocation
	if local != nil {
		if l, err := localcluster.FindPod(ctx, client, local, req.Src.Namespace, req.Src.Name); err == nil {
			loc = &l
			if b, err := os.ReadFile(filepath.Join(l.Dir, "resolv.conf")); err == nil {
				rc := trace.ParseResolvConf(string(b))
				req.ResolvConf = &rc
			}
		}
	}
	domain, mode := o.domain, o.routingMode
	if domain == "" {
		domain = domainOf(req.ResolvConf)
	}
	if mode == "" {
		mode = localRoutingMode(local)
	}
	c, err := trace.ReadCluster(ctx, client, domain, mode)
	if err != nil {
		return traceRun{}, err
	}
	e, err := c.Explain(req)
	if err != nil {
		return traceRun{}, err
	}
	run := traceRun{traceOutput: traceOutput{Explanation: e}}
	for _, pe := range c.PolicyErrors {
		run.warnings = append(run.warnings, pe)
	}
	if o.probe {
		start := time.Now()
		if run.Probe, err = probeFor(e, loc, o.probeTimeout); err != nil {
			return traceRun{}, err
		}
		if o.metricsPort != 0 {
			run.Flows = probeFlows(ctx, client, req.Src, o.metricsPort, start)
		}
	}
	return run, nil
}

// probeFlows reads the flow records of the probe's connection: those from
// src since start (a drop at the destination's node, the connection at
// the source's), waiting up to 1.5 s for the agents to have them. None
// when the agents do not record flows or cannot be read.
func probeFlows(ctx context.Context, client kubernetes.Interface, src trace.PodName, port int, start time.Time) []flow.Record {
	q := flow.Query{Filter: flow.Filter{Since: start.Add(-100 * time.Millisecond), FromPod: src.Namespace + "/" + src.Name}, Port: port}
	for deadline := time.Now().Add(1500 * time.Millisecond); ; {
		recs, _, err := flow.Read(ctx, client, q)
		if err == nil && len(recs) > 0 || time.Now().After(deadline) {
			return recs
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// probeFor makes the real connection of e from the pod at loc.
func probeFor(e *trace.Explanation, loc *localcluster.PodLocation, timeout time.Duration) (*trace.ProbeCheck, error) {
	if loc == nil {
		return nil, errors.New("--probe needs the pod on a local cluster (podnet up), to enter its network namespace")
	}
	target, proto, ok := e.ProbeTarget()
	if !ok {
		return nil, fmt.Errorf("--probe: nothing to probe (%s; probes are tcp or udp to an address)", e.Verdict)
	}
	reply, err := probe.From(loc.NetNS, proto, target, timeout)
	var nr *probe.NoReplyError
	if err != nil && !errors.As(err, &nr) {
		return nil, fmt.Errorf("--probe: %w", err)
	}
	check := e.CheckProbe(target, reply, err)
	return &check, nil
}

// domainOf is the cluster domain a ClusterFirst search path names (its
// "svc.DOMAIN" entry), else cluster.local.
func domainOf(rc *trace.ResolvConf) string {
	if rc != nil {
		for _, s := range rc.Search {
			if d, ok := strings.CutPrefix(s, "svc."); ok && d != "" {
				return d
			}
		}
	}
	return "cluster.local"
}

// localRoutingMode is vxlan when the local cluster's first node has
// routing's VXLAN device, else direct.
func localRoutingMode(cfg *localcluster.Config) string {
	if cfg == nil {
		return routing.ModeDirect
	}
	found := false
	_ = netns.Do(netns.Path(cfg.NodeNSName(1)), func() error {
		_, err := netlink.LinkByName(routing.VXLANDevice)
		found = err == nil
		return nil
	})
	if found {
		return routing.ModeVXLAN
	}
	return routing.ModeDirect
}

func printTrace(w io.Writer, output string, out traceOutput) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		return nil
	}
	fmt.Fprint(w, out.Explanation.String())
	if out.Probe != nil {
		fmt.Fprint(w, out.Probe.String())
		if len(out.Flows) > 0 {
			fmt.Fprintln(w, "flow records of the probe (podnet flows):")
			p := newRecordPrinter(w, "table", false)
			for _, r := range out.Flows {
				p.print(r)
			}
			return p.flush()
		}
	}
	return nil
}

func traceClient(cf *clusterFlags, kubeconfig string) (kubernetes.Interface, error) {
	if kubeconfig == "" {
		_, c, err := cf.client()
		return c, err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(rc)
}
