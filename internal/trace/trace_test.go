package trace

import (
	"net/netip"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/podnet/podnet/internal/policy"
)

// Fixture conventions: pods on node-1 have 10.244.1.0/24, on node-2
// 10.244.2.0/24; nodes are 172.30.0.11 (node-1) and 172.30.0.12 (node-2);
// 203.0.113.0/24 is outside the cluster. Every object goes through the real
// constructors (policy.PodFrom, policy.NamespaceFrom, policy.Compile).

func pod(ns, name, node, ip string, labels map[string]string, ports ...v1.ContainerPort) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       v1.PodSpec{NodeName: node, Containers: []v1.Container{{Name: "c", Ports: ports}}},
		Status:     v1.PodStatus{Phase: v1.PodRunning, PodIP: ip, PodIPs: []v1.PodIP{{IP: ip}}},
	}
}

func hostPod(ns, name, node, ip string) *v1.Pod {
	p := pod(ns, name, node, ip, nil)
	p.Spec.HostNetwork = true
	return p
}

func netpol(ns, name string, sel map[string]string, types []networkingv1.PolicyType, in []networkingv1.NetworkPolicyIngressRule, out []networkingv1.NetworkPolicyEgressRule) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: sel},
			PolicyTypes: types,
			Ingress:     in,
			Egress:      out,
		},
	}
}

func tcpPort(p intstr.IntOrString) networkingv1.NetworkPolicyPort {
	proto := v1.ProtocolTCP
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &p}
}

func udpPort(n int32) networkingv1.NetworkPolicyPort {
	proto, p := v1.ProtocolUDP, intstr.FromInt32(n)
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &p}
}

var (
	ingressOnly = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	egressOnly  = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	both        = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}

	client = pod("default", "client", "node-1", "10.244.1.5", map[string]string{"app": "client"})
	web1   = pod("default", "web-1", "node-2", "10.244.2.7", map[string]string{"app": "web"},
		v1.ContainerPort{Name: "http", ContainerPort: 8080})
	agent  = hostPod("kube-system", "agent-1", "node-1", "172.30.0.11")
	agent2 = hostPod("kube-system", "agent-2", "node-2", "172.30.0.12")

	denyAll  = netpol("default", "default-deny-all", nil, both, nil, nil)
	apiAllow = netpol("default", "api-allow", map[string]string{"app": "web"}, ingressOnly,
		[]networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}},
			Ports: []networkingv1.NetworkPolicyPort{tcpPort(intstr.FromInt32(80))},
		}}, nil)
	namedAllow = netpol("default", "http-allow", map[string]string{"app": "web"}, ingressOnly,
		[]networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{tcpPort(intstr.FromString("http"))}}}, nil)
	clientEgress = netpol("default", "client-egress", map[string]string{"app": "client"}, egressOnly, nil,
		[]networkingv1.NetworkPolicyEgressRule{
			{Ports: []networkingv1.NetworkPolicyPort{udpPort(53)}},
			{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"203.0.113.0/24"}}}}},
		})
	badBlock = netpol("default", "bad-block", map[string]string{"app": "web"}, ingressOnly,
		[]networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/33"}}}}}, nil)
)

func compile(t *testing.T, pols []*networkingv1.NetworkPolicy, pods ...*v1.Pod) (*policy.Compiled, []policy.Error, map[string]*policy.Pod) {
	t.Helper()
	byName := map[string]*policy.Pod{}
	var ps []*policy.Pod
	for _, p := range pods {
		pp := policy.PodFrom(p)
		if pp == nil {
			t.Fatalf("PodFrom(%s/%s) = nil", p.Namespace, p.Name)
		}
		ps = append(ps, pp)
		byName[p.Name] = pp
	}
	nss := []*policy.Namespace{
		policy.NamespaceFrom(&v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}),
		policy.NamespaceFrom(&v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system"}}),
	}
	c, errs := policy.Compile(pols, ps, nss)
	return c, errs, byName
}

