package podruntime

// Fixture conventions: namespace "shop", pod "web" with UID
// 0f8fad5b-d9cb-469f-a165-70867728950e, pod IP 10.244.1.5, node IP
// 172.30.0.11, cluster DNS 10.96.0.10, domain cluster.local.

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

const testUID = "0f8fad5b-d9cb-469f-a165-70867728950e"

func testPod() *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: testUID, Labels: map[string]string{"app": "web"}},
		Spec: v1.PodSpec{NodeName: "node-1", Containers: []v1.Container{{Name: "c", Ports: []v1.ContainerPort{
			{ContainerPort: 80}, {ContainerPort: 53, Protocol: v1.ProtocolUDP}, {ContainerPort: 9, Protocol: v1.ProtocolSCTP}}}}},
	}
}

func TestExpandFollowsTheKubeletRules(t *testing.T) {
	env := map[string]string{"A": "1", "B": "two"}
	for _, tc := range []struct{ in, want string }{
		{"$(A)", "1"},
		{"x$(A)y$(B)z", "x1ytwoz"},
		{"$(MISSING)", "$(MISSING)"},
		{"$$(A)", "$(A)"},
		{"$(A", "$(A"},
		{"cost $5", "cost $5"},
		{"", ""},
	} {
		if got := expand(tc.in, env); got != tc.want {
			t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestContainerEnvHasFieldRefsServicesAndComposition(t *testing.T) {
	cs := fake.NewSimpleClientset(
		&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db-main", Namespace: "shop"},
			Spec: v1.ServiceSpec{ClusterIP: "10.96.3.4", Ports: []v1.ServicePort{{Name: "pg", Port: 5432, Protocol: v1.ProtocolTCP}}}},
		&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "headless", Namespace: "shop"},
			Spec: v1.ServiceSpec{ClusterIP: v1.ClusterIPNone, Ports: []v1.ServicePort{{Port: 1}}}},
		&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"},
			Spec: v1.ServiceSpec{ClusterIP: "10.96.0.1", Ports: []v1.ServicePort{{Name: "https", Port: 443, Protocol: v1.ProtocolTCP}}}},
		&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere", Namespace: "other"},
			Spec: v1.ServiceSpec{ClusterIP: "10.96.9.9", Ports: []v1.ServicePort{{Port: 1}}}},
	)
	f := informers.NewSharedInformerFactory(cs, 0)
	lister := f.Core().V1().Services().Lister()
	for _, o := range []string{"shop/db-main", "shop/headless", "default/kubernetes", "other/elsewhere"} {
		ns, name, _ := strings.Cut(o, "/")
		s, _ := cs.CoreV1().Services(ns).Get(t.Context(), name, metav1.GetOptions{})
		_ = f.Core().V1().Services().Informer().GetStore().Add(s)
	}
	pod := testPod()
	c := &v1.Container{Name: "c", Env: []v1.EnvVar{
		{Name: "X", Value: "x"}, {Name: "Y", Value: "$(X)-$(DB_MAIN_SERVICE_HOST)"},
		{Name: "IP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: "APP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
	}}
	got := strings.Join(containerEnv(pod, c, []netip.Addr{netip.MustParseAddr("10.244.1.5")}, netip.MustParseAddr("172.30.0.11"), lister), "\n") + "\n"
	for _, want := range []string{
		"X=x", "Y=x-10.96.3.4", "IP=10.244.1.5", "APP=web", "HOSTNAME=web",
		"DB_MAIN_SERVICE_HOST=10.96.3.4", "DB_MAIN_SERVICE_PORT=5432", "DB_MAIN_SERVICE_PORT_PG=5432",
		"DB_MAIN_PORT=tcp://10.96.3.4:5432", "DB_MAIN_PORT_5432_TCP_ADDR=10.96.3.4", "DB_MAIN_PORT_5432_TCP_PROTO=tcp",
		"KUBERNETES_SERVICE_HOST=10.96.0.1", "KUBERNETES_SERVICE_PORT=443",
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("env lacks %s", want)
		}
	}
	for _, absent := range []string{"HEADLESS_", "ELSEWHERE_"} {
		if strings.Contains(got, absent) {
			t.Errorf("env has %s*: headless Services and other namespaces give no variables", absent)
		}
	}
	pod.Spec.EnableServiceLinks = ptr.To(false)
	got = strings.Join(containerEnv(pod, c, nil, netip.Addr{}, lister), "\n")
	if strings.Contains(got, "DB_MAIN_SERVICE_HOST=") || !strings.Contains(got, "KUBERNETES_SERVICE_HOST=") {
		t.Errorf("enableServiceLinks=false: want only the kubernetes Service's variables, got\n%s", got)
	}
}

