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
	addrs := make(chan [2]net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- dns.RunWithClient(ctx, client, dns.RunConfig{
			Listen: "127.0.0.1:0", HealthListen: "127.0.0.1:0", Upstreams: []string{up.addr}, CacheSize: 10,
			PodMode:   dns.PodsVerified,
			Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
			Listening: func(d, h net.Addr) { addrs <- [2]net.Addr{d, h} },
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var dnsAddr, healthAddr string
	select {
	case a := <-addrs:
		dnsAddr, healthAddr = a[0].String(), a[1].String()
	case err := <-done:
		t.Fatalf("Run ended before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run never listened")
	}

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
