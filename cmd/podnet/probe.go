package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/probe"
	"github.com/podnet/podnet/internal/trace"
)

const probeLong = `Connect from inside POD's network namespace to TARGET:PORT and say whether a
reply came back. TCP sends an HTTP request, UDP a datagram. Against podnet's
built-in test server it prints which pod answered and the client address
that pod saw.

TARGET is an IP address (a pod, a Service's cluster IP, a node, the outside
world; IPv6 in brackets) or a pod or Service by name: pod/NAME, svc/NAME, or
NS/pod/NAME and NS/svc/NAME in another namespace than -n's. Names are looked
up in the API server (a pod's address, a Service's cluster IP), never by
this machine's resolver; a name alone is refused, since it reads like a DNS
name, which only the cluster's DNS could answer: use podnet exec POD -- curl
NAME for that. POD is NAME, NS/NAME or pod/NAME.

With --matrix (and no POD or TARGET), probe every pod of --namespaces
(default: -n's) that --selector selects, from every one of them, on --port,
in parallel (at most --parallel at once), and print the truth table in the
upstream Kubernetes NetworkPolicy e2e format: one row per probing pod, one
column per probed pod (NS/NAME), "." when the probed pod answered, "X" when
not. --expect FILE compares the table with FILE (the same format; white
space between cells, # comments) and prints the differing cells.

Exit status: 0 when a reply came back (--matrix: the table was probed; with
--expect, it equals FILE), 1 when none did (refused, dropped, timed out;
--expect: the tables differ), 2 on errors (bad arguments, an unknown pod or
Service, a namespace that cannot be entered).`

func newProbeCommand(cf *clusterFlags) *cobra.Command {
	env := localProbeEnv(cf)
	return newProbeCommandWith(cf.kubeconfig, env.podNetNS, env.client)
}

// localProbeEnv finds pods and their network namespaces on the local
// cluster of cf (podnet ui's matrix uses it too).
func localProbeEnv(cf *clusterFlags) probeEnv {
	return probeEnv{kubeconfig: cf.kubeconfig, podNetNS: func(cmd *cobra.Command, ns, name string) (string, error) {
		p, err := findPod(cmd, cf, ns, name)
		if err != nil {
			return "", err
		}
		return p.NetNS, nil
	}, client: func() (kubernetes.Interface, error) {
		_, c, err := cf.client()
		return c, err
	}}
}

// probeEnv is what the probe command reads from outside (the tests'
// seams): the kubeconfig that holds the default namespace, a pod's network
// namespace, and a client of the API server that names resolve through.
type probeEnv struct {
	kubeconfig func() string
	podNetNS   func(cmd *cobra.Command, ns, name string) (string, error)
	client     func() (kubernetes.Interface, error)
}

func newProbeCommandWith(kubeconfig func() string, podNetNS func(cmd *cobra.Command, ns, name string) (string, error), client func() (kubernetes.Interface, error)) *cobra.Command {
	env := probeEnv{kubeconfig: kubeconfig, podNetNS: podNetNS, client: client}
	var protocol string
	var timeout time.Duration
	var mo matrixFlags
	nsf := &namespaceFlag{kubeconfig: kubeconfig}
	cmd := &cobra.Command{
		Use:   "probe [-n NS] POD TARGET:PORT",
		Short: "Connect from inside a pod; exit 0 when a reply came back, 1 when not, 2 on error",
		Long:  probeLong,
		Example: `  podnet probe frontend pod/api:8080            # the api pod answers: exit 0
  podnet probe nginx-pod pod/api:8080           # api-allow admits frontends only: exit 1
  podnet probe frontend svc/nginx-service:80    # through the Service's cluster IP
  podnet probe frontend 10.96.0.1:443           # an address: the kubernetes Service
  podnet probe frontend secure/pod/database:5432
  podnet probe -n secure database 203.0.113.53:53 --protocol udp --timeout 3s
  podnet probe --matrix --namespaces default,secure --port 80
  podnet probe --matrix -n shop --selector tier=web --port 8080 --expect shop-8080.txt`,
		Args: func(_ *cobra.Command, args []string) error {
			switch {
			case mo.matrix && len(args) != 0:
				return exitError{code: 2, msg: fmt.Sprintf("probe --matrix takes no POD or TARGET, got %d arguments", len(args))}
			case !mo.matrix && len(args) != 2:
				return exitError{code: 2, msg: fmt.Sprintf("probe takes POD and TARGET:PORT, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if mo.matrix {
				return env.runMatrix(cmd, nsf.get(), protocol, timeout, mo)
			}
			return env.run(cmd, nsf.get(), protocol, timeout, args[0], args[1])
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitError{code: 2, msg: err.Error()} })
	nsf.register(cmd, "namespace of POD and of TARGET when it names a pod or Service without NS")
	cmd.Flags().StringVar(&protocol, "protocol", "tcp", "tcp or udp")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Second, "how long to wait for a reply")
	mo.register(cmd)
	return cmd
}

// run probes target from pod and prints the outcome; every error but "no
// reply" (exit 1) is exit 2.
func (env probeEnv) run(cmd *cobra.Command, ns, protocol string, timeout time.Duration, pod, target string) error {
	src, err := trace.ParsePod(pod, ns)
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	dest, err := env.resolve(cmd.Context(), ns, protocol, target)
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	nsPath, err := env.podNetNS(cmd, src.Namespace, src.Name)
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	label := target
	if dest != target {
		label = fmt.Sprintf("%s (%s)", target, dest)
	}
	reply, err := probe.From(nsPath, protocol, dest, timeout)
	out := cmd.OutOrStdout()
	var noReply *probe.NoReplyError
	switch {
	case errors.As(err, &noReply):
		fmt.Fprintf(out, "%s %s -> %s: %v\n", protocol, pod, label, err)
		return exitError{code: 1, quiet: true}
	case err != nil:
		return exitError{code: 2, msg: err.Error()}
	case reply.Pod != "":
		fmt.Fprintf(out, "%s %s -> %s: answered by pod %s, which saw the client as %s\n", protocol, pod, label, reply.Pod, reply.Client)
	default:
		fmt.Fprintf(out, "%s %s -> %s: reply %q\n", protocol, pod, label, strings.TrimSpace(reply.Body))
	}
	return nil
}

// resolve parses target and returns it as ADDR:PORT, asking the API server
// for the address of a pod or Service.
func (env probeEnv) resolve(ctx context.Context, ns, protocol, target string) (string, error) {
	tgt, err := trace.ParseHostPort(target, ns)
	if err != nil {
		return "", err
	}
	switch protocol {
	case "tcp", "udp":
		tgt.Protocol = v1.Protocol(strings.ToUpper(protocol))
	default:
		return "", fmt.Errorf("protocol %q: want tcp or udp", protocol)
	}
	if tgt.Addr.IsValid() {
		return target, nil
	}
	client, err := env.client()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addr, err := trace.Resolve(ctx, client, tgt)
	if err != nil {
		return "", err
	}
	return netip.AddrPortFrom(addr, uint16(tgt.Port)).String(), nil
}

// matrixFlags are probe --matrix's flags.
type matrixFlags struct {
	matrix           bool
	namespaces       []string
	selector, expect string
	port, parallel   int
}

func (m *matrixFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&m.matrix, "matrix", false, "probe every pair of pods and print the truth table")
	f.StringSliceVar(&m.namespaces, "namespaces", nil, "--matrix: the namespaces whose pods take part (default: -n's)")
	f.StringVarP(&m.selector, "selector", "l", "", "--matrix: a label selector of the pods that take part")
	f.IntVar(&m.port, "port", 80, "--matrix: the port to probe")
	f.IntVar(&m.parallel, "parallel", 32, "--matrix: probes in flight at most")
	f.StringVar(&m.expect, "expect", "", "--matrix: a file with the expected table; exit 1 and print the differing cells when they differ")
}

