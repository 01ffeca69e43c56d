// Package agentproxy reads the node agents' HTTP pages (GET /policy/status,
// /encryption, ...) through the API server's node proxy, as
// `kubectl get --raw /api/v1/nodes/NODE:PORT/proxy/PATH` does: the reader
// needs only its kubeconfig, and the agents write nothing to the API for
// it.
package agentproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Timeout bounds the wait for one node's answer: a node that is cut off
// would hold the API server's proxy request until its own dial timeout.
var Timeout = 3 * time.Second

// parallel is how many nodes are read at a time.
const parallel = 8

// Page is one page of the agents.
type Page struct {
	Path   string
	Params url.Values
	// Feature names what serves the page, for the error of an agent that
	// answers 404 ("<Feature> is off on this node, or its agent predates
	// it").
	Feature string
}

// GetAllJSON reads the page from every Node's agent on port and decodes
// each answer into a new T. It returns the answers of the nodes that
// answered, and for each node that did not, why.
func GetAllJSON[T any](ctx context.Context, client kubernetes.Interface, port int, page Page) (map[string]*T, map[string]string, error) {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("nodes: %w", err)
	}
	vals := make([]*T, len(nodes.Items))
	errs := make([]error, len(nodes.Items))
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for i, n := range nodes.Items {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			vals[i], errs[i] = getJSON[T](ctx, client, n.Name, port, page)
		})
	}
	wg.Wait()
	ok, failed := map[string]*T{}, map[string]string{}
	for i, n := range nodes.Items {
		if errs[i] != nil {
			failed[n.Name] = strings.TrimSpace(errs[i].Error())
			continue
		}
		ok[n.Name] = vals[i]
	}
	return ok, failed, nil
}

func getJSON[T any](ctx context.Context, client kubernetes.Interface, node string, port int, page Page) (*T, error) {
	path := page.Path
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req := client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", fmt.Sprintf("%s:%d", node, port), "proxy"+path)
	for k, vs := range page.Params {
		for _, v := range vs {
			req = req.Param(k, v)
		}
	}
	b, err := req.DoRaw(ctx)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%s: not served: %s is off on this node, or its agent predates it: %w", path, page.Feature, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}
