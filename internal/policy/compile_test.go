package policy

import (
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

// The example policy of the Kubernetes NetworkPolicy documentation.
func docExample() *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "test-network-policy"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: *sel("role", "db"),
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{
					{IPBlock: &networkingv1.IPBlock{CIDR: "172.17.0.0/16", Except: []string{"172.17.1.0/24"}}},
					{NamespaceSelector: sel("project", "myproject")},
					{PodSelector: sel("role", "frontend")},
				},
				Ports: []networkingv1.NetworkPolicyPort{tcp(6379)},
			}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/24"}}},
				Ports: []networkingv1.NetworkPolicyPort{tcp(5978)},
			}},
		},
	}
}

func TestVerdictOfTheDocumentationExample(t *testing.T) {
	pods := []*Pod{
		pod("default", "db", "node-1", "10.244.1.2", map[string]string{"role": "db"}),
		pod("default", "frontend", "node-2", "10.244.2.2", map[string]string{"role": "frontend"}),
		pod("default", "other", "node-2", "10.244.2.3", map[string]string{"role": "other"}),
		pod("myproject", "any", "node-2", "10.244.2.4", nil),
		pod("elsewhere", "frontend", "node-2", "10.244.2.5", map[string]string{"role": "frontend"}),
	}
	nss := []*Namespace{namespace("default", nil), namespace("myproject", map[string]string{"project": "myproject"}), namespace("elsewhere", nil)}
	c, errs := Compile([]*networkingv1.NetworkPolicy{docExample()}, pods, nss)
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	cases := []struct {
		name     string
		src, dst string
		proto    v1.Protocol
		port     int32
		allowed  bool
		by       string // the rule that allowed at the deciding end, or the isolating policy
	}{
		{"a frontend pod of the namespace reaches the db on 6379", "10.244.2.2", "10.244.1.2", "TCP", 6379, true, "default/test-network-policy ingress[0]"},
		{"a frontend pod reaches no other port", "10.244.2.2", "10.244.1.2", "TCP", 6380, false, "default/test-network-policy"},
		{"UDP is not TCP", "10.244.2.2", "10.244.1.2", "UDP", 6379, false, "default/test-network-policy"},
		{"another pod of the namespace is denied", "10.244.2.3", "10.244.1.2", "TCP", 6379, false, "default/test-network-policy"},
		{"any pod of a namespace labelled project=myproject is allowed", "10.244.2.4", "10.244.1.2", "TCP", 6379, true, "default/test-network-policy ingress[0]"},
		{"role=frontend in another namespace is not", "10.244.2.5", "10.244.1.2", "TCP", 6379, false, "default/test-network-policy"},
		{"the ipBlock allows 172.17.0.0/16", "172.17.0.9", "10.244.1.2", "TCP", 6379, true, "default/test-network-policy ingress[0]"},
		{"except 172.17.1.0/24", "172.17.1.9", "10.244.1.2", "TCP", 6379, false, "default/test-network-policy"},
		{"egress from the db to 10.0.0.0/24 on 5978", "10.244.1.2", "10.0.0.7", "TCP", 5978, true, "default/test-network-policy egress[0]"},
		{"egress from the db elsewhere is denied", "10.244.1.2", "10.244.2.2", "TCP", 80, false, "default/test-network-policy"},
		{"unselected pods are not isolated", "10.244.2.4", "10.244.2.3", "TCP", 80, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := c.Verdict(addr(tc.src), addr(tc.dst), tc.proto, tc.port)
			if d.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v (%+v)", d.Allowed, tc.allowed, d)
			}
			var got []string
			if tc.allowed {
				got = append(d.Ingress.AllowedBy, d.Egress.AllowedBy...)
			} else {
				got = append(d.Ingress.IsolatedBy, d.Egress.IsolatedBy...)
			}
			if tc.by == "" {
				if len(got) != 0 {
					t.Errorf("decided by %v, want nothing", got)
				}
			} else if !slices.Contains(got, tc.by) {
				t.Errorf("decided by %v, want %q among them", got, tc.by)
			}
		})
	}
}

func TestPolicyTypesDefault(t *testing.T) {
	pods := []*Pod{pod("default", "a", "node-1", "10.244.1.2", map[string]string{"app": "a"})}
	onlyIngress := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "in"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: *sel("app", "a")}}
	withEgress := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "out"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: *sel("app", "a"),
			Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{tcp(53)}}}}}
	c, _ := Compile([]*networkingv1.NetworkPolicy{onlyIngress}, pods, nil)
	if got := c.IsolatedBy(pods[0], Egress); len(got) != 0 {
		t.Errorf("a policy without types or egress rules isolates for egress: %v", got)
	}
	if got := c.IsolatedBy(pods[0], Ingress); len(got) != 1 {
		t.Errorf("a policy without types does not isolate for ingress")
	}
	c, _ = Compile([]*networkingv1.NetworkPolicy{withEgress}, pods, nil)
	if len(c.IsolatedBy(pods[0], Egress)) != 1 || len(c.IsolatedBy(pods[0], Ingress)) != 1 {
		t.Errorf("egress rules without types: isolation ingress %d egress %d, want both", len(c.IsolatedBy(pods[0], Ingress)), len(c.IsolatedBy(pods[0], Egress)))
	}
	// The deny-all of ingress: no rule at all.
	if d := c.Verdict(addr("10.244.2.9"), addr("10.244.1.2"), "TCP", 80); d.Allowed {
		t.Errorf("ingress to a pod isolated with no rules allowed: %+v", d)
	}
	if d := c.Verdict(addr("10.244.1.2"), addr("192.168.1.1"), "UDP", 53); d.Allowed {
		t.Errorf("UDP/53 allowed by a TCP/53 rule")
	}
	if d := c.Verdict(addr("10.244.1.2"), addr("192.168.1.1"), "TCP", 53); !d.Allowed {
		t.Errorf("egress TCP/53 to anywhere denied: %+v", d)
	}
}

