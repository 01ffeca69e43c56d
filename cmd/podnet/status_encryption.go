package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/agentproxy"
	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/wireguard"
)

// nodeEncryption is one node's row of `podnet status encryption -o json`:
// its agent's Status, or why it did not answer.
type nodeEncryption struct {
	Node   string            `json:"node"`
	Status *wireguard.Status `json:"status,omitempty"`
	Error  string            `json:"error,omitempty"`
}

// newStatusEncryptionCommand shows each node's WireGuard key age and the
// state of each of its peers.
func newStatusEncryptionCommand(connect func() (*localcluster.Config, kubernetes.Interface, error)) *cobra.Command {
	var (
		port   int
		output string
	)
	cmd := &cobra.Command{
		Use:   "encryption [-o table|json]",
		Short: "Show each node's WireGuard key age and the state of each peer (last handshake, bytes)",
		Long: `Show, for each node, how its agent encrypts: the device (kernel or user
space), its public key and the key's age, strict mode and the packets it
dropped; and for each peer, its endpoint, the last handshake and the bytes
received and sent through the tunnel. Nodes a node skips (a malformed key
annotation) or waits for (no key published yet) are listed under it.

Each agent answers for itself: the command reads every agent's /encryption
(on its metrics port) through the API server's node proxy, as kubectl get
--raw /api/v1/nodes/NODE:10249/proxy/encryption does. A peer whose last
handshake is older than about 3 minutes carries no traffic (WireGuard
handshakes every 2 minutes while there is any, and the agents keep every
tunnel alive every 25 s). -o json prints [{node, status, error}].`,
		Example: `  podnet status encryption
  podnet status encryption -o json | jq '.[].status.peers[] | select(.lastHandshake == "0001-01-01T00:00:00Z")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, port, err := connectAgents(cmd, connect, port)
			if err != nil {
				return err
			}
			rows, err := readEncryption(cmd.Context(), client, port)
			if err != nil {
				return err
			}
			return printEncryption(cmd.OutOrStdout(), rows, output, time.Now())
		},
	}
	addMetricsPortFlag(cmd, &port)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func readEncryption(ctx context.Context, client kubernetes.Interface, port int) ([]nodeEncryption, error) {
	got, failed, err := agentproxy.GetAllJSON[wireguard.Status](ctx, client, port,
		agentproxy.Page{Path: wireguard.StatusPath, Feature: "encryption"})
	if err != nil {
		return nil, err
	}
	var rows []nodeEncryption
	for n, st := range got {
		rows = append(rows, nodeEncryption{Node: n, Status: st})
	}
	for n, why := range failed {
		rows = append(rows, nodeEncryption{Node: n, Error: why})
	}
	slices.SortFunc(rows, func(a, b nodeEncryption) int { return strings.Compare(a.Node, b.Node) })
	return rows, nil
}

// printEncryption prints rows as output says; ages are relative to now.
func printEncryption(w io.Writer, rows []nodeEncryption, output string, now time.Time) error {
	switch output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if rows == nil {
			rows = []nodeEncryption{}
		}
		return enc.Encode(rows)
	case "table", "":
	default:
		return fmt.Errorf("unknown output %q: want table or json", output)
	}
	age := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return duration.HumanDuration(now.Sub(t))
	}
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return age(t) + " ago"
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tDEVICE\tPUBLIC KEY\tKEY AGE\tSTRICT\tSTRICT DROPS\tPEERS")
	for _, r := range rows {
		st := r.Status
		if st == nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t%s\n", r.Node, r.Error)
			continue
		}
		strict, drops := "off", "-"
		if st.Strict {
			strict, drops = "on", fmt.Sprint(st.StrictDrops)
		}
		shaken := 0
		for _, p := range st.Peers {
			if !p.LastHandshake.IsZero() {
				shaken++
			}
		}
		peers := fmt.Sprintf("%d (%d with a handshake)", len(st.Peers), shaken)
		if len(st.Pending) > 0 {
			peers += fmt.Sprintf(", waiting for %s", strings.Join(st.Pending, " "))
		}
		dev := fmt.Sprintf("%s (%s)", st.Device, st.Implementation)
		if st.Handle != st.Device {
			dev = fmt.Sprintf("%s (%s, wg show %s)", st.Device, st.Implementation, st.Handle)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Node, dev, st.PublicKey, age(st.KeyCreated), strict, drops, peers)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPEER\tENDPOINT\tLAST HANDSHAKE\tRECEIVED\tSENT")
	for _, r := range rows {
		if r.Status == nil {
			continue
		}
		for _, p := range r.Status.Peers {
			name := p.Node
			if name == "" {
				name = p.PublicKey // configured, but no Node has this key (any more)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Node, name, p.Endpoint, ago(p.LastHandshake),
				bytesIEC(p.ReceiveBytes), bytesIEC(p.TransmitBytes))
		}
		for _, n := range slices.Sorted(mapsKeys(r.Status.Invalid)) {
			fmt.Fprintf(tw, "%s\t%s\t-\tskipped: %s\t-\t-\n", r.Node, n, r.Status.Invalid[n])
		}
	}
	return tw.Flush()
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// bytesIEC prints a byte count in B, KiB, MiB or GiB.
func bytesIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 2; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMG"[exp])
}

// newRotateKeysCommand asks nodes for a new WireGuard key.
func newRotateKeysCommand(cf *clusterFlags) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "rotate-keys (NODE... | --all)",
		Short: "Make the named nodes (or all) replace their WireGuard key",
		Long: `Ask nodes for a new WireGuard key: the command sets the Node annotation
` + wireguard.AnnotationRotate + ` to the current time, and each named node's
agent replaces a key made before it, publishes the new public key, and its
peers take it up at their next sync. Established connections survive
(packets between that node and its peers are dropped for about one sync
interval and retransmitted). On any cluster the same is:

  kubectl annotate node NODE ` + wireguard.AnnotationRotate + `=$(date -u +%FT%TZ) --overwrite`,
		Example: `  podnet rotate-keys podnet-node-1
  podnet rotate-keys --all`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return fmt.Errorf("name the nodes, or --all")
			}
			_, client, err := cf.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if all {
				nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
				if err != nil {
					return err
				}
				for _, n := range nodes.Items {
					args = append(args, n.Name)
				}
			}
			now := time.Now().UTC().Format(time.RFC3339)
			patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{wireguard.AnnotationRotate: now}}})
			for _, n := range args {
				if _, err := client.CoreV1().Nodes().Patch(ctx, n, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
					return fmt.Errorf("node %s: %w", n, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "node %s: new key requested (%s=%s)\n", n, wireguard.AnnotationRotate, now)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every node")
	return cmd
}