// runMatrix probes the matrix and prints it (and the differences from
// --expect).
func (env probeEnv) runMatrix(cmd *cobra.Command, ns, protocol string, timeout time.Duration, mo matrixFlags) error {
	var want *probe.Matrix
	if mo.expect != "" {
		b, err := os.ReadFile(mo.expect)
		if err != nil {
			return exitError{code: 2, msg: err.Error()}
		}
		if want, err = probe.ParseMatrix(string(b)); err != nil {
			return exitError{code: 2, msg: fmt.Sprintf("%s: %v", mo.expect, err)}
		}
	}
	namespaces := mo.namespaces
	if len(namespaces) == 0 {
		namespaces = []string{ns}
	}
	pods, err := env.matrixPods(cmd, namespaces, mo.selector)
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	m, err := probe.RunMatrix(cmd.Context(), pods, probe.MatrixOptions{Protocol: protocol, Port: mo.port, Timeout: timeout, Parallel: mo.parallel})
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	out := cmd.OutOrStdout()
	fmt.Fprint(out, m)
	if want == nil {
		return nil
	}
	diff := probe.Diff(want, m)
	if len(diff) == 0 {
		fmt.Fprintf(out, "as expected (%s)\n", mo.expect)
		return nil
	}
	fmt.Fprintf(out, "%d cell(s) differ from %s:\n", len(diff), mo.expect)
	for _, d := range diff {
		fmt.Fprintln(out, "  "+d)
	}
	return exitError{code: 1, quiet: true}
}

// matrixPods lists the pods of the namespaces that the selector selects,
// running with an address and their own network namespace (host-network
// pods are left out: their traffic is their node's), sorted by NS/NAME.
func (env probeEnv) matrixPods(cmd *cobra.Command, namespaces []string, selector string) ([]probe.MatrixPod, error) {
	client, err := env.client()
	if err != nil {
		return nil, err
	}
	var out []probe.MatrixPod
	for _, ns := range namespaces {
		list, err := client.CoreV1().Pods(ns).List(cmd.Context(), metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return nil, fmt.Errorf("list pods of %s: %w", ns, err)
		}
		for _, p := range list.Items {
			addr, err := netip.ParseAddr(p.Status.PodIP)
			if err != nil || p.Spec.HostNetwork || p.Status.Phase != v1.PodRunning || p.DeletionTimestamp != nil {
				continue
			}
			nsPath, err := env.podNetNS(cmd, p.Namespace, p.Name)
			if err != nil {
				return nil, err
			}
			out = append(out, probe.MatrixPod{Key: p.Namespace + "/" + p.Name, Name: p.Name, Addr: addr.Unmap(), NetNS: nsPath})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no running pods in %s (selector %q)", strings.Join(namespaces, ", "), selector)
	}
	slices.SortFunc(out, func(a, b probe.MatrixPod) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}
