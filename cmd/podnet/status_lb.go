package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/lb/announce"
	"github.com/podnet/podnet/internal/localcluster"
)

// newStatusLoadBalancersCommand shows which node announces each
// LoadBalancer IP, from every agent's own view.
// deployedMetricsPort is the metrics port of deploy/'s agents (10264, off
// kube-proxy's 10249 so that both can run).
const deployedMetricsPort = 10264

func newStatusLoadBalancersCommand(connect func() (*localcluster.Config, kubernetes.Interface, error)) *cobra.Command {
	var port int
	cmd := &cobra.Command{
		Use:   "loadbalancers",
		Short: "Show each LoadBalancer IP and the node that announces it",
		Long: `Show each LoadBalancer IP (from the Services' status) and which node
answers ARP/NDP for it, as each agent says itself: the command reads every
node agent's /lb/announcements (on its metrics port) through the API
server's node proxy, so it needs no annotation, no API write by the agents
and no route to the node network. NONE means no agent announces the IP
(no agent runs with --lb-announce, or no node is eligible: for
externalTrafficPolicy Local, no node has a ready endpoint); two nodes mean
a split brain that the agents settle within a second.`,
		Example: `  podnet status loadbalancers
  podnet status loadbalancers --cluster dev`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, port, err := connectAgents(cmd, connect, port)
			if err != nil {
				return err
			}
			views, unreachable, err := readLBViews(cmd.Context(), client, port)
			if err != nil {
				return err
			}
			svcs, err := client.CoreV1().Services("").List(cmd.Context(), metav1.ListOptions{})
			if err != nil {
				return fmt.Errorf("services: %w", err)
			}
			return printLBRows(cmd.OutOrStdout(), lbRows(svcs.Items, views), unreachable)
		},
	}
	addMetricsPortFlag(cmd, &port)
	return cmd
}

// lbViewTimeout bounds the wait for one node's view.
var lbViewTimeout = 3 * time.Second

// readLBViews reads every node agent's view; a node that does not answer
// is listed in unreachable with why.
func readLBViews(ctx context.Context, client kubernetes.Interface, port int) ([]announce.NodeView, []string, error) {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("nodes: %w", err)
	}
	var views []announce.NodeView
	var unreachable []string
	for _, n := range nodes.Items {
		// A node that is cut off would hold the API server's proxy
		// request until its own dial timeout: ask each node briefly.
		nctx, cancel := context.WithTimeout(ctx, lbViewTimeout)
		b, err := client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", fmt.Sprintf("%s:%d", n.Name, port), "proxy/lb/announcements").DoRaw(nctx)
		cancel()
		var v announce.NodeView
		if err == nil {
			err = json.Unmarshal(b, &v)
		}
		if err != nil {
			unreachable = append(unreachable, fmt.Sprintf("%s: %v", n.Name, strings.TrimSpace(err.Error())))
			continue
		}
		views = append(views, v)
	}
	return views, unreachable, nil
}

// lbRow is one LoadBalancer IP of one Service and who announces it.
type lbRow struct {
	VIP, Service string
	By           []string
}

// lbRows joins the Services' LoadBalancer IPs with the agents' views.
func lbRows(svcs []v1.Service, views []announce.NodeView) []lbRow {
	by := map[netip.Addr][]string{}
	for _, v := range views {
		for _, a := range v.Announced {
			by[a.VIP] = append(by[a.VIP], v.Node)
		}
	}
	var rows []lbRow
	for _, s := range svcs {
		if s.Spec.Type != v1.ServiceTypeLoadBalancer {
			continue
		}
		for _, ing := range s.Status.LoadBalancer.Ingress {
			ip, err := netip.ParseAddr(ing.IP)
			if err != nil {
				continue
			}
			nodes := slices.Sorted(slices.Values(by[ip.Unmap()]))
			rows = append(rows, lbRow{VIP: ip.String(), Service: s.Namespace + "/" + s.Name, By: nodes})
		}
	}
	slices.SortFunc(rows, func(a, b lbRow) int {
		return netip.MustParseAddr(a.VIP).Compare(netip.MustParseAddr(b.VIP))
	})
	return rows
}

func printLBRows(w io.Writer, rows []lbRow, unreachable []string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "VIP\tSERVICE\tANNOUNCED BY")
	for _, r := range rows {
		by := strings.Join(r.By, ",")
		switch len(r.By) {
		case 0:
			by = "NONE"
		case 1:
		default:
			by += " (SPLIT BRAIN)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.VIP, r.Service, by)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, u := range unreachable {
		fmt.Fprintf(w, "no view from node %s\n", u)
	}
	return nil
}
