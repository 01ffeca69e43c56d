package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/flow"
	"github.com/podnet/podnet/internal/localcluster"
)

// flowsOptions are the flags of podnet flows.
type flowsOptions struct {
	q         flow.Query
	since     string
	follow    bool
	output    string
	aggregate bool
	window    time.Duration
}

func newFlowsCommand(cf *clusterFlags) *cobra.Command {
	return newFlowsCommandWith(cf.client)
}

func newFlowsCommandWith(connect func() (*localcluster.Config, kubernetes.Interface, error)) *cobra.Command {
	o := &flowsOptions{}
	cmd := &cobra.Command{
		Use:   "flows",
		Short: "Show flow records: connections and drops with their Service and NetworkPolicy",
		Long: `Show the flow records of every node: a record for each new connection a node
forwards or delivers to or from its pods (with the Service it was addressed to
and the endpoint it went to, and the NetworkPolicy rules that allowed it), one
when conntrack forgets it (with byte and packet counts where conntrack
accounting is on), and one for each packet dropped by NetworkPolicy (with
the isolating policies: a default deny) or rejected because its Service has
no endpoints. Each agent keeps its node's latest 4096 records; the command
reads them through the API server's node proxy, merges them by time and
prints a table, JSON lines (-o json, the stable schema of docs/flows.md), or
counts per (source workload, destination workload, port, verdict, policy)
over time windows (--aggregate).

Without --since or --follow it shows the last 20 records.`,
		Example: `  podnet flows --verdict dropped
  podnet flows -n shop --to-service web --since 5m
  podnet flows --follow --from-pod client -n test -o json
  podnet flows --aggregate --window 1m --since 10m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, port, err := connectAgents(cmd, connect, o.q.Port)
			if err != nil {
				return err
			}
			o.q.Port = port
			if err := o.complete(cmd.Flags().Changed("last")); err != nil {
				return err
			}
			return runFlows(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), client, o)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.follow, "follow", "f", false, "keep printing new records")
	f.IntVar(&o.q.Last, "last", 20, "show the newest N records (0: all)")
	f.StringVar(&o.since, "since", "", "show records since a duration ago (5m) or an RFC 3339 time")
	f.StringVarP(&o.q.Namespace, "namespace", "n", "", "records with either end (or the Service) in this namespace; the namespace of bare pod and Service names")
	f.StringVar(&o.q.Pod, "pod", "", "records from or to this pod (NAME or NAMESPACE/NAME)")
	f.StringVar(&o.q.FromPod, "from-pod", "", "records from this pod")
	f.StringVar(&o.q.ToPod, "to-pod", "", "records to this pod")
	f.StringVar(&o.q.ToService, "to-service", "", "records addressed to this Service")
	f.StringVar(&o.q.Verdict, "verdict", "", "forwarded or dropped")
	f.StringSliceVar(&o.q.Nodes, "node", nil, "read only these nodes (default: all)")
	f.StringVarP(&o.output, "output", "o", "table", "table or json (JSON lines)")
	f.BoolVar(&o.aggregate, "aggregate", false, "print counts per (source workload, destination workload, port, verdict, policy) and window")
	f.DurationVar(&o.window, "window", time.Minute, "the window of --aggregate (0: one window)")
	addMetricsPortFlag(cmd, &o.q.Port)
	return cmd
}

// complete checks the flags and derives the query.
func (o *flowsOptions) complete(lastSet bool) error {
	if o.output != "table" && o.output != "json" {
		return fmt.Errorf("--output %q: want table or json", o.output)
	}
	if o.aggregate && o.follow {
		return fmt.Errorf("--aggregate counts what is held; it does not --follow")
	}
	if o.since != "" {
		t, err := flow.ParseSince(o.since, time.Now())
		if err != nil {
			return err
		}
		o.q.Since = t
		if !lastSet {
			o.q.Last = 0
		}
	}
	if o.aggregate && !lastSet {
		o.q.Last = 0
	}
	return o.q.Validate()
}

func runFlows(ctx context.Context, stdout, stderr io.Writer, client kubernetes.Interface, o *flowsOptions) error {
	if o.follow {
		return followFlows(ctx, stdout, stderr, client, o)
	}
	recs, bad, err := flow.Read(ctx, client, o.q)
	if err != nil {
		return err
	}
	for _, b := range bad {
		fmt.Fprintf(stderr, "no records from node %s\n", b)
	}
	if o.aggregate {
		return printAggregates(stdout, flow.AggregateRecords(recs, o.window), o.output)
	}
	p := newRecordPrinter(stdout, o.output, false)
	for _, r := range recs {
		p.print(r)
	}
	return p.flush()
}

func followFlows(ctx context.Context, stdout, stderr io.Writer, client kubernetes.Interface, o *flowsOptions) error {
	ch := make(chan flow.Record, 256)
	done := make(chan error, 1)
	go func() {
		done <- flow.Follow(ctx, client, o.q, ch, func(e flow.NodeError) { fmt.Fprintf(stderr, "no records from node %s\n", e) })
		close(ch)
	}()
	p := newRecordPrinter(stdout, o.output, true)
	for r := range ch {
		p.print(r)
		if err := p.flush(); err != nil {
			return err
		}
	}
	return <-done
}

// recordPrinter prints records as a table or JSON lines. A table is
// aligned over all its rows, or, when it streams (--follow), over fixed
// column widths.
type recordPrinter struct {
	json   *json.Encoder
	tw     *tabwriter.Writer
	w      io.Writer
	stream bool
}

var recordColumns = []string{"TIME", "NODE", "VERDICT", "DIRECTION", "SOURCE", "DESTINATION", "SERVICE", "PROTO", "POLICY"}

// streamWidths are the column widths of a streamed table (longer values
// push the row on).
var streamWidths = []int{12, 16, 23, 9, 30, 30, 24, 5, 0}

func newRecordPrinter(w io.Writer, output string, stream bool) *recordPrinter {
	if output == "json" {
		return &recordPrinter{json: json.NewEncoder(w)}
	}
	p := &recordPrinter{w: w, stream: stream}
	if !stream {
		p.tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	}
	p.row(recordColumns)
	return p
}

func (p *recordPrinter) print(r flow.Record) {
	if p.json != nil {
		_ = p.json.Encode(r)
		return
	}
	p.row(recordRow(r))
}

// row writes one line of the table.
func (p *recordPrinter) row(cells []string) {
	if !p.stream {
		fmt.Fprintln(p.tw, strings.Join(cells, "\t"))
		return
	}
	var b strings.Builder
	for i, c := range cells {
		if i == len(cells)-1 {
			b.WriteString(c)
			break
		}
		fmt.Fprintf(&b, "%-*s  ", streamWidths[i], c)
	}
	fmt.Fprintln(p.w, b.String())
}

// recordRow is a record's cells in recordColumns' order.
func recordRow(r flow.Record) []string {
	verdict := r.Verdict
	if r.Event == flow.EventEnd {
		verdict = "ended"
		if c := r.Counters; c != nil {
			verdict += fmt.Sprintf(" (%d/%d B)", c.BytesOut, c.BytesIn)
		}
	}
	if r.Reason != "" {
		verdict += " (" + r.Reason + ")"
	}
	svc := "-"
	if s := r.Service; s != nil {
		svc = s.Namespace + "/" + s.Name + ":" + strconv.Itoa(int(s.Port))
	}
	return []string{r.Time.Local().Format("15:04:05.000"), r.Node, verdict, orDash(r.Direction),
		endpointText(r.Source), endpointText(r.Destination), svc, r.Protocol, orDash(r.PolicyText())}
}

func (p *recordPrinter) flush() error {
	if p.tw != nil {
		return p.tw.Flush()
	}
	return nil
}

func endpointText(e flow.Endpoint) string {
	s := e.IP.String()
	if e.Pod != "" {
		s = e.Namespace + "/" + e.Pod
	}
	if e.Port != 0 {
		s += ":" + strconv.Itoa(int(e.Port))
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printAggregates(w io.Writer, aggs []flow.Aggregate, output string) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		for _, a := range aggs {
			if err := enc.Encode(a); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "WINDOW\tSOURCE\tDESTINATION\tPORT\tVERDICT\tPOLICY\tRECORDS\tCONNECTIONS\tDROPS\tBYTES")
	for _, a := range aggs {
		start := "-"
		if !a.Start.IsZero() {
			start = a.Start.Local().Format("15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%d\t%s\t%s\t%d\t%d\t%d\t%d\n", start, a.Source, a.Destination, a.Protocol, a.Port,
			a.Verdict, orDash(a.Policy), a.Records, a.Connections, a.Drops, a.Bytes)
	}
	return tw.Flush()
}