func TestResolvConfPerDNSPolicy(t *testing.T) {
	// The node's resolver, as podnet up writes it: the world's DNS server.
	host := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(host, []byte("# node\nnameserver 203.0.113.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &Runtime{cfg: Config{ClusterDNS: []netip.Addr{netip.MustParseAddr("10.96.0.10")}, ClusterDomain: "cluster.local", HostResolvConf: host}}
	const cluster = "nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
	for _, tc := range []struct {
		name   string
		mutate func(*v1.Pod)
		want   string
	}{
		{"ClusterFirst (the default) searches the pod's namespace first", nil, cluster},
		{"explicit ClusterFirst", func(p *v1.Pod) { p.Spec.DNSPolicy = v1.DNSClusterFirst }, cluster},
		{"host-network pods with ClusterFirst get the node's resolver, as with the kubelet", func(p *v1.Pod) { p.Spec.HostNetwork = true },
			"nameserver 203.0.113.53\n"},
		{"ClusterFirstWithHostNet keeps the cluster resolver for host-network pods", func(p *v1.Pod) {
			p.Spec.HostNetwork, p.Spec.DNSPolicy = true, v1.DNSClusterFirstWithHostNet
		}, cluster},
		{"ClusterFirstWithHostNet on a pod network pod is ClusterFirst", func(p *v1.Pod) { p.Spec.DNSPolicy = v1.DNSClusterFirstWithHostNet }, cluster},
		{"Default is the node's resolver (the world's server, never the host's)", func(p *v1.Pod) { p.Spec.DNSPolicy = v1.DNSDefault },
			"nameserver 203.0.113.53\n"},
		{"Default merges dnsConfig", func(p *v1.Pod) {
			p.Spec.DNSPolicy = v1.DNSDefault
			p.Spec.DNSConfig = &v1.PodDNSConfig{Searches: []string{"example.com"}, Options: []v1.PodDNSConfigOption{{Name: "edns0"}}}
		}, "nameserver 203.0.113.53\nsearch example.com\noptions edns0\n"},
		{"None takes only dnsConfig", func(p *v1.Pod) {
			p.Spec.DNSPolicy = v1.DNSNone
			p.Spec.DNSConfig = &v1.PodDNSConfig{Nameservers: []string{"203.0.113.53"}, Searches: []string{"example.test"},
				Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}, {Name: "edns0"}}}
		}, "nameserver 203.0.113.53\nsearch example.test\noptions ndots:2 edns0\n"},
		{"None without dnsConfig is empty", func(p *v1.Pod) { p.Spec.DNSPolicy = v1.DNSNone }, ""},
		{"ClusterFirst merges dnsConfig: servers and searches appended without duplicates, options by name", func(p *v1.Pod) {
			p.Spec.DNSConfig = &v1.PodDNSConfig{
				Nameservers: []string{"10.96.0.10", "203.0.113.53"},
				Searches:    []string{"svc.cluster.local", "example.com"},
				Options:     []v1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}, {Name: "single-request-reopen"}, {Name: "timeout", Value: ptr.To("1")}},
			}
		}, "nameserver 10.96.0.10\nnameserver 203.0.113.53\nsearch shop.svc.cluster.local svc.cluster.local cluster.local example.com\noptions ndots:2 single-request-reopen timeout:1\n"},
		{"at most three nameservers", func(p *v1.Pod) {
			p.Spec.DNSConfig = &v1.PodDNSConfig{Nameservers: []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}}
		}, "nameserver 10.96.0.10\nnameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPod()
			if tc.mutate != nil {
				tc.mutate(p)
			}
			if got := r.resolvConf(p); got != tc.want {
				t.Errorf("resolv.conf:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestResolvConfWithoutClusterDNSOrNodeResolver(t *testing.T) {
	// No cluster DNS: ClusterFirst falls back to Default, as with the
	// kubelet; no node resolver file: Default is empty (never this
	// machine's /etc/resolv.conf).
	r := &Runtime{cfg: Config{ClusterDomain: "cluster.local", HostResolvConf: filepath.Join(t.TempDir(), "missing")}}
	if got := r.resolvConf(testPod()); got != "" {
		t.Errorf("resolv.conf = %q, want empty", got)
	}
	r.cfg.HostResolvConf = ""
	p := testPod()
	p.Spec.DNSPolicy = v1.DNSDefault
	if got := r.resolvConf(p); got != "" {
		t.Errorf("resolv.conf = %q, want empty", got)
	}
}

func TestResolvConfSearchesFollowTheNodesAndFitTheLimits(t *testing.T) {
	host := parseResolvConf("domain ignored.example\nsearch corp.example. lab.example # comment\nnameserver 192.0.2.53\noptions rotate timeout:2\n")
	if got, want := fmt.Sprint(host), "{[192.0.2.53] [corp.example lab.example] [rotate timeout:2]}"; got != want {
		t.Fatalf("parseResolvConf = %s, want %s", got, want)
	}
	p := testPod()
	c := podDNSConfig(p, []netip.Addr{netip.MustParseAddr("10.96.0.10")}, "cluster.local", host)
	if got, want := strings.Join(c.searches, " "), "shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example"; got != want {
		t.Errorf("ClusterFirst searches %q, want %q (the node's follow the cluster's)", got, want)
	}
	if got := strings.Join(c.options, " "); got != "ndots:5" {
		t.Errorf("ClusterFirst options %q, want only ndots:5 (the node's options are not inherited)", got)
	}
	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf("d%d.example", i))
	}
	p.Spec.DNSConfig = &v1.PodDNSConfig{Searches: many}
	c = podDNSConfig(p, []netip.Addr{netip.MustParseAddr("10.96.0.10")}, "cluster.local", dnsConfig{})
	if len(c.searches) != maxDNSSearches {
		t.Errorf("%d search domains, want at most %d", len(c.searches), maxDNSSearches)
	}
}

