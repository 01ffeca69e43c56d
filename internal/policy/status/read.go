package status

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/agentproxy"
)

// ReadViews reads every node agent's view (of namespace, or of every
// namespace when empty) through the API server's node proxy, on the
// agents' metrics port (package agentproxy). A node that does not answer is
// in unreachable with why.
func ReadViews(ctx context.Context, client kubernetes.Interface, port int, namespace string) ([]NodeView, map[string]string, error) {
	page := agentproxy.Page{Path: Path, Feature: "NetworkPolicy enforcement"}
	if namespace != "" {
		page.Params = url.Values{"namespace": {namespace}}
	}
	views, unreachable, err := agentproxy.GetAllJSON[NodeView](ctx, client, port, page)
	if err != nil {
		return nil, nil, err
	}
	out := make([]NodeView, 0, len(views))
	for node, v := range views {
		v.Node = node // the name the API server routes by
		out = append(out, *v)
	}
	slices.SortFunc(out, func(a, b NodeView) int { return strings.Compare(a.Node, b.Node) })
	return out, unreachable, nil
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
