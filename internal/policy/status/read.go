package status

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ReadTimeout bounds the wait for one node's view: a node that is cut off
// would hold the API server's proxy request until its own dial timeout.
var ReadTimeout = 3 * time.Second

// ReadViews reads every node agent's view (of namespace, or of every
// namespace when empty) through the API server's node proxy, on the
// agents' metrics port, a few nodes at a time. A node that does not
// answer is in unreachable with why.
func ReadViews(ctx context.Context, client kubernetes.Interface, port int, namespace string) ([]NodeView, map[string]string, error) {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("nodes: %w", err)
	}
	views := make([]NodeView, len(nodes.Items))
	errs := make([]error, len(nodes.Items))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, n := range nodes.Items {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			views[i], errs[i] = readView(ctx, client, n.Name, port, namespace)
		})
	}
	wg.Wait()
	var out []NodeView
	unreachable := map[string]string{}
	for i, n := range nodes.Items {
		if errs[i] != nil {
			unreachable[n.Name] = strings.TrimSpace(errs[i].Error())
			continue
		}
		out = append(out, views[i])
	}
	return out, unreachable, nil
}

// readView reads one node's view.
func readView(ctx context.Context, client kubernetes.Interface, node string, port int, namespace string) (NodeView, error) {
	ctx, cancel := context.WithTimeout(ctx, ReadTimeout)
	defer cancel()
	req := client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", fmt.Sprintf("%s:%d", node, port), "proxy"+Path)
	if namespace != "" {
		req = req.Param("namespace", namespace)
	}
	b, err := req.DoRaw(ctx)
	if apierrors.IsNotFound(err) {
		return NodeView{}, fmt.Errorf("%s: not served: NetworkPolicy enforcement is off on this node, or its agent predates it: %w", Path, err)
	}
	if err != nil {
		return NodeView{}, fmt.Errorf("%s: %w", Path, err)
	}
	var v NodeView
	if err := json.Unmarshal(b, &v); err != nil {
		return NodeView{}, fmt.Errorf("%s: %w", Path, err)
	}
	v.Node = node // the name the API server routes by
	return v, nil
}

// Read lists the NetworkPolicies of namespace (every namespace when
// empty), reads every agent's view and joins them: the whole of `podnet
// status policies`, for any client.
func Read(ctx context.Context, client kubernetes.Interface, port int, namespace string) ([]PolicyStatus, error) {
	nps, err := client.NetworkingV1().NetworkPolicies(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("networkpolicies: %w", err)
	}
	views, unreachable, err := ReadViews(ctx, client, port, namespace)
	if err != nil {
		return nil, err
	}
	return Aggregate(nps.Items, views, unreachable), nil
}