func TestHostsFileNamesThePod(t *testing.T) {
	p := testPod()
	p.Spec.Hostname, p.Spec.Subdomain = "db-0", "db"
	p.Spec.HostAliases = []v1.HostAlias{{IP: "203.0.113.9", Hostnames: []string{"example.test", "www.example.test"}}}
	got := hostsFile(p, []netip.Addr{netip.MustParseAddr("10.244.1.5")}, "cluster.local")
	for _, want := range []string{"127.0.0.1\tlocalhost\n", "10.244.1.5\tdb-0.db.shop.svc.cluster.local\tdb-0\n", "203.0.113.9\texample.test\twww.example.test\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("hosts lacks %q:\n%s", want, got)
		}
	}
}

func TestBuiltInServerServesTheDeclaredPorts(t *testing.T) {
	r := &Runtime{cfg: Config{Self: "/usr/bin/podnet"}}
	p := testPod()
	got := strings.Join(r.argv(p, &p.Spec.Containers[0], nil), " ")
	if want := "/usr/bin/podnet serve --name web --tcp 80 --udp 53"; got != want {
		t.Errorf("argv = %q, want %q (SCTP is skipped: no SCTP in this kernel)", got, want)
	}
	c := &v1.Container{Name: "c", Command: []string{"sh", "-c"}, Args: []string{"echo $(X)"}}
	if got := strings.Join(r.argv(p, c, []string{"X=hi"}), " "); got != "sh -c echo hi" {
		t.Errorf("argv = %q, want the command with $(X) expanded", got)
	}
}

func TestRestartPolicy(t *testing.T) {
	for _, tc := range []struct {
		policy v1.RestartPolicy
		code   int
		want   bool
	}{
		{v1.RestartPolicyAlways, 0, true}, {v1.RestartPolicyAlways, 1, true},
		{v1.RestartPolicyOnFailure, 0, false}, {v1.RestartPolicyOnFailure, 2, true},
		{v1.RestartPolicyNever, 0, false}, {v1.RestartPolicyNever, 2, false},
		{"", 0, true},
	} {
		if got := shouldRestart(tc.policy, tc.code); got != tc.want {
			t.Errorf("shouldRestart(%q, %d) = %v, want %v", tc.policy, tc.code, got, tc.want)
		}
	}
}

func TestNetNSNameIsTwelveHexOfTheUID(t *testing.T) {
	if got, want := NetNSName("podnet-pod-", testUID), "podnet-pod-0f8fad5bd9cb"; got != want {
		t.Errorf("NetNSName = %q, want %q", got, want)
	}
}
