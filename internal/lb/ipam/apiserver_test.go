package ipam

// Control-plane tests: the CRD and the controller against a real
// kube-apiserver and etcd from tools/bin (skipped, saying so, when they are
// not built). The pool is 172.30.0.200/30 (four addresses), so that
// exhaustion is quick to reach.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/deploy/crds"
	"github.com/podnet/podnet/internal/kubeletapi/kubeletapitest"
	"github.com/podnet/podnet/internal/lb/pool"
)

type cluster struct {
	api    *kubeletapitest.APIServer
	client kubernetes.Interface
	dyn    dynamic.Interface
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	api := kubeletapitest.StartAPIServer(t, kubeletapitest.Start(t, nil))
	dyn, err := dynamic.NewForConfig(api.Admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pool.InstallCRDs(ctx, dyn, crds.All()...); err != nil {
		t.Fatal(err)
	}
	return &cluster{api: api, client: api.Client, dyn: dyn}
}

// startController runs a controller replica until the returned stop is
// called (or the test ends).
func (c *cluster) startController(t *testing.T, identity string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := RunConfig{LeaderElect: true, Identity: identity, LeaseDuration: 4 * time.Second,
		RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if testing.Verbose() {
		cfg.Log = slog.New(slog.NewTextHandler(&testWriter{t}, nil)).With("replica", identity)
	}
	go func() { done <- RunWithConfig(ctx, c.api.Admin, cfg) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller %s: %v", identity, err)
		}
	}
	t.Cleanup(stop)
	return stop
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (c *cluster) createPool(t *testing.T, name string, blocks ...pool.Block) error {
	t.Helper()
	_, err := pool.Create(context.Background(), c.dyn, &pool.Pool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: pool.Spec{Blocks: blocks}})
	return err
}

func (c *cluster) createService(t *testing.T, name string, annotations map[string]string, ports ...int32) {
	t.Helper()
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: annotations},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": name}}}
	for _, p := range ports {
		svc.Spec.Ports = append(svc.Spec.Ports, v1.ServicePort{Name: fmt.Sprint("p", p), Port: p, Protocol: v1.ProtocolTCP})
	}
	if _, err := c.client.CoreV1().Services("default").Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitService waits until ok holds for Service name, and returns it.
func (c *cluster) waitService(t *testing.T, name, what string, ok func(*v1.Service) bool) *v1.Service {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		svc, err := c.client.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && ok(svc) {
			return svc
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %s: not %s after 30s: %+v (err %v)", name, what, svc.Status, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ingress is the addresses in svc's status, with their ipMode.
func ingress(svc *v1.Service) string {
	var out []string
	for _, i := range svc.Status.LoadBalancer.Ingress {
		mode := "-"
		if i.IPMode != nil {
			mode = string(*i.IPMode)
		}
		out = append(out, i.IP+"/"+mode)
	}
	return strings.Join(out, ",")
}

func (c *cluster) waitIngress(t *testing.T, name, want string) {
	t.Helper()
	c.waitService(t, name, "at "+want, func(s *v1.Service) bool { return ingress(s) == want })
}

func TestPoolCRDRefusesBadPoolsWithAClearMessage(t *testing.T) {
	c := startCluster(t)
	tests := []struct {
		name   string
		blocks []pool.Block
		want   string
	}{
		{"no blocks", nil, "spec.blocks"},
		{"a cidr that is not one", []pool.Block{{CIDR: "172.30.0.300/29"}}, "cidr must be a prefix"},
		{"a cidr with host bits", []pool.Block{{CIDR: "172.30.0.201/29"}}, "cidr must not have host bits set"},
		{"both a cidr and a range", []pool.Block{{CIDR: "172.30.0.200/29", Start: "172.30.0.1", End: "172.30.0.2"}}, "either a cidr or a start and end range"},
		{"a range without end", []pool.Block{{Start: "172.30.0.1"}}, "a range needs both start and end"},
		{"a start that is no address", []pool.Block{{Start: "172.30.0", End: "172.30.0.2"}}, "start must be an IP address"},
		{"a range over two families", []pool.Block{{Start: "172.30.0.1", End: "fd00::1"}}, "start and end must be of one family"},
		{"a range that ends before it starts", []pool.Block{{Start: "172.30.0.20", End: "172.30.0.3"}}, "start must not be after end"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.createPool(t, fmt.Sprintf("bad-%d", i), tt.blocks...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error saying %q", err, tt.want)
			}
		})
	}
	for _, good := range [][]pool.Block{{{CIDR: "172.30.0.200/29"}, {CIDR: "fd00:30::/120"}},
		{{Start: "172.30.0.9", End: "172.30.0.10"}, {Start: "fd00::1", End: "fd00::2"}}} {
		if err := c.createPool(t, fmt.Sprintf("good-%d", len(good[0].CIDR)), good...); err != nil {
			t.Errorf("a good pool %+v is refused: %v", good, err)
		}
	}
}

func TestControllerAssignsSharesHonoursAndRunsOut(t *testing.T) {
	c := startCluster(t)
	if err := c.createPool(t, "default", pool.Block{CIDR: "172.30.0.200/30"}); err != nil {
		t.Fatal(err)
	}
	c.startController(t, "one")

	c.createService(t, "web", nil, 80)
	c.waitIngress(t, "web", "172.30.0.200/VIP")

	share := map[string]string{AnnotationSharingKey: "k"}
	c.createService(t, "http", share, 80)
	c.createService(t, "https", share, 443)
	c.waitIngress(t, "http", "172.30.0.201/VIP")
	c.waitIngress(t, "https", "172.30.0.201/VIP")

	c.createService(t, "asked", map[string]string{AnnotationIP: "172.30.0.203"}, 80)
	c.waitIngress(t, "asked", "172.30.0.203/VIP")
	c.createService(t, "last", nil, 80)
	c.waitIngress(t, "last", "172.30.0.202/VIP")

	c.createService(t, "toomany", nil, 80)
	svc := c.waitService(t, "toomany", "pending with a condition", func(s *v1.Service) bool {
		cond := meta.FindStatusCondition(s.Status.Conditions, ConditionAssigned)
		return cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == string(ReasonExhausted)
	})
	if len(svc.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("a pending Service has addresses: %s", ingress(svc))
	}
	waitEvent(t, c.client, "toomany", v1.EventTypeWarning, string(ReasonExhausted))
	waitPoolStatus(t, c.dyn, "default", 4, 0)
}

func waitEvent(t *testing.T, client kubernetes.Interface, svc, typ, reason string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		evs, err := client.CoreV1().Events("default").List(context.Background(),
			metav1.ListOptions{FieldSelector: "involvedObject.name=" + svc})
		if err == nil {
			for _, e := range evs.Items {
				if e.Type == typ && e.Reason == reason {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s Event %s for %s after 30s (err %v)", typ, reason, svc, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func waitPoolStatus(t *testing.T, dyn dynamic.Interface, name string, used, free int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := pool.Get(context.Background(), dyn, name)
		if err == nil && p.Status.Used == used && p.Status.Free == free {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool %s: want used %d free %d after 30s, have %+v (err %v)", name, used, free, p, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestControllerRestartKeepsEveryAddress stops the controller, frees the
// lowest address and starts another replica: the Services keep their
// addresses (a controller that did not rebuild from the status would hand
// them out again from the lowest), and the new Service gets the free one.
func TestControllerRestartKeepsEveryAddress(t *testing.T) {
	c := startCluster(t)
	if err := c.createPool(t, "default", pool.Block{CIDR: "172.30.0.200/30"}); err != nil {
		t.Fatal(err)
	}
	stop := c.startController(t, "first")
	for i, name := range []string{"a", "b", "c"} {
		c.createService(t, name, nil, 80)
		c.waitIngress(t, name, fmt.Sprintf("172.30.0.%d/VIP", 200+i))
	}
	stop()
	if err := c.client.CoreV1().Services("default").Delete(context.Background(), "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.createService(t, "d", nil, 80)
	c.startController(t, "second")
	c.waitIngress(t, "d", "172.30.0.200/VIP")
	for i, name := range []string{"b", "c"} {
		c.waitIngress(t, name, fmt.Sprintf("172.30.0.%d/VIP", 201+i))
	}
	waitPoolStatus(t, c.dyn, "default", 3, 1)
}
