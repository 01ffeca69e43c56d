package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podnet/podnet/internal/policy"
	"github.com/podnet/podnet/internal/trace"
)

func newTraceCommand(cf *clusterFlags) *cobra.Command {
	return newTraceCommandWith(func(kubeconfig string) (kubernetes.Interface, error) { return traceClient(cf, kubeconfig) })
}

// newTraceCommandWith builds the command on a client constructor (the
// tests' seam), which gets --kubeconfig.
func newTraceCommandWith(newClient func(kubeconfig string) (kubernetes.Interface, error)) *cobra.Command {
	var ns, kubeconfig string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "trace [-n NS] POD TARGET[:PORT[/PROTO]]",
		Short: "Explain whether POD can reach TARGET under the NetworkPolicies; exit 0 allowed, 1 denied, 2 on error",
		Long: `Explain whether POD can reach TARGET, at both ends: the egress policies of the
source and the ingress policies of the destination, with the policies that
isolate each end and the rules that allow the connection.

POD is a pod name in -n's namespace, or NS/NAME. TARGET is a pod (NAME or
NS/NAME), a pod IP, or any other address; PORT defaults to 80 and PROTO to
tcp (tcp, udp, sctp, or icmp, which has no port: TARGET:icmp). IPv6
addresses with a port go in brackets: [fd00::1]:53/udp.

The objects are read from the API server once (the local cluster's, or
--kubeconfig's); the answer is what the agents should have programmed.
Services are not followed yet: trace to a pod behind the Service.

Exit status: 0 when the connection is allowed, 1 when it is denied, 2 on
errors (bad arguments, unknown pods, the API server).`,
		Example: `  podnet trace client web-1
  podnet trace -n shop frontend backend:8080
  podnet trace client kube-system/coredns-0:53/udp
  podnet trace client 203.0.113.5:443
  podnet trace client '[fd00:10:244::7]:80/tcp'`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 2 {
				return exitError{code: 2, msg: fmt.Sprintf("trace takes POD and TARGET, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := parsePodRef(args[0], ns)
			if err != nil {
				return exitError{code: 2, msg: err.Error()}
			}
			tgt, err := parseTarget(args[1], ns)
			if err != nil {
				return exitError{code: 2, msg: err.Error()}
			}
			client, err := newClient(kubeconfig)
			if err != nil {
				return exitError{code: 2, msg: err.Error()}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			r, err := runTrace(ctx, client, src, tgt, cmd)
			if err != nil {
				return exitError{code: 2, msg: err.Error()}
			}
			r.Format(cmd.OutOrStdout())
			if !r.Allowed() {
				return exitError{code: 1, quiet: true}
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitError{code: 2, msg: err.Error()} })
	cmd.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace of POD and of TARGET when it is a pod name")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default: the local cluster's admin kubeconfig)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the API server")
	return cmd
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

// runTrace reads the objects policy needs, resolves both ends and traces.
func runTrace(ctx context.Context, client kubernetes.Interface, src podName, tgt target, cmd *cobra.Command) (*trace.Result, error) {
	podList, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	nsList, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	npList, err := client.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list networkpolicies: %w", err)
	}
	var pods []*policy.Pod
	for i := range podList.Items {
		if p := policy.PodFrom(&podList.Items[i]); p != nil {
			pods = append(pods, p)
		}
	}
	var namespaces []*policy.Namespace
	for i := range nsList.Items {
		namespaces = append(namespaces, policy.NamespaceFrom(&nsList.Items[i]))
	}
	var nps []*networkingv1.NetworkPolicy
	for i := range npList.Items {
		nps = append(nps, &npList.Items[i])
	}
	compiled, errs := policy.Compile(nps, pods, namespaces)

	srcPod, err := lookupPod(compiled, podList.Items, src)
	if err != nil {
		return nil, err
	}
	q := trace.Query{Src: trace.Endpoint{Pod: srcPod}, Protocol: tgt.proto, Port: tgt.port}
	if tgt.addr.IsValid() {
		q.Dst.Addr = tgt.addr
	} else {
		dstPod, err := lookupPod(compiled, podList.Items, tgt.pod)
		if err != nil {
			if _, serr := client.CoreV1().Services(tgt.pod.ns).Get(ctx, tgt.pod.name, metav1.GetOptions{}); serr == nil {
				return nil, fmt.Errorf("%s is a Service, not a pod; podnet trace does not follow Services yet: trace to one of its pods", tgt.pod)
			}
			return nil, err
		}
		q.Dst = trace.Endpoint{Addr: dstPod.IPs[0], Pod: dstPod}
	}
	if q.Src.Addr, err = addrOfFamily(srcPod, q.Dst.Addr); err != nil {
		return nil, err
	}
	if svc := serviceWithIP(ctx, client, q.Dst.Addr); svc != "" {
		return nil, fmt.Errorf("%s is Service %s's cluster IP; podnet trace does not follow Services yet: trace to one of its pods", q.Dst.Addr, svc)
	}
	for _, e := range errs {
		fmt.Fprintf(cmd.ErrOrStderr(), "podnet: warning: policy %v\n", e)
	}
	return trace.Trace(compiled, errs, q), nil
}

// lookupPod finds a pod by name among the compiled pods, explaining why
// when it is not there.
func lookupPod(c *policy.Compiled, items []v1.Pod, ref podName) (*policy.Pod, error) {
	if p := c.Pods[ref.String()]; p != nil {
		return p, nil
	}
	for i := range items {
		if items[i].Namespace == ref.ns && items[i].Name == ref.name {
			return nil, fmt.Errorf("pod %s has no address (phase %s): it does not take part in the network", ref, items[i].Status.Phase)
		}
	}
	return nil, fmt.Errorf("pod %s not found", ref)
}

// addrOfFamily returns the pod's address of dst's family.
func addrOfFamily(p *policy.Pod, dst netip.Addr) (netip.Addr, error) {
	for _, a := range p.IPs {
		if a.Is4() == dst.Is4() {
			return a, nil
		}
	}
	fam := "IPv6"
	if dst.Is4() {
		fam = "IPv4"
	}
	return netip.Addr{}, fmt.Errorf("pod %s has no %s address to reach %s from", p.Key(), fam, dst)
}

// serviceWithIP names the Service whose cluster IP is a ("" when none, or
// when Services cannot be listed: the check is a courtesy).
func serviceWithIP(ctx context.Context, client kubernetes.Interface, a netip.Addr) string {
	svcs, err := client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return ""
	}
	for _, s := range svcs.Items {
		for _, ip := range s.Spec.ClusterIPs {
			if b, err := netip.ParseAddr(ip); err == nil && b.Unmap() == a {
				return s.Namespace + "/" + s.Name
			}
		}
	}
	return ""
}

// podName is a namespaced pod name.
type podName struct{ ns, name string }

func (p podName) String() string { return p.ns + "/" + p.name }

// parsePodRef parses NAME or NS/NAME.
func parsePodRef(s, defaultNS string) (podName, error) {
	ns, name, found := strings.Cut(s, "/")
	if !found {
		ns, name = defaultNS, s
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return podName{}, fmt.Errorf("%q: bad namespace %q: %s", s, ns, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return podName{}, fmt.Errorf("%q: bad pod name %q: %s", s, name, strings.Join(errs, "; "))
	}
	return podName{ns, name}, nil
}

// target is a parsed TARGET[:PORT[/PROTO]]: a pod or an address.
type target struct {
	pod   podName
	addr  netip.Addr // valid when the target is an address
	proto v1.Protocol
	port  int32 // 0 for icmp
}

// parseTarget parses TARGET[:PORT[/PROTO]] where TARGET is NAME, NS/NAME,
// an IPv4 address, an IPv6 address (in brackets when a port follows), and
// the part after the colon is PORT, PORT/PROTO or PROTO alone (icmp, or a
// protocol with the default port 80).
func parseTarget(s, defaultNS string) (target, error) {
	host, spec, hasSpec := s, "", false
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.Index(s, "]")
		if end < 0 {
			return target{}, fmt.Errorf("%q: missing ]", s)
		}
		host, spec = s[1:end], s[end+1:]
		if spec != "" {
			if !strings.HasPrefix(spec, ":") {
				return target{}, fmt.Errorf("%q: expected :PORT after ]", s)
			}
			spec, hasSpec = spec[1:], true
		}
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Is4In6() {
			return target{}, fmt.Errorf("%q: brackets hold an IPv6 address", s)
		}
	case strings.Count(s, ":") > 1:
		if _, err := netip.ParseAddr(s); err != nil {
			return target{}, fmt.Errorf("%q: not an IPv6 address (with a port, write [ADDR]:PORT)", s)
		}
	default:
		if i := strings.LastIndex(s, ":"); i >= 0 {
			host, spec, hasSpec = s[:i], s[i+1:], true
		}
	}
	t := target{proto: v1.ProtocolTCP, port: 80}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return target{}, fmt.Errorf("%q: addresses with a zone are not pod or cluster addresses", s)
		}
		t.addr = a.Unmap()
	} else if strings.Count(host, ".") == 3 && strings.Trim(host, "0123456789.") == "" {
		return target{}, fmt.Errorf("%q: bad IPv4 address: %v", s, err)
	} else if t.pod, err = parsePodRef(host, defaultNS); err != nil {
		return target{}, err
	}
	if hasSpec {
		if err := parsePortSpec(spec, &t); err != nil {
			return target{}, fmt.Errorf("%q: %w", s, err)
		}
	}
	return t, nil
}

// parsePortSpec parses PORT, PORT/PROTO or PROTO into t.
func parsePortSpec(spec string, t *target) error {
	portStr, protoStr, hasProto := strings.Cut(spec, "/")
	if !hasProto {
		if _, err := parseProto(spec); err == nil {
			portStr, protoStr, hasProto = "", spec, true
		}
	}
	if hasProto {
		p, err := parseProto(protoStr)
		if err != nil {
			return err
		}
		t.proto = p
	}
	if !trace.HasPorts(t.proto) {
		if portStr != "" {
			return errors.New("icmp has no port")
		}
		t.port = 0
		return nil
	}
	if portStr == "" {
		if hasProto {
			return nil // PROTO alone: the default port
		}
		return errors.New("empty port")
	}
	n, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("bad port %q (1-65535)", portStr)
	}
	t.port = int32(n)
	return nil
}

func parseProto(s string) (v1.Protocol, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return v1.ProtocolTCP, nil
	case "udp":
		return v1.ProtocolUDP, nil
	case "sctp":
		return v1.ProtocolSCTP, nil
	case "icmp", "icmpv6":
		return trace.ProtocolICMP, nil
	}
	return "", fmt.Errorf("bad protocol %q (tcp, udp, sctp or icmp)", s)
}
