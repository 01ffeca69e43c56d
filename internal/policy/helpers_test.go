package policy

// Fixture conventions: pod addresses are 10.244.<node>.<n> (node-1, node-2)
// and fd00:10:244:<node>::<n>; 172.17.0.0/16 and 192.168.0.0/16 play
// outside addresses; namespaces carry the label ns=<name>.

import (
	"context"
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

// pod builds a Pod object and converts it through PodFrom, as the agent does.
func pod(ns, name, node, ip string, labels map[string]string, ports ...v1.ContainerPort) *Pod {
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       v1.PodSpec{NodeName: node, Containers: []v1.Container{{Name: "c", Ports: ports}}},
		Status:     v1.PodStatus{Phase: v1.PodRunning, PodIPs: []v1.PodIP{{IP: ip}}},
	}
	return PodFrom(p)
}

func namespace(name string, labels map[string]string) *Namespace {
	l := map[string]string{"ns": name}
	for k, v := range labels {
		l[k] = v
	}
	return NamespaceFrom(&v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}})
}

func sel(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func tcp(port int) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(int32(port)))}
}

func namedPort(name string) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Port: ptr.To(intstr.FromString(name))}
}

// renderNode renders c for node into a fake table through the Syncer.
func renderNode(t *testing.T, c *Compiled, node string) *knftables.Fake {
	t.Helper()
	f := knftables.NewFake(knftables.InetFamily, Table)
	if _, err := NewSyncer(f).Sync(context.Background(), Render(c, node)); err != nil {
		t.Fatalf("sync %s: %v", node, err)
	}
	return f
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }
