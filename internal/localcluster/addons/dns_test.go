package addons

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	podnetdns "github.com/podnet/podnet/internal/dns"
	"github.com/podnet/podnet/internal/localcluster/controlplane"
	"github.com/podnet/podnet/internal/localcluster/internal/lctest"
	"github.com/podnet/podnet/internal/localcluster/plan"
)

func TestDNSObjectsFollowTheContract(t *testing.T) {
	cfg := plan.DefaultConfig("pnt")
	cfg.StateDir = "/var/lib/podnet/pnt"
	dep, svc := DNSObjects(cfg, "/opt/podnet/bin/podnet")

	if dep.Namespace != "kube-system" || dep.Name != "podnet-dns" || *dep.Spec.Replicas != 2 {
		t.Errorf("Deployment %s/%s with %d replicas, want kube-system/podnet-dns with 2", dep.Namespace, dep.Name, *dep.Spec.Replicas)
	}
	if got := dep.Spec.Selector.MatchLabels["k8s-app"]; got != "kube-dns" {
		t.Errorf("selector k8s-app=%q, want kube-dns", got)
	}
	ps := dep.Spec.Template.Spec
	if ps.Containers[0].Name == "" || dep.Spec.Template.Labels["k8s-app"] != "kube-dns" {
		t.Errorf("pod template labels %v", dep.Spec.Template.Labels)
	}
	if ps.ServiceAccountName != "" || ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Errorf("pods use a service account (%q, automount %v); want the client certificate only", ps.ServiceAccountName, ps.AutomountServiceAccountToken)
	}
	if ps.DNSPolicy != corev1.DNSDefault {
		t.Errorf("dnsPolicy %q, want Default (the DNS server must not resolve through itself)", ps.DNSPolicy)
	}
	c := ps.Containers[0]
	want := "/opt/podnet/bin/podnet dns --kubeconfig /var/lib/podnet/pnt/dns.kubeconfig --listen :53 --zone cluster.local --upstream 203.0.113.53:53 --health-listen :8080"
	if got := strings.Join(c.Command, " "); got != want {
		t.Errorf("command\n  %s\nwant\n  %s", got, want)
	}
	ports := map[string]string{}
	for _, p := range c.Ports {
		ports[p.Name] = strconv.Itoa(int(p.ContainerPort)) + "/" + string(p.Protocol)
	}
	if ports["dns"] != "53/UDP" || ports["dns-tcp"] != "53/TCP" || ports["metrics"] != "8080/TCP" {
		t.Errorf("container ports %v", ports)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/ready" || p.HTTPGet.Port.IntValue() != 8080 {
		t.Errorf("readiness probe %+v, want httpGet /ready :8080", p)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/health" || p.HTTPGet.Port.IntValue() != 8080 {
		t.Errorf("liveness probe %+v, want httpGet /health :8080", p)
	}

	if svc.Namespace != "kube-system" || svc.Name != "kube-dns" || svc.Spec.ClusterIP != "10.96.0.10" || svc.Labels["k8s-app"] != "kube-dns" {
		t.Errorf("Service %s/%s %s labels %v, want kube-system/kube-dns 10.96.0.10 k8s-app=kube-dns", svc.Namespace, svc.Name, svc.Spec.ClusterIP, svc.Labels)
	}
	var sp []string
	for _, p := range svc.Spec.Ports {
		sp = append(sp, p.Name+" "+strconv.Itoa(int(p.Port))+"/"+string(p.Protocol)+"->"+p.TargetPort.String())
	}
	if got := strings.Join(sp, ", "); got != "dns 53/UDP->dns, dns-tcp 53/TCP->dns-tcp" {
		t.Errorf("Service ports %s", got)
	}
	if svc.Spec.Selector["k8s-app"] != "kube-dns" {
		t.Errorf("Service selector %v", svc.Spec.Selector)
	}
}

func TestDNSAddressesFollowTheAddressPlan(t *testing.T) {
	cfg := plan.DefaultConfig("pnt")
	cfg.ServiceCIDR = netip.MustParsePrefix("10.211.0.0/16")
	cfg.WorldNetwork = netip.MustParsePrefix("198.18.55.0/24")
	cfg.WorldDNSIP = netip.MustParseAddr("198.18.55.53")
	_, svc := DNSObjects(cfg, "/podnet")
	if svc.Spec.ClusterIP != "10.211.0.10" {
		t.Errorf("kube-dns ClusterIP %s, want the 10th service address 10.211.0.10", svc.Spec.ClusterIP)
	}
	if got := strings.Join(DNSArgv(cfg, "/podnet"), " "); !strings.Contains(got, "--upstream 198.18.55.53:53") {
		t.Errorf("DNS argv %q does not forward to the world's server", got)
	}
	if got := NodeResolvConf(cfg); !strings.Contains(got, "\nnameserver 198.18.55.53\n") || strings.Count(got, "nameserver") != 1 {
		t.Errorf("node resolv.conf %q, want only the world's server", got)
	}
	if got := strings.Join(WorldDNSArgv(cfg, "/podnet"), " "); got != "/podnet world-dns --listen 198.18.55.53:53 --zone example.com --address 198.18.55.1" {
		t.Errorf("world DNS argv %q", got)
	}
}

