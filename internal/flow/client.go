package flow

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Query is what a client asks every node for.
type Query struct {
	Filter
	// Last keeps the newest Last records (0: all the filter keeps).
	Last int
	// Nodes limits the nodes asked (none: every node).
	Nodes []string
	// Port is the agents' metrics port (10249; 10264 for deploy/'s
	// DaemonSet).
	Port int
}

// NodeError is a node whose agent did not answer.
type NodeError struct {
	Node string
	Err  error
}

func (e NodeError) Error() string { return e.Node + ": " + strings.TrimSpace(e.Err.Error()) }

// nodeTimeout bounds the wait for one node's records: a node that is cut
// off would hold the API server's proxy request until its dial timeout.
var nodeTimeout = 5 * time.Second

// Read reads the records of every node (q.Nodes, else all) through the API
// server's node proxy (GET /api/v1/nodes/NODE:PORT/proxy/flows), merged by
// time; nodes that did not answer are returned with why.
func Read(ctx context.Context, client kubernetes.Interface, q Query) ([]Record, []NodeError, error) {
	nodes, err := queryNodes(ctx, client, q)
	if err != nil {
		return nil, nil, err
	}
	lists := make([][]Record, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			nctx, cancel := context.WithTimeout(ctx, nodeTimeout)
			defer cancel()
			body, err := request(client, n, q, false).Stream(nctx)
			if err != nil {
				errs[i] = err
				return
			}
			defer body.Close()
			errs[i] = decode(body, func(r Record) { lists[i] = append(lists[i], r) })
		})
	}
	wg.Wait()
	var bad []NodeError
	for i, err := range errs {
		if err != nil {
			bad = append(bad, NodeError{nodes[i], err})
		}
	}
	out := Merge(lists...)
	if q.Last > 0 && len(out) > q.Last {
		out = out[len(out)-q.Last:]
	}
	return out, bad, nil
}

// Follow streams the records of every node to out as they come, after each
// node's backlog (q.Last of them, or those since q.Since), until ctx ends.
// Records of different nodes arrive in the order they are read, which is
// the time order within a node. A node whose stream fails is reported on
// nodeErr and not retried.
func Follow(ctx context.Context, client kubernetes.Interface, q Query, out chan<- Record, nodeErr func(NodeError)) error {
	nodes, err := queryNodes(ctx, client, q)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			body, err := request(client, n, q, true).Stream(ctx)
			if err == nil {
				defer body.Close()
				err = decode(body, func(r Record) {
					select {
					case out <- r:
					case <-ctx.Done():
					}
				})
			}
			if err != nil && ctx.Err() == nil {
				nodeErr(NodeError{n, err})
			}
		})
	}
	wg.Wait()
	return nil
}

func queryNodes(ctx context.Context, client kubernetes.Interface, q Query) ([]string, error) {
	if len(q.Nodes) > 0 {
		return q.Nodes, nil
	}
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("nodes: %w", err)
	}
	var out []string
	for _, n := range list.Items {
		out = append(out, n.Name)
	}
	slices.Sort(out)
	return out, nil
}

func request(client kubernetes.Interface, node string, q Query, follow bool) *rest.Request {
	req := client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node+":"+strconv.Itoa(q.Port), "proxy/flows")
	for k, vs := range q.Filter.Values() {
		req = req.Param(k, vs[0])
	}
	if q.Last > 0 {
		req = req.Param(qLast, strconv.Itoa(q.Last))
	}
	if follow {
		req = req.Param(qFollow, "1")
	}
	return req
}

// decode reads JSON lines of records.
func decode(r io.Reader, add func(Record)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return fmt.Errorf("record: %w", err)
		}
		add(rec)
	}
	return sc.Err()
}
