package flow

// Fixture conventions: pod addresses are in 10.244.0.0/16 (node-1 has
// 10.244.1.0/24, node-2 10.244.2.0/24), Service addresses in 10.96.0.0/16,
// node addresses in 172.30.0.0/24, outside clients in 203.0.113.0/24.

import (
	"encoding/binary"
	"net/netip"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// testPod is a running pod of a Deployment's ReplicaSet (owner "" for a
// bare pod).
func testPod(ns, name, node, ip, deployment string, labels map[string]string) *v1.Pod {
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       v1.PodSpec{NodeName: node},
		Status:     v1.PodStatus{Phase: v1.PodRunning, PodIP: ip, PodIPs: []v1.PodIP{{IP: ip}}},
	}
	if deployment != "" {
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		p.Labels["pod-template-hash"] = "5d8f7c"
		p.OwnerReferences = []metav1.OwnerReference{{Kind: "ReplicaSet", Name: deployment + "-5d8f7c", Controller: new(true)}}
	}
	return p
}

func testService(ns, name, ip string, port, nodePort int32) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.ServiceSpec{ClusterIP: ip, ClusterIPs: []string{ip},
			Ports: []v1.ServicePort{{Protocol: v1.ProtocolTCP, Port: port, NodePort: nodePort, TargetPort: intstr.FromInt32(8080)}}},
	}
}

// denyAllIngress isolates the pods with labels for ingress and allows
// nothing.
func denyAllIngress(ns, name string, labels map[string]string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: labels},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
}

// allowFrom allows TCP port to the pods with labels from the pods with
// from.
func allowFrom(ns, name string, labels, from map[string]string, port int32) *networkingv1.NetworkPolicy {
	tcp := v1.ProtocolTCP
	p := intstr.FromInt32(port)
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: labels},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: from}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p}}}}},
	}
}

func testNamespace(name string) *v1.Namespace {
	return &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// ipv4TCP is an IPv4 header and the first bytes of a TCP header.
func ipv4TCP(src, dst string, sport, dport uint16) []byte {
	b := make([]byte, 40)
	b[0] = 0x45
	b[9] = 6
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	binary.BigEndian.PutUint16(b[20:22], sport)
	binary.BigEndian.PutUint16(b[22:24], dport)
	return b
}

// ipv6UDP is an IPv6 header and a UDP header.
func ipv6UDP(src, dst string, sport, dport uint16) []byte {
	b := make([]byte, 48)
	b[0] = 0x60
	b[6] = 17
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	binary.BigEndian.PutUint16(b[40:42], sport)
	binary.BigEndian.PutUint16(b[42:44], dport)
	return b
}

// testView: namespace shop with a web Deployment (two pods, one per node)
// behind Service web (10.96.0.20:80, NodePort 30080), a client pod, and
// policies isolating web for ingress that allow only app=client on 8080.
func testView() *View {
	web := map[string]string{"app": "web"}
	client := map[string]string{"app": "client"}
	return NewView(Objects{
		Pods: []*v1.Pod{
			testPod("shop", "web-5d8f7c-a", "node-1", "10.244.1.10", "web", web),
			testPod("shop", "web-5d8f7c-b", "node-2", "10.244.2.10", "web", web),
			testPod("shop", "client", "node-1", "10.244.1.20", "", client),
			testPod("shop", "intruder", "node-2", "10.244.2.30", "", map[string]string{"app": "intruder"}),
		},
		Services:   []*v1.Service{testService("shop", "web", "10.96.0.20", 80, 30080), testService("shop", "empty", "10.96.0.30", 80, 0)},
		Namespaces: []*v1.Namespace{testNamespace("shop")},
		Policies: []*networkingv1.NetworkPolicy{denyAllIngress("shop", "default-deny", web),
			allowFrom("shop", "web-from-client", web, client, 8080)},
	})
}