func worldQuery(t *testing.T, w *WorldDNS, name string, qtype uint16) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	return w.Answer(q)
}

func TestWorldDNSAnswersItsZoneAndRefusesTheRest(t *testing.T) {
	w := &WorldDNS{Zone: "example.com", Address: netip.MustParseAddr("203.0.113.1"), NSAddress: netip.MustParseAddr("203.0.113.53")}
	for _, tc := range []struct {
		name   string
		qtype  uint16
		rcode  int
		answer string // the answer's records, rdata only, joined by ", "
		soa    bool   // SOA in the authority section
	}{
		{"example.com.", dns.TypeA, dns.RcodeSuccess, "203.0.113.1", false},
		{"WWW.Example.COM.", dns.TypeA, dns.RcodeSuccess, "203.0.113.1", false},
		{"ns.example.com.", dns.TypeA, dns.RcodeSuccess, "203.0.113.53", false},
		{"example.com.", dns.TypeTXT, dns.RcodeSuccess, `"podnet outside world"`, false},
		{"example.com.", dns.TypeNS, dns.RcodeSuccess, "ns.example.com.", false},
		{"www.example.com.", dns.TypeAAAA, dns.RcodeSuccess, "", true},
		{"nosuch.example.com.", dns.TypeA, dns.RcodeNameError, "", true},
		{"kubernetes.io.", dns.TypeA, dns.RcodeRefused, "", false},
		{"notexample.com.", dns.TypeA, dns.RcodeRefused, "", false},
		{"1.113.0.203.in-addr.arpa.", dns.TypePTR, dns.RcodeRefused, "", false},
	} {
		m := worldQuery(t, w, tc.name, tc.qtype)
		var got []string
		for _, rr := range m.Answer {
			if rr.Header().Name != tc.name {
				t.Errorf("%s: answer owner %q, want the question's name", tc.name, rr.Header().Name)
			}
			got = append(got, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
		if m.Rcode != tc.rcode || strings.Join(got, ", ") != tc.answer || (len(m.Ns) == 1) != tc.soa {
			t.Errorf("%s %s: %s %q authority %v, want %s %q soa=%v", tc.name, dns.TypeToString[tc.qtype],
				dns.RcodeToString[m.Rcode], got, m.Ns, dns.RcodeToString[tc.rcode], tc.answer, tc.soa)
		}
		if m.Rcode != dns.RcodeRefused && !m.Authoritative {
			t.Errorf("%s: not authoritative", tc.name)
		}
		if m.RecursionAvailable {
			t.Errorf("%s: offers recursion; it never asks anyone", tc.name)
		}
	}
}

func TestWorldDNSServesUDPAndTCP(t *testing.T) {
	// A free loopback port: the server is the same code podnet up runs in
	// the world namespace.
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.LocalAddr().String()
	l.Close()
	w := &WorldDNS{Zone: "example.com", Address: netip.MustParseAddr("203.0.113.1"), NSAddress: netip.MustParseAddr("203.0.113.53")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Serve(ctx, addr) }()
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: time.Second}
		q := new(dns.Msg)
		q.SetQuestion("www.example.com.", dns.TypeA)
		var r *dns.Msg
		deadline := time.Now().Add(5 * time.Second)
		for {
			r, _, err = c.Exchange(q, addr)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "203.0.113.1" {
			t.Errorf("%s query: %v %v", network, err, r)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Serve did not return after its context ended")
	}
}

// startControlPlane starts a control plane on loopback (free ports, state
// in t.TempDir(), the service range 10.96.0.0/16 existing only in the
// API), stopped in t.Cleanup. It skips without root or tools/bin.
func startControlPlane(ctx context.Context, t *testing.T) (*controlplane.ControlPlane, kubernetes.Interface) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("control-plane test: needs root (it runs etcd and kube-apiserver as the contract's root-only state)")
	}
	if err := controlplane.CheckBinaries(lctest.ToolsBin()); err != nil {
		t.Skipf("control-plane test: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cp, err := controlplane.Start(ctx, controlplane.Config{
		ClusterName: "pnt-dns", StateDir: t.TempDir(), BinDir: lctest.ToolsBin(),
		APIAddress: netip.MustParseAddr("127.0.0.1"), APIPort: port,
		ServiceCIDR: netip.MustParsePrefix("10.96.0.0/16"), PodCIDR: netip.MustParsePrefix("10.244.0.0/16"),
		Timeout: 90 * time.Second, Progress: func(s string) { t.Log(s) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Error(err)
		}
	})
	rc, err := cp.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cp, kubernetes.NewForConfigOrDie(rc)
}

