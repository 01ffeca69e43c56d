package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/podnet/podnet/internal/localcluster"
)

func newStatusCommand(cf *clusterFlags) *cobra.Command {
	cmd := newStatusCommandWith(cf.client, localcluster.ReadStatus)
	lbs := newStatusLoadBalancersCommand(cf.client)
	cf.register(lbs, false)
	cmd.AddCommand(lbs)
	pols := newStatusPoliciesCommand(cf.client)
	cf.register(pols, false)
	cmd.AddCommand(pols)
	enc := newStatusEncryptionCommand(cf.client)
	cf.register(enc, false)
	cmd.AddCommand(enc)
	return cmd
}

// statusReader reads a cluster's status (localcluster.ReadStatus).
type statusReader func(context.Context, *localcluster.Config, kubernetes.Interface) (*localcluster.Status, error)

// newStatusCommandWith builds the command on a function that loads the
// cluster and makes its client, and one that reads the status (the tests'
// seams).
func newStatusCommandWith(connect func() (*localcluster.Config, kubernetes.Interface, error), read statusReader) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status [-o json|yaml]",
		Short: "Show the local cluster's processes, addresses, nodes and guard",
		Long: `Show the local cluster's address plan, every process it started (with its
pid and whether it is alive), its nodes as the API server has them (Ready
or not, with their pod CIDRs) and its guard: the nftables table that drops
what the cluster's root-namespace processes send outside the cluster, with
how many processes it confines and how many packets it dropped (anything
but 0 is a bug: dmesg | grep podnet-guard- names the destination). When the
API server does not answer, the rest is still shown (a dead process tells
why) and the command fails.

-o json and -o yaml print the same as a document whose fields are stable:
name, apiServer, stateDir, kubeconfig, serviceProxy (podnet,
kube-proxy-nftables or kube-proxy-iptables), addresses {podCIDR, serviceCIDR,
nodeNetwork, worldNetwork, lbPool, clusterDNS}, processes [{name, pid,
state: running|dead}], nodes [{name, ready, internalIP, podCIDRs, zone}],
zones (the last two only in a cluster started with --zones),
guard {table, installed, group, classID, processes, droppedPackets,
droppedBytes, error}.`,
		Example: `  podnet status
  podnet status --cluster dev
  podnet status -o json | jq -r '.nodes[] | select(.ready | not) | .name'
  podnet status -o json | jq .guard.droppedPackets`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			printStatus, err := statusPrinter(output)
			if err != nil {
				return err
			}
			cfg, client, err := connect()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			st, err := read(ctx, cfg, client)
			if perr := printStatus(cmd.OutOrStdout(), st); perr != nil {
				return perr
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default: text)")
	return cmd
}

// statusPrinter returns the printer of an -o format.
func statusPrinter(format string) (func(io.Writer, *localcluster.Status) error, error) {
	switch format {
	case "":
		return printStatusText, nil
	case "json":
		return func(w io.Writer, st *localcluster.Status) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}, nil
	case "yaml":
		return func(w io.Writer, st *localcluster.Status) error {
			b, err := yaml.Marshal(st)
			if err != nil {
				return fmt.Errorf("status as yaml: %w", err)
			}
			_, err = w.Write(b)
			return err
		}, nil
	}
	return nil, fmt.Errorf("-o %q: want json or yaml (or nothing for text)", format)
}

func printStatusText(w io.Writer, st *localcluster.Status) error {
	a := st.Addresses
	fmt.Fprintf(w, "cluster %s: API %s, pods %s, services %s, nodes on %s\n", st.Name, st.APIServer, a.PodCIDR, a.ServiceCIDR, a.NodeNetwork)
	if st.NodeRuntime == localcluster.NodeRuntimeContainerd {
		fmt.Fprintf(w, "  nodes: a kubelet and containerd each; podnet installed from deploy/ (DaemonSet podnet-system/podnet-agent, table podnet-proxy)\n")
	} else {
		fmt.Fprintf(w, "  service proxy: %s\n", localcluster.DescribeServiceProxy(st.ServiceProxy))
	}
	if len(st.Zones) > 0 {
		fmt.Fprintf(w, "  zones: %s (one node network for all; topology.kubernetes.io/region=%s)\n", strings.Join(st.Zones, ", "), localcluster.Region)
	}
	for _, p := range st.Processes {
		state := p.State
		if state == localcluster.StateDead {
			state = "DEAD"
		}
		fmt.Fprintf(w, "  %-34s pid %-8d %s\n", p.Name, p.PID, state)
	}
	for _, n := range st.Nodes {
		ready := "NotReady"
		if n.Ready {
			ready = "Ready"
		}
		cidrs := strings.Join(n.PodCIDRs, ",")
		if cidrs == "" {
			cidrs = "none"
		}
		zone := ""
		if n.Zone != "" {
			zone = "zone " + n.Zone + " "
		}
		fmt.Fprintf(w, "  node %-20s %-8s %spodCIDR %s\n", n.Name, ready, zone, cidrs)
	}
	fmt.Fprintf(w, "  guard %s\n", guardText(st.Guard))
	return nil
}

// guardText is the guard's line of the text status.
func guardText(g localcluster.GuardStatus) string {
	switch {
	case g.Error != "":
		return fmt.Sprintf("%s: UNKNOWN: %s", g.Table, g.Error)
	case !g.Installed:
		return fmt.Sprintf("%s: NOT INSTALLED", g.Table)
	}
	return fmt.Sprintf("%s: %d processes confined, %d packets dropped", g.Table, g.Processes, g.DroppedPackets)
}

func newClustersCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "clusters",
		Short: "List the local clusters on this machine",
		Long: `List the local clusters whose state is on this machine, under
` + stateRoot + `/<cluster> (a cluster made with --state-dir elsewhere is not
found): name, nodes, state and API server. A cluster is running when all
its processes are alive, degraded when some are, stopped when none is (after
a crash or a reboot; podnet down --cluster NAME cleans it up).`,
		Example: `  podnet clusters
  podnet clusters | awk 'NR > 1 && $3 == "stopped" {print $1}'   # left by a crash or a reboot`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := localcluster.List(stateRoot)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "podnet: warning: %v\n", err)
			}
			if len(list) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "no local clusters under %s\n", stateRoot)
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tNODES\tSTATE\tAPI SERVER\tSTATE DIR")
			for _, c := range list {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", c.Name, c.Nodes, c.State, c.APIServer, c.StateDir)
			}
			return tw.Flush()
		},
	}
}