func TestNamedPortsResolvePerDestinationPod(t *testing.T) {
	pods := []*Pod{
		pod("default", "client", "node-1", "10.244.1.2", map[string]string{"app": "client"}),
		pod("default", "web-1", "node-1", "10.244.1.3", map[string]string{"app": "web"}, v1.ContainerPort{Name: "http", ContainerPort: 8080}),
		pod("default", "web-2", "node-2", "10.244.2.3", map[string]string{"app": "web"}, v1.ContainerPort{Name: "http", ContainerPort: 9090}),
	}
	ing := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: *sel("app", "web"),
			Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{namedPort("http")}}}}}
	eg := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "client"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: *sel("app", "client"), PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{PodSelector: sel("app", "web")}},
				Ports: []networkingv1.NetworkPolicyPort{namedPort("http")}}}}}
	c, errs := Compile([]*networkingv1.NetworkPolicy{ing, eg}, pods, []*Namespace{namespace("default", nil)})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	for _, tc := range []struct {
		dst     string
		port    int32
		allowed bool
	}{{"10.244.1.3", 8080, true}, {"10.244.1.3", 9090, false}, {"10.244.2.3", 9090, true}, {"10.244.2.3", 8080, false}} {
		if d := c.Verdict(addr("10.244.1.2"), addr(tc.dst), "TCP", tc.port); d.Allowed != tc.allowed {
			t.Errorf("client -> %s:%d allowed = %v, want %v (%+v)", tc.dst, tc.port, d.Allowed, tc.allowed, d)
		}
	}
	// The rendered rules agree.
	tables := map[string]*knftables.Fake{"node-1": renderNode(t, c, "node-1"), "node-2": renderNode(t, c, "node-2")}
	for _, tc := range []struct {
		dst  string
		port int
		want string
	}{{"10.244.1.3", 8080, "accept"}, {"10.244.1.3", 9090, "drop"}, {"10.244.2.3", 9090, "accept"}, {"10.244.2.3", 8080, "drop"}} {
		if got := traceCluster(t, c, tables, packet{addr("10.244.1.2"), addr(tc.dst), "tcp", tc.port}); got != tc.want {
			t.Errorf("traced client -> %s:%d: %s, want %s", tc.dst, tc.port, got, tc.want)
		}
	}
}

func TestBadPolicyFailsClosedAndIsReported(t *testing.T) {
	pods := []*Pod{pod("default", "a", "node-1", "10.244.1.2", map[string]string{"app": "a"})}
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "bad"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: *sel("app", "a"),
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/33"}},
				{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.0.0/16"}},
			}, Ports: []networkingv1.NetworkPolicyPort{{Port: tcp(80).Port, EndPort: ptr.To(int32(70))}}}}}}
	c, errs := Compile([]*networkingv1.NetworkPolicy{np}, pods, nil)
	if len(errs) != 1 || errs[0].Policy != "default/bad" {
		t.Fatalf("errors = %v, want one for default/bad", errs)
	}
	if err := Validate(np); err == nil {
		t.Error("Validate accepted the bad policy")
	}
	if d := c.Verdict(addr("10.0.0.1"), addr("10.244.1.2"), "TCP", 80); d.Allowed {
		t.Error("the unparseable ipBlock allowed traffic")
	}
	if !c.Verdict(addr("10.0.0.1"), addr("10.244.1.2"), "TCP", 80).Ingress.Isolated() {
		t.Error("the bad policy does not isolate its pod")
	}
}

func TestAReusedAddressBelongsToTheLivePod(t *testing.T) {
	old := pod("default", "old", "node-1", "10.244.1.2", map[string]string{"app": "db"})
	old.Terminating = true
	fresh := pod("default", "new", "node-1", "10.244.1.2", map[string]string{"app": "web"})
	deny := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: *sel("app", "db")}}
	for _, order := range [][]*Pod{{old, fresh}, {fresh, old}} {
		c, _ := Compile([]*networkingv1.NetworkPolicy{deny}, order, []*Namespace{namespace("default", nil)})
		if got := c.PodByIP(addr("10.244.1.2")); got != fresh {
			t.Fatalf("10.244.1.2 belongs to %s, want the live pod default/new", got.Key())
		}
		if d := c.Verdict(addr("10.244.2.9"), addr("10.244.1.2"), "TCP", 80); !d.Allowed {
			t.Errorf("the terminating pod's deny-all policy applies to the new pod with its address: %+v", d)
		}
		tables := map[string]*knftables.Fake{"node-1": renderNode(t, c, "node-1")}
		if got := traceCluster(t, c, tables, packet{addr("10.244.2.9"), addr("10.244.1.2"), "tcp", 80}); got != "accept" {
			t.Errorf("the rendered rules %s traffic to the new pod: the terminating pod's isolation leaked", got)
		}
	}
}