// TestDNSDeployedAtTheTenthServiceIPReadsOnlyWhatItNeeds deploys the
// cluster DNS against a real API server and checks its identity: it reads
// what it needs and nothing else.
func TestDNSDeployedAtTheTenthServiceIPReadsOnlyWhatItNeeds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cp, admin := startControlPlane(ctx, t)
	cfg := plan.DefaultConfig(cp.Config.ClusterName)
	cfg.StateDir, cfg.ServiceCIDR, cfg.RootIP, cfg.APIServerPort = cp.Config.StateDir, cp.Config.ServiceCIDR, cp.Config.APIAddress, cp.Config.APIPort
	if err := DeployDNS(ctx, cfg, admin, "/usr/local/bin/podnet"); err != nil {
		t.Fatal(err)
	}
	// Twice: up may run it on leftovers.
	if err := DeployDNS(ctx, cfg, admin, "/usr/local/bin/podnet"); err != nil {
		t.Fatalf("second DeployDNS: %v", err)
	}
	svc, err := admin.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	if err != nil || svc.Spec.ClusterIP != cfg.DNSServiceIP().String() {
		t.Errorf("kube-dns: %v, ClusterIP %v, want %s", err, svc.Spec.ClusterIP, cfg.DNSServiceIP())
	}
	dep, err := admin.AppsV1().Deployments("kube-system").Get(ctx, "podnet-dns", metav1.GetOptions{})
	if err != nil || *dep.Spec.Replicas != 2 {
		t.Errorf("podnet-dns Deployment: %v", err)
	}

	rc, err := clientcmd.BuildConfigFromFlags("", DNSKubeconfigPath(cfg.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	dnsClient := kubernetes.NewForConfigOrDie(rc)
	who, err := dnsClient.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if u := who.Status.UserInfo; u.Username != DNSUser || slices.Contains(u.Groups, "system:masters") {
		t.Errorf("DNS authenticated as %q in %q", u.Username, u.Groups)
	}
	if _, err := dnsClient.CoreV1().Services("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("DNS cannot list services: %v", err)
	}
	if _, err := dnsClient.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("DNS cannot list endpointslices: %v", err)
	}
	if _, err := dnsClient.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("DNS cannot list pods: %v", err)
	}
	if _, err := dnsClient.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("DNS cannot list namespaces: %v", err)
	}
	if _, err := dnsClient.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("DNS cannot list nodes: %v", err)
	}
	if _, err := dnsClient.NetworkingV1().ServiceCIDRs().List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("DNS cannot list servicecidrs: %v", err)
	}
	cpTestDNSServerSyncs(ctx, t, dnsClient)
	if _, err := dnsClient.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("DNS listing secrets: %v, want Forbidden", err)
	}
	if err := dnsClient.CoreV1().Services("kube-system").Delete(ctx, "kube-dns", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("DNS deleting a Service: %v, want Forbidden", err)
	}
}

// cpTestDNSServerSyncs runs the DNS server with exactly the DNS pods'
// credentials: it gets ready only once every informer it runs could list
// and watch. Its upstream is a loopback port nobody answers on, so a
// reverse name it forwards gets SERVFAIL; one inside the ServiceCIDR the
// API server made from --service-cluster-ip-range gets NXDOMAIN.
func cpTestDNSServerSyncs(ctx context.Context, t *testing.T, client kubernetes.Interface) {
	runCtx, stop := context.WithCancel(ctx)
	addrs, done := make(chan [2]net.Addr, 1), make(chan error, 1)
	go func() {
		done <- podnetdns.RunWithClient(runCtx, client, podnetdns.RunConfig{Listen: "127.0.0.1:0",
			HealthListen: "127.0.0.1:0", Upstreams: []string{"127.0.0.1:1"}, UpstreamTimeout: time.Second,
			Listening: func(d, h net.Addr) { addrs <- [2]net.Addr{d, h} }})
	}()
	var a [2]net.Addr
	select {
	case a = <-addrs:
	case err := <-done:
		stop()
		t.Fatalf("DNS server ended before listening: %v", err)
	}
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("DNS server: %v", err)
		}
	}()
	lctest.Eventually(t, 30*time.Second, "the DNS server ready with its own credentials", func() error {
		resp, err := http.Get("http://" + a[1].String() + "/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	})
	for name, rcode := range map[string]int{"99.0.96.10.in-addr.arpa.": dns.RcodeNameError, "1.2.0.192.in-addr.arpa.": dns.RcodeServerFailure} {
		m := new(dns.Msg).SetQuestion(name, dns.TypePTR)
		if r, err := dns.Exchange(m, a[0].String()); err != nil || r.Rcode != rcode {
			t.Errorf("PTR %s: %v %v, want %s", name, r, err, dns.RcodeToString[rcode])
		}
	}
}
