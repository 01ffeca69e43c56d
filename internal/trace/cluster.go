package trace

import (
	"context"
	"fmt"
	"net/netip"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/dns"
	"github.com/podnet/podnet/internal/policy"
	"github.com/podnet/podnet/internal/routing"
)

// ReadCluster reads what a trace needs from the API server, one list of
// each kind (Pods, Namespaces, NetworkPolicies, Services, EndpointSlices,
// Nodes), compiles the policies and builds the DNS records of domain
// (e.g. "cluster.local"). mode is the agents' routing mode.
func ReadCluster(ctx context.Context, client kubernetes.Interface, domain, mode string) (*Cluster, error) {
	podList, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	c := &Cluster{Pods: podList.Items, Domain: domain, RoutingMode: mode}
	if c.Policy, c.PolicyErrors, err = compileFromAPI(ctx, client, podList.Items); err != nil {
		return nil, err
	}
	svcList, err := client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	sliceList, err := client.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list endpointslices: %w", err)
	}
	nodeList, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	for i := range svcList.Items {
		c.Services = append(c.Services, &svcList.Items[i])
	}
	for i := range sliceList.Items {
		c.Slices = append(c.Slices, &sliceList.Items[i])
	}
	for i := range nodeList.Items {
		c.Nodes = append(c.Nodes, &nodeList.Items[i])
	}
	pods := make([]*v1.Pod, len(c.Pods))
	for i := range c.Pods {
		pods[i] = &c.Pods[i]
	}
	c.Zone = dns.NewZone(dns.Config{Zone: domain, TTL: 5})
	c.Zone.Store(dns.Build(c.Services, c.Slices, pods, dns.ClusterRanges(nil, c.Nodes)))
	return c, nil
}

// FromAPI reads the cluster (ReadCluster, for cluster.local and direct
// routing) and explains one connection.
func FromAPI(ctx context.Context, client kubernetes.Interface, req Request) (*Explanation, []policy.Error, error) {
	c, err := ReadCluster(ctx, client, "cluster.local", routing.ModeDirect)
	if err != nil {
		return nil, nil, err
	}
	e, err := c.Explain(req)
	return e, c.PolicyErrors, err
}

// compileFromAPI lists Namespaces and NetworkPolicies and compiles them
// with pods.
func compileFromAPI(ctx context.Context, client kubernetes.Interface, podItems []v1.Pod) (*policy.Compiled, []policy.Error, error) {
	nsList, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list namespaces: %w", err)
	}
	npList, err := client.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list networkpolicies: %w", err)
	}
	var pods []*policy.Pod
	for i := range podItems {
		if p := policy.PodFrom(&podItems[i]); p != nil {
			pods = append(pods, p)
		}
	}
	var namespaces []*policy.Namespace
	for i := range nsList.Items {
		namespaces = append(namespaces, policy.NamespaceFrom(&nsList.Items[i]))
	}
	var nps []*networkingv1.NetworkPolicy
	for i := range npList.Items {
		nps = append(nps, &npList.Items[i])
	}
	compiled, errs := policy.Compile(nps, pods, namespaces)
	return compiled, errs, nil
}

// findPod finds a pod by name among the compiled pods, explaining why
// when it is not there (ErrNotFound when it does not exist).
func (c *Cluster) findPod(ref PodName) (*policy.Pod, error) {
	if p := c.Policy.Pods[ref.String()]; p != nil {
		return p, nil
	}
	for i := range c.Pods {
		if c.Pods[i].Namespace == ref.Namespace && c.Pods[i].Name == ref.Name {
			return nil, fmt.Errorf("pod %s has no address (phase %s): it does not take part in the network", ref, c.Pods[i].Status.Phase)
		}
	}
	return nil, fmt.Errorf("pod %s %w", ref, ErrNotFound)
}

// serviceIP is the cluster IP of the Service t names.
func (c *Cluster) serviceIP(t Target) (netip.Addr, error) {
	o := t.Object
	for _, s := range c.Services {
		if s.Namespace != o.Namespace || s.Name != o.Name {
			continue
		}
		switch {
		case s.Spec.Type == v1.ServiceTypeExternalName:
			return netip.Addr{}, fmt.Errorf("service %s is an ExternalName (%s): trace its DNS name, %s.%s", o.Key(), s.Spec.ExternalName, o.Name, o.Namespace)
		case s.Spec.ClusterIP == "" || s.Spec.ClusterIP == v1.ClusterIPNone:
			return netip.Addr{}, fmt.Errorf("service %s is headless (no cluster IP): trace its DNS name, %s.%s, or one of its pods", o.Key(), o.Name, o.Namespace)
		}
		a, err := netip.ParseAddr(s.Spec.ClusterIP)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("service %s: bad clusterIP: %w", o.Key(), err)
		}
		return a.Unmap(), nil
	}
	return netip.Addr{}, fmt.Errorf("service %s %w", o.Key(), ErrNotFound)
}

// serviceWithIP is the proxied Service whose cluster IP is a (nil when
// none).
func (c *Cluster) serviceWithIP(a netip.Addr) *v1.Service {
	for _, s := range c.Services {
		for _, ip := range s.Spec.ClusterIPs {
			if b, err := netip.ParseAddr(ip); err == nil && b.Unmap() == a {
				return s
			}
		}
	}
	return nil
}

// slicesOf returns the EndpointSlices of svc.
func (c *Cluster) slicesOf(svc *v1.Service) []*discoveryv1.EndpointSlice {
	var out []*discoveryv1.EndpointSlice
	for _, sl := range c.Slices {
		if sl.Namespace == svc.Namespace && sl.Labels[discoveryv1.LabelServiceName] == svc.Name {
			out = append(out, sl)
		}
	}
	return out
}

// nodeZone is the node's topology.kubernetes.io/zone label.
func (c *Cluster) nodeZone(name string) string {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n.Labels[v1.LabelTopologyZone]
		}
	}
	return ""
}

// addrOfFamily returns the pod's address of dst's family.
func addrOfFamily(p *policy.Pod, dst netip.Addr) (netip.Addr, error) {
	for _, a := range p.IPs {
		if a.Is4() == dst.Is4() {
			return a, nil
		}
	}
	fam := "IPv6"
	if dst.Is4() {
		fam = "IPv4"
	}
	return netip.Addr{}, fmt.Errorf("pod %s has no %s address to reach %s from", p.Key(), fam, dst)
}
