package trace

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Resolve returns the address a packet to t goes to: t.Addr itself, a
// pod's address (its primary one), or a Service's cluster IP, read from the
// API server; never from a DNS resolver. A Service must have a port of t's
// protocol and number, so that a typo is an error rather than a probe that
// nothing answers. Headless and ExternalName Services have no address of
// their own: the error says what to name instead.
func Resolve(ctx context.Context, client kubernetes.Interface, t Target) (netip.Addr, error) {
	switch {
	case t.Addr.IsValid():
		return t.Addr, nil
	case t.Object.Kind == KindService:
		return serviceAddr(ctx, client, t)
	}
	return podAddr(ctx, client, t.Object)
}

func podAddr(ctx context.Context, client kubernetes.Interface, o Object) (netip.Addr, error) {
	p, err := client.CoreV1().Pods(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("pod %s: %w", o.Key(), err)
	}
	if p.Status.PodIP == "" {
		return netip.Addr{}, fmt.Errorf("pod %s has no address yet (phase %s)", o.Key(), p.Status.Phase)
	}
	a, err := netip.ParseAddr(p.Status.PodIP)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("pod %s: bad podIP: %w", o.Key(), err)
	}
	return a.Unmap(), nil
}

func serviceAddr(ctx context.Context, client kubernetes.Interface, t Target) (netip.Addr, error) {
	o := t.Object
	s, err := client.CoreV1().Services(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("service %s: %w", o.Key(), err)
	}
	switch {
	case s.Spec.Type == v1.ServiceTypeExternalName:
		return netip.Addr{}, fmt.Errorf("service %s is an ExternalName (%s) and has no address: use its name from inside a pod (podnet exec POD -- curl NAME)", o.Key(), s.Spec.ExternalName)
	case s.Spec.ClusterIP == "" || s.Spec.ClusterIP == v1.ClusterIPNone:
		return netip.Addr{}, fmt.Errorf("service %s is headless (no cluster IP): name one of its pods as pod/NAME", o.Key())
	}
	if HasPorts(t.Protocol) && !hasServicePort(s, t.Protocol, t.Port) {
		return netip.Addr{}, fmt.Errorf("service %s has no port %d/%s (its ports: %s)", o.Key(), t.Port, t.Protocol, servicePorts(s))
	}
	a, err := netip.ParseAddr(s.Spec.ClusterIP)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("service %s: bad clusterIP: %w", o.Key(), err)
	}
	return a.Unmap(), nil
}

func hasServicePort(s *v1.Service, proto v1.Protocol, port int32) bool {
	for _, p := range s.Spec.Ports {
		if p.Port == port && (p.Protocol == proto || p.Protocol == "" && proto == v1.ProtocolTCP) {
			return true
		}
	}
	return false
}

func servicePorts(s *v1.Service) string {
	var ports []string
	for _, p := range s.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = v1.ProtocolTCP
		}
		ports = append(ports, fmt.Sprintf("%d/%s", p.Port, proto))
	}
	if len(ports) == 0 {
		return "none"
	}
	return strings.Join(ports, ", ")
}
