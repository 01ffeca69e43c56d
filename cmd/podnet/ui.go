package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/probe"
	"github.com/podnet/podnet/internal/trace"
	"github.com/podnet/podnet/internal/ui"
)

const uiLong = `Serve a web page of the cluster on --listen (127.0.0.1:8089 by default) and
keep serving until interrupted. The page shows:

  topology       the nodes, the pods on each with their IPs, the Services
                 and the NetworkPolicies (refreshed every 5 seconds);
  policies       on how many nodes each NetworkPolicy is in force, and the
                 nodes that lag or failed (podnet status policies);
  live flows     the agents' flow records as they come, with their verdict,
                 Service and deciding policy (podnet flows --follow);
  trace          a form for podnet trace (and --probe);
  matrix         a form for podnet probe --matrix: the truth table of a port.

It reads the same APIs as those commands, with the local cluster's admin
credentials (or --kubeconfig's; the matrix and --probe need the local
cluster, whose pods they enter). Anyone who can reach the address can use
them: keep it on loopback, and reach a remote machine's with an SSH tunnel
(ssh -L 8089:127.0.0.1:8089 HOST, then open http://127.0.0.1:8089/ here).
See docs/ui.md.`

func newUICommand(cf *clusterFlags) *cobra.Command {
	var listen, kubeconfig string
	var port int
	cmd := &cobra.Command{
		Use:   "ui [--listen ADDR]",
		Short: "Serve a web page: topology, live flows, policy status, connectivity matrix and trace",
		Long:  uiLong,
		Example: `  podnet ui                          # then open http://127.0.0.1:8089/
  podnet ui --listen 127.0.0.1:9000
  podnet ui --kubeconfig ~/.kube/config`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, err := uiSources(cmd, cf, kubeconfig, port)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serveUI(ctx, cmd, listen, ui.Handler(src))
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8089", "address to serve the page on (port 0: any free port; printed)")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default: the local cluster's admin kubeconfig)")
	addMetricsPortFlag(cmd, &port)
	return cmd
}

// serveUI serves h on listen until ctx ends, after printing the URL.
func serveUI(ctx context.Context, cmd *cobra.Command, listen string, h http.Handler) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "podnet ui: serving http://%s/ (Ctrl-C to stop)\n", ln.Addr())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close() // also ends the flow streams, which never finish on their own
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// uiSources connects to the cluster (the local one, or kubeconfig's) and
// wires the API to the CLI's own functions: trace's explainAndProbe and
// probe --matrix's pod list.
func uiSources(cmd *cobra.Command, cf *clusterFlags, kubeconfig string, port int) (ui.Sources, error) {
	connect := cf.client
	if kubeconfig != "" {
		connect = func() (*localcluster.Config, kubernetes.Interface, error) {
			c, err := traceClient(cf, kubeconfig)
			return nil, c, err
		}
	}
	var local *localcluster.Config
	if kubeconfig == "" {
		local, _ = cf.load()
	}
	client, port, err := connectAgents(cmd, connect, port)
	if err != nil {
		return ui.Sources{}, err
	}
	src := ui.AgentSources(client, port)
	src.Trace = func(ctx context.Context, req trace.Request, withProbe bool) (ui.TraceResult, error) {
		run, err := explainAndProbe(ctx, client, local, traceOptions{probe: withProbe, probeTimeout: time.Second}, req)
		if err != nil {
			return ui.TraceResult{}, err
		}
		res := ui.TraceResult{Explanation: run.Explanation, Probe: run.Probe}
		for _, w := range run.warnings {
			res.Warnings = append(res.Warnings, w.Error())
		}
		return res, nil
	}
	env := localProbeEnv(cf)
	src.MatrixPods = func(ctx context.Context, namespaces []string, selector string) ([]probe.MatrixPod, error) {
		if local == nil {
			return nil, errors.New("the matrix needs a local cluster (podnet up), to enter its pods")
		}
		c := &cobra.Command{} // matrixPods reads its context
		c.SetContext(ctx)
		return env.matrixPods(c, namespaces, selector)
	}
	return src, nil
}
