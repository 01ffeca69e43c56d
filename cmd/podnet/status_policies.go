package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/policy/status"
)

// newStatusPoliciesCommand shows, for each NetworkPolicy, the nodes that
// enforce its current version, since when, and the nodes that do not.
func newStatusPoliciesCommand(connect func() (*localcluster.Config, kubernetes.Interface, error)) *cobra.Command {
	var (
		port      int
		namespace string
		output    string
	)
	cmd := &cobra.Command{
		Use:   "policies [-n NAMESPACE] [-o table|wide|json]",
		Short: "Show on which nodes each NetworkPolicy is in force, and since when",
		Long: `Show, for each NetworkPolicy, the nodes that enforce its current generation
(IN FORCE), since when it is in force on all of them (SINCE: the latest
node's commit of its rules to the kernel), and every node that does not:

  Lagging  the node enforces an older generation, or none, and reports no
           error: its sync has not caught up yet;
  Failed   the node cannot use this generation (the compiler's error; its
           last good generation stays in force, as the PolicyNotApplied
           Event on the policy says), or its last sync failed (the previous
           rules stay);
  Partial  the node enforces this generation, but the parts it cannot parse
           match nothing (there was no good generation to keep);
  Unknown  the node's agent did not answer.

Each agent says itself what it enforces: the command reads every agent's
/policy/status (on its metrics port) through the API server's node proxy,
as kubectl get --raw /api/v1/nodes/NODE:10249/proxy/policy/status does; the
agents write nothing to the API for it. -o wide prints one line per policy
and node; -o json the same as a list of {namespace, name, current {uid,
resourceVersion, generation}, nodes [{node, state, inForce, since, error}]}.
The command exits 0 whatever the states: read them.`,
		Example: `  podnet status policies
  podnet status policies -n prod -o wide
  podnet status policies -o json | jq -r '.[] | select(any(.nodes[]; .state != "InForce")) | .name'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, port, err := connectAgents(cmd, connect, port)
			if err != nil {
				return err
			}
			rows, err := status.Read(cmd.Context(), client, port, namespace)
			if err != nil {
				return err
			}
			return printPolicyStatus(cmd.OutOrStdout(), rows, output, time.Now())
		},
	}
	addMetricsPortFlag(cmd, &port)
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "only the policies of this namespace (default: every namespace)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, wide (one line per policy and node) or json")
	return cmd
}

// addMetricsPortFlag adds --metrics-port, the agents' port that a command
// reads through the API server's node proxy.
func addMetricsPortFlag(cmd *cobra.Command, port *int) {
	cmd.Flags().IntVar(port, "metrics-port", 10249, "the agents' metrics port (their --metrics-addr; 10264 for deploy/'s DaemonSet, the default on a containerd local cluster)")
}

// connectAgents connects to the cluster and returns the agents' metrics
// port: port, or deploy/'s on a containerd local cluster unless
// --metrics-port was given.
func connectAgents(cmd *cobra.Command, connect func() (*localcluster.Config, kubernetes.Interface, error), port int) (kubernetes.Interface, int, error) {
	cfg, client, err := connect()
	if err != nil {
		return nil, 0, err
	}
	if !cmd.Flags().Changed("metrics-port") && cfg != nil && cfg.Containerd() {
		port = deployedMetricsPort // the DaemonSet's agents, deploy/base/agent.yaml
	}
	return client, port, nil
}

// printPolicyStatus prints rows as output says; ages are relative to now.
func printPolicyStatus(w io.Writer, rows []status.PolicyStatus, output string, now time.Time) error {
	switch output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if rows == nil {
			rows = []status.PolicyStatus{}
		}
		return enc.Encode(rows)
	case "wide":
		return printPolicyNodes(w, rows, now)
	case "table", "":
		return printPolicyTable(w, rows, now)
	}
	return fmt.Errorf("unknown output %q: want table, wide or json", output)
}

// printPolicyTable prints one line per policy.
func printPolicyTable(w io.Writer, rows []status.PolicyStatus, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tGENERATION\tIN FORCE\tSINCE\tNOT IN FORCE")
	for _, r := range rows {
		var not []string
		for _, n := range r.Nodes {
			if n.State != status.InForce {
				not = append(not, n.Node+" "+string(n.State))
			}
		}
		notIn := strings.Join(not, ", ")
		if notIn == "" {
			notIn = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d/%d\t%s\t%s\n", r.Namespace, r.Name, r.Current.Generation, r.InForceOn(), len(r.Nodes),
			age(r.Since(), now), notIn)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rows {
		for _, n := range r.Nodes {
			if n.Error != "" {
				fmt.Fprintf(w, "%s/%s on %s: %s: %s\n", r.Namespace, r.Name, n.Node, n.State, n.Error)
			}
		}
	}
	return nil
}

// printPolicyNodes prints one line per policy and node.
func printPolicyNodes(w io.Writer, rows []status.PolicyStatus, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tGENERATION\tNODE\tSTATE\tENFORCED\tSINCE\tERROR")
	for _, r := range rows {
		for _, n := range r.Nodes {
			enforced := "-"
			if n.InForce != nil {
				enforced = fmt.Sprint(n.InForce.Generation)
			}
			errText := n.Error
			if errText == "" {
				errText = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Namespace, r.Name, r.Current.Generation, n.Node, n.State,
				enforced, age(n.Since, now), errText)
		}
	}
	return tw.Flush()
}

// age is how long ago t was, as kubectl prints ages ("-" for zero).
func age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return duration.HumanDuration(now.Sub(t))
}