func TestTrace(t *testing.T) {
	all := []*v1.Pod{client, web1, agent, agent2}
	cases := []struct {
		name     string
		policies []*networkingv1.NetworkPolicy
		// src and dst are pod names (of all) or addresses.
		src, dst string
		proto    v1.Protocol
		port     int32
		allowed  bool
		want     string
	}{{
		name:     "a pod no policy selects reaches an isolated pod through a rule",
		policies: []*networkingv1.NetworkPolicy{apiAllow},
		src:      "client", dst: "web-1", proto: v1.ProtocolTCP, port: 80, allowed: true,
		want: `
default/client (10.244.1.5, node-1) -> default/web-1 (10.244.2.7, node-2) tcp/80: ALLOWED
  egress  at default/client: no policy selects this pod for egress -> allowed
  ingress at default/web-1: isolated by default/api-allow
          allowed by default/api-allow ingress[0]
`,
	}, {
		name:     "a default deny isolates both ends and no rule allows egress",
		policies: []*networkingv1.NetworkPolicy{denyAll, apiAllow},
		src:      "client", dst: "web-1", proto: v1.ProtocolTCP, port: 80, allowed: false,
		want: `
default/client (10.244.1.5, node-1) -> default/web-1 (10.244.2.7, node-2) tcp/80: DENIED
  egress  at default/client: isolated by default/default-deny-all; no rule allows tcp/80 to 10.244.2.7 -> DENIED
  ingress at default/web-1: isolated by default/api-allow, default/default-deny-all
          allowed by default/api-allow ingress[0]
`,
	}, {
		name:     "a port no rule lists is denied at ingress",
		policies: []*networkingv1.NetworkPolicy{apiAllow},
		src:      "client", dst: "web-1", proto: v1.ProtocolTCP, port: 8080, allowed: false,
		want: `
default/client (10.244.1.5, node-1) -> default/web-1 (10.244.2.7, node-2) tcp/8080: DENIED
  egress  at default/client: no policy selects this pod for egress -> allowed
  ingress at default/web-1: isolated by default/api-allow; no rule allows tcp/8080 from 10.244.1.5 -> DENIED
`,
	}, {
		name: "without policies nothing is isolated",
		src:  "client", dst: "web-1", proto: v1.ProtocolUDP, port: 53, allowed: true,
		want: `
default/client (10.244.1.5, node-1) -> default/web-1 (10.244.2.7, node-2) udp/53: ALLOWED
  egress  at default/client: no policy selects this pod for egress -> allowed
  ingress at default/web-1: no policy selects this pod for ingress -> allowed
`,
	}, {
		name:     "icmp has no port and only rules without ports allow it",
		policies: []*networkingv1.NetworkPolicy{apiAllow},
		src:      "client", dst: "web-1", proto: ProtocolICMP, allowed: false,
		want: `
default/client (10.244.1.5, node-1) -> default/web-1 (10.244.2.7, node-2) icmp: DENIED
  egress  at default/client: no policy selects this pod for egress -> allowed
  ingress at default/web-1: isolated by default/api-allow; no rule allows icmp from 10.244.1.5 -> DENIED
`,
	}, {
		name:     "a named port resolves against the destination pod's container port",
		policies: []*networkingv1.NetworkPolicy{namedAllow},
		src:      "client", dst: "web-1", proto: v1.ProtocolTCP, port: 8080, allowed: true,
		want: `
default/client (10.244.1.5, node-1) -> default/web-1 (10.244.2.7, node-2) tcp/8080: ALLOWED
  egress  at default/client: no policy selects this pod for egress -> allowed
  ingress at default/web-1: isolated by default/http-allow
          allowed by default/http-allow ingress[0]
`,
	}, {
		name:     "a named port does not match another port number",
		policies: []*networkingv1.NetworkPolicy{namedAllow},
		src:      "client", dst: "web-1", proto: v1.ProtocolTCP, port: 80, allowed: false,
		want: `
default/client (10.244.1.5, node-1) -> default/web-1 (10.244.2.7, node-2) tcp/80: DENIED
  egress  at default/client: no policy selects this pod for egress -> allowed
  ingress at default/web-1: isolated by default/http-allow; no rule allows tcp/80 from 10.244.1.5 -> DENIED
`,
	}, {
		name:     "an outside address in an allowed ipBlock is reachable and never isolated",
		policies: []*networkingv1.NetworkPolicy{clientEgress},
		src:      "client", dst: "198.51.100.9", proto: v1.ProtocolTCP, port: 443, allowed: true,
		want: `
default/client (10.244.1.5, node-1) -> 198.51.100.9 (no pod) tcp/443: ALLOWED
  egress  at default/client: isolated by default/client-egress
          allowed by default/client-egress egress[1]
  ingress at 198.51.100.9: not a pod address, never isolated -> allowed
`,
	}, {
		name:     "an outside address in an ipBlock's except is denied at egress",
		policies: []*networkingv1.NetworkPolicy{clientEgress},
		src:      "client", dst: "203.0.113.5", proto: v1.ProtocolTCP, port: 443, allowed: false,
		want: `
default/client (10.244.1.5, node-1) -> 203.0.113.5 (no pod) tcp/443: DENIED
  egress  at default/client: isolated by default/client-egress; no rule allows tcp/443 to 203.0.113.5 -> DENIED
  ingress at 203.0.113.5: not a pod address, never isolated -> allowed
`,
	}, {
		name:     "several rules allowing one connection are all named",
		policies: []*networkingv1.NetworkPolicy{clientEgress},
		src:      "client", dst: "198.51.100.53", proto: v1.ProtocolUDP, port: 53, allowed: true,
		want: `
default/client (10.244.1.5, node-1) -> 198.51.100.53 (no pod) udp/53: ALLOWED
  egress  at default/client: isolated by default/client-egress
          allowed by default/client-egress egress[0], default/client-egress egress[1]
  ingress at 198.51.100.53: not a pod address, never isolated -> allowed
`,
	}, {
		name:     "traffic from outside is judged by the destination's ingress rules",
		policies: []*networkingv1.NetworkPolicy{apiAllow},
		src:      "203.0.113.5", dst: "web-1", proto: v1.ProtocolTCP, port: 80, allowed: false,
		want: `
203.0.113.5 (no pod) -> default/web-1 (10.244.2.7, node-2) tcp/80: DENIED
  egress  at 203.0.113.5: not a pod address, never isolated -> allowed
  ingress at default/web-1: isolated by default/api-allow; no rule allows tcp/80 from 203.0.113.5 -> DENIED
`,
	}, {
		name:     "a host-network pod on another node is not policed but its node's address meets the ingress rules",
		policies: []*networkingv1.NetworkPolicy{apiAllow},
		src:      "agent-1", dst: "web-1", proto: v1.ProtocolTCP, port: 80, allowed: false,
		want: `
kube-system/agent-1 (172.30.0.11, node-1, host network) -> default/web-1 (10.244.2.7, node-2) tcp/80: DENIED
  egress  at kube-system/agent-1: host-network pod, not policed (its traffic is its node's) -> allowed
  ingress at default/web-1: isolated by default/api-allow; no rule allows tcp/80 from 172.30.0.11 -> DENIED
`,
	}, {
		name:     "a host-network pod reaches the pods of its own node whatever their policies",
		policies: []*networkingv1.NetworkPolicy{denyAll},
		src:      "agent-2", dst: "web-1", proto: v1.ProtocolTCP, port: 80, allowed: true,
		want: `
kube-system/agent-2 (172.30.0.12, node-2, host network) -> default/web-1 (10.244.2.7, node-2) tcp/80: ALLOWED
  egress  at kube-system/agent-2: host-network pod, not policed (its traffic is its node's) -> allowed
  ingress at default/web-1: from node-2 itself (host-network kube-system/agent-2): a node's traffic to its own pods is not policed -> allowed
`,
	}, {
		name:     "a host-network destination is not policed",
		policies: []*networkingv1.NetworkPolicy{denyAll},
		src:      "client", dst: "agent-2", proto: v1.ProtocolTCP, port: 10250, allowed: false,
		want: `
default/client (10.244.1.5, node-1) -> kube-system/agent-2 (172.30.0.12, node-2, host network) tcp/10250: DENIED
  egress  at default/client: isolated by default/default-deny-all; no rule allows tcp/10250 to 172.30.0.12 -> DENIED
  ingress at kube-system/agent-2: host-network pod, not policed (its traffic is its node's) -> allowed
`,
	}, {
		name:     "a pod's traffic to itself never leaves it",
		policies: []*networkingv1.NetworkPolicy{denyAll},
		src:      "web-1", dst: "web-1", proto: v1.ProtocolTCP, port: 80, allowed: true,
		want: `
default/web-1 (10.244.2.7, node-2) -> default/web-1 (10.244.2.7, node-2) tcp/80: ALLOWED
  egress  at default/web-1: a pod's traffic to itself stays inside it, not policed -> allowed
  ingress at default/web-1: a pod's traffic to itself stays inside it, not policed -> allowed
`,
	}, {
		name:     "a policy the compiler could not fully use is noted",
		policies: []*networkingv1.NetworkPolicy{badBlock},
		src:      "client", dst: "web-1", proto: v1.ProtocolTCP, port: 80, allowed: false,
		want: `
default/client (10.244.1.5, node-1) -> default/web-1 (10.244.2.7, node-2) tcp/80: DENIED
  egress  at default/client: no policy selects this pod for egress -> allowed
  ingress at default/web-1: isolated by default/bad-block; no rule allows tcp/80 from 10.244.1.5 -> DENIED
  note: policy default/bad-block has parts podnet cannot use (they match nothing): ingress[0]: peer 0: ipBlock: netip.ParsePrefix("10.0.0.0/33"): prefix length out of range
`,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, errs, pods := compile(t, tc.policies, all...)
			end := func(s string) Endpoint {
				if a, err := netip.ParseAddr(s); err == nil {
					return Endpoint{Addr: a}
				}
				p := pods[s]
				if p == nil {
					t.Fatalf("no pod %q in the fixture", s)
				}
				return Endpoint{Addr: p.IPs[0], Pod: p}
			}
			r := Trace(c, errs, Query{Src: end(tc.src), Dst: end(tc.dst), Protocol: tc.proto, Port: tc.port})
			if got, want := r.String(), strings.TrimPrefix(tc.want, "\n"); got != want {
				t.Errorf("text:\n got:\n%s\nwant:\n%s", got, want)
			}
			if r.Allowed() != tc.allowed {
				t.Errorf("Allowed() = %v, want %v", r.Allowed(), tc.allowed)
			}
		})
	}
}

