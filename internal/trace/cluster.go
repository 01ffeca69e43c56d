package trace

import (
	"context"
	"fmt"
	"net/netip"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/policy"
)

// FromAPI reads the objects NetworkPolicy needs from the API server once
// (Pods, Namespaces, NetworkPolicies), compiles the policies, resolves src
// and tgt to pods or addresses, and traces the connection. It also returns
// the compiler's errors (policies with parts podnet cannot use), for the
// caller to warn about; the ones that take part in the verdict are notes
// of the Result too.
//
// Services are not followed yet: a target that is a Service's name or
// cluster IP is an error that says so.
func FromAPI(ctx context.Context, client kubernetes.Interface, src PodName, tgt Target) (*Result, []policy.Error, error) {
	podList, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list pods: %w", err)
	}
	compiled, errs, err := compileFromAPI(ctx, client, podList.Items)
	if err != nil {
		return nil, nil, err
	}
	srcPod, err := lookupPod(compiled, podList.Items, src)
	if err != nil {
		return nil, nil, err
	}
	q := Query{Src: Endpoint{Pod: srcPod}, Protocol: tgt.Protocol, Port: tgt.Port}
	if tgt.Addr.IsValid() {
		q.Dst.Addr = tgt.Addr
	} else {
		dstPod, err := targetPod(ctx, client, compiled, podList.Items, tgt.Object)
		if err != nil {
			return nil, nil, err
		}
		q.Dst = Endpoint{Addr: dstPod.IPs[0], Pod: dstPod}
	}
	if q.Src.Addr, err = addrOfFamily(srcPod, q.Dst.Addr); err != nil {
		return nil, nil, err
	}
	if svc := serviceWithIP(ctx, client, q.Dst.Addr); svc != "" {
		return nil, nil, fmt.Errorf("%s is Service %s's cluster IP; podnet trace does not follow Services yet: trace to one of its pods", q.Dst.Addr, svc)
	}
	return Trace(compiled, errs, q), errs, nil
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

// lookupPod finds a pod by name among the compiled pods, explaining why
// when it is not there.
func lookupPod(c *policy.Compiled, items []v1.Pod, ref PodName) (*policy.Pod, error) {
	if p := c.Pods[ref.String()]; p != nil {
		return p, nil
	}
	for i := range items {
		if items[i].Namespace == ref.Namespace && items[i].Name == ref.Name {
			return nil, fmt.Errorf("pod %s has no address (phase %s): it does not take part in the network", ref, items[i].Status.Phase)
		}
	}
	return nil, fmt.Errorf("pod %s not found", ref)
}

// targetPod finds the pod a target names. A Service is an error that says
// what to do instead, also when a pod's short name turns out to be a
// Service's.
func targetPod(ctx context.Context, client kubernetes.Interface, c *policy.Compiled, items []v1.Pod, o Object) (*policy.Pod, error) {
	svc := Object{Kind: KindService, Namespace: o.Namespace, Name: o.Name}
	if o.Kind == KindService {
		return nil, serviceNotFollowed(svc)
	}
	p, err := lookupPod(c, items, o.Pod())
	if err != nil {
		if _, serr := client.CoreV1().Services(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{}); serr == nil {
			return nil, fmt.Errorf("%s is a Service, not a pod: %w", o.Pod(), serviceNotFollowed(svc))
		}
		return nil, err
	}
	return p, nil
}

// serviceNotFollowed is the error for a Service as trace's target.
func serviceNotFollowed(svc Object) error {
	return fmt.Errorf("podnet trace does not follow Services yet: trace to one of the pods behind %s "+
		"(podnet kubectl -- get endpointslices -n %s -l kubernetes.io/service-name=%s lists them)", svc, svc.Namespace, svc.Name)
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

// serviceWithIP names the Service whose cluster IP is a ("" when none, or
// when Services cannot be listed: the check is a courtesy).
func serviceWithIP(ctx context.Context, client kubernetes.Interface, a netip.Addr) string {
	svcs, err := client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return ""
	}
	for _, s := range svcs.Items {
		for _, ip := range s.Spec.ClusterIPs {
			if b, err := netip.ParseAddr(ip); err == nil && b.Unmap() == a {
				return s.Namespace + "/" + s.Name
			}
		}
	}
	return ""
}
