package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podnet/podnet/internal/trace"
)

const traceLong = `Explain whether POD can reach TARGET, at both ends: the egress policies of the
source and the ingress policies of the destination, with the policies that
isolate each end and the rules that allow the connection.

POD is a pod name in -n's namespace (by default the namespace of the
kubeconfig's current context, as with kubectl), NS/NAME or pod/NAME. TARGET
is a pod as podnet probe names it (pod/NAME, or NS/pod/NAME in another
namespace; NAME and NS/NAME alone are short for these here), a pod IP, or
any other address; PORT defaults to 80 and PROTO to tcp (tcp, udp, sctp, or
icmp, which has no port: TARGET:icmp). IPv6 addresses with a port go in
brackets: [fd00::1]:53/udp.

The objects are read from the API server once (the local cluster's, or
--kubeconfig's); the answer is what the agents should have programmed.
Services (svc/NAME, cluster IPs) are not followed yet: trace to a pod
behind the Service.

Exit status: 0 when the connection is allowed, 1 when it is denied, 2 on
errors (bad arguments, unknown pods, the API server).`

func newTraceCommand(cf *clusterFlags) *cobra.Command {
	return newTraceCommandWith(cf.kubeconfig, func(kubeconfig string) (kubernetes.Interface, error) { return traceClient(cf, kubeconfig) })
}

// newTraceCommandWith builds the command on the local cluster's kubeconfig
// path and a client constructor, which gets --kubeconfig (the tests'
// seams).
func newTraceCommandWith(localKubeconfig func() string, newClient func(kubeconfig string) (kubernetes.Interface, error)) *cobra.Command {
	var kubeconfig string
	var timeout time.Duration
	nsf := &namespaceFlag{kubeconfig: func() string {
		if kubeconfig != "" {
			return kubeconfig
		}
		return localKubeconfig()
	}}
	cmd := &cobra.Command{
		Use:   "trace [-n NS] POD TARGET[:PORT[/PROTO]]",
		Short: "Explain whether POD can reach TARGET under the NetworkPolicies; exit 0 allowed, 1 denied, 2 on error",
		Long:  traceLong,
		Example: `  podnet trace nginx-pod pod/api:8080
  podnet trace frontend default/pod/api:8080/tcp
  podnet trace frontend secure/pod/database:5432
  podnet trace -n secure database 203.0.113.53:53/udp
  podnet trace frontend pod/api:icmp
  podnet trace --kubeconfig ~/.kube/config -n shop web-0 '[fd00:10:244::7]:80'`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 2 {
				return exitError{code: 2, msg: fmt.Sprintf("trace takes POD and TARGET, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ns := nsf.get()
			src, err := trace.ParsePod(args[0], ns)
			if err != nil {
				return exitError{code: 2, msg: err.Error()}
			}
			tgt, err := trace.ParseTarget(args[1], ns)
			if err != nil {
				return exitError{code: 2, msg: err.Error()}
			}
			client, err := newClient(kubeconfig)
			if err != nil {
				return exitError{code: 2, msg: err.Error()}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			r, warnings, err := trace.FromAPI(ctx, client, src, tgt)
			if err != nil {
				return exitError{code: 2, msg: err.Error()}
			}
			for _, e := range warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "podnet: warning: policy %v\n", e)
			}
			r.Format(cmd.OutOrStdout())
			if !r.Allowed() {
				return exitError{code: 1, quiet: true}
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitError{code: 2, msg: err.Error()} })
	nsf.register(cmd, "namespace of POD and of TARGET when it is a pod name")
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