// The trace agrees with the evaluator wherever it adds no case of its own.
func TestTraceAgreesWithVerdict(t *testing.T) {
	c, errs, pods := compile(t, []*networkingv1.NetworkPolicy{denyAll, apiAllow, namedAllow, clientEgress}, client, web1)
	addrs := []netip.Addr{pods["client"].IPs[0], pods["web-1"].IPs[0], netip.MustParseAddr("203.0.113.5"), netip.MustParseAddr("198.51.100.9")}
	for _, src := range addrs {
		for _, dst := range addrs {
			if src == dst {
				continue
			}
			for _, pp := range []struct {
				proto v1.Protocol
				port  int32
			}{{v1.ProtocolTCP, 80}, {v1.ProtocolTCP, 8080}, {v1.ProtocolUDP, 53}, {ProtocolICMP, 0}} {
				r := Trace(c, errs, Query{Src: Endpoint{Addr: src}, Dst: Endpoint{Addr: dst}, Protocol: pp.proto, Port: pp.port})
				if want := c.Verdict(src, dst, pp.proto, pp.port).Allowed; r.Allowed() != want {
					t.Errorf("%s -> %s %s: trace says %v, Verdict %v", src, dst, ProtoPort(pp.proto, pp.port), r.Allowed(), want)
				}
			}
		}
	}
}

func TestProtoPort(t *testing.T) {
	for _, tc := range []struct {
		proto v1.Protocol
		port  int32
		want  string
	}{{v1.ProtocolTCP, 80, "tcp/80"}, {v1.ProtocolUDP, 53, "udp/53"}, {v1.ProtocolSCTP, 9, "sctp/9"}, {ProtocolICMP, 0, "icmp"}} {
		if got := ProtoPort(tc.proto, tc.port); got != tc.want {
			t.Errorf("ProtoPort(%s, %d) = %q, want %q", tc.proto, tc.port, got, tc.want)
		}
	}
}
