package dns_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/podnet/podnet/internal/dns"
)

// TestRunFollowsTheAPI runs the whole server against a fake clientset:
// the informers' objects become records, a new Service shows up after the
// rate-limited rebuild, and /ready turns 200.
func TestRunFollowsTheAPI(t *testing.T) {
	svcs, sls := serverFixture()
	client := fake.NewClientset(svcs[0], svcs[1], sls[0])
	up := startUpstream(t)
	dnsAddr, healthAddr := startRun(t, client, dns.RunConfig{Upstreams: []string{up.addr}, CacheSize: 10, PodMode: dns.PodsVerified})
	ctx := t.Context()

	waitFor := func(name string, want int) *mdns.Msg {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := exchange(t, "tcp", dnsAddr, query(name, mdns.TypeA, 0, false))
			if r.Rcode == mdns.RcodeSuccess && len(r.Answer) == want {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: rcode %s, %d answers; want NOERROR with %d", name, mdns.RcodeToString[r.Rcode], len(r.Answer), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("web.default.svc.cluster.local.", 1)
	waitFor("many.default.svc.cluster.local.", manyEndpoints)
	waitFor("www.example.org.", 1)

	resp, err := http.Get("http://" + healthAddr + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/ready %d after the zone answered, want 200", resp.StatusCode)
	}

	api := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "api"},
		Spec: v1.ServiceSpec{ClusterIP: "10.96.0.30", ClusterIPs: []string{"10.96.0.30"}}}
	if _, err := client.CoreV1().Services("kube-system").Create(ctx, api, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("api.kube-system.svc.cluster.local.", 1)

	// Verified pod records follow the Pods.
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p"},
		Status: v1.PodStatus{PodIP: "10.244.1.77", PodIPs: []v1.PodIP{{IP: "10.244.1.77"}}}}
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("10-244-1-77.default.pod.cluster.local.", 1)
}

// startRun runs RunWithClient on loopback with cfg (Listen and
// HealthListen set here) until the test ends, and returns the DNS and
// health addresses once it listens.
func startRun(t *testing.T, client *fake.Clientset, cfg dns.RunConfig) (dnsAddr, healthAddr string) {
	t.Helper()
	cfg.Listen, cfg.HealthListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	addrs := make(chan [2]net.Addr, 1)
	cfg.Listening = func(d, h net.Addr) { addrs <- [2]net.Addr{d, h} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dns.RunWithClient(ctx, client, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case a := <-addrs:
		return a[0].String(), a[1].String()
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("Run ended before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run never listened")
	}
	return "", ""
}

// TestRunLearnsTheClusterRangesFromTheAPI: the ServiceCIDRs and the Nodes'
// pod CIDRs decide which reverse names are answered here. A PTR question
// for a pod address is forwarded until a Node holds its range, and then
// answered NXDOMAIN by the server itself.
func TestRunLearnsTheClusterRangesFromTheAPI(t *testing.T) {
	svcs, _ := serverFixture()
	cidr := &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"},
		Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.96.0.0/16"}}}
	client := fake.NewClientset(svcs[0], cidr)
	up := startUpstream(t)
	dnsAddr, _ := startRun(t, client, dns.RunConfig{Upstreams: []string{up.addr}})
	ask := func(name string) (int, bool) {
		r := exchange(t, "udp", dnsAddr, query(name, mdns.TypePTR, 0, false))
		return r.Rcode, r.Authoritative
	}
	waitRcode := func(name string, rcode int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, aa := ask(name)
			if got == rcode && aa {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: rcode %s AA %v, want %s from the zone", name, mdns.RcodeToString[got], aa, mdns.RcodeToString[rcode])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The service range is known once the informers have synced.
	waitRcode("99.0.96.10.in-addr.arpa.", mdns.RcodeNameError)
	if n := up.count("99.0.96.10.in-addr.arpa.", "udp"); n != 0 {
		t.Errorf("a name in the ServiceCIDR reached the upstream %d times", n)
	}
	// No Node has 10.244.1.0/24 yet: forwarded (the upstream's PTR).
	const pod = "5.1.244.10.in-addr.arpa."
	if rcode, aa := ask(pod); rcode != mdns.RcodeSuccess || aa || up.count(pod, "udp") != 1 {
		t.Fatalf("%s before its Node: rcode %s AA %v, upstream asked %d times; want it forwarded",
			pod, mdns.RcodeToString[rcode], aa, up.count(pod, "udp"))
	}
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Spec: v1.NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24"}}}
	if _, err := client.CoreV1().Nodes().Create(t.Context(), node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRcode(pod, mdns.RcodeNameError)
}
