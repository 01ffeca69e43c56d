package podruntime

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

// A restarted runtime must not build a container's environment before its
// Service cache is complete: the container would start without the
// *_SERVICE_HOST variables of Services that exist (the kubelet waits for
// its Service cache too). Here the Service list answers late.
func TestNoContainerEnvBeforeTheServiceCacheSynced(t *testing.T) {
	pod := testPod()
	client := fake.NewClientset(pod, &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"},
		Spec: v1.ServiceSpec{ClusterIP: "10.96.3.4", Ports: []v1.ServicePort{{Port: 5432, Protocol: v1.ProtocolTCP}}}})
	var released atomic.Bool
	listing := make(chan struct{})
	var once sync.Once
	// Fails until released; the reflector retries. (A reactor must not
	// block: the fake clientset holds its lock while reactors run.)
	client.PrependReactor("list", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		once.Do(func() { close(listing) })
		if !released.Load() {
			return true, nil, errors.New("not yet")
		}
		return false, nil, nil
	})
	r := &Runtime{cfg: Config{NodeName: "node-1"}, client: client, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	envs := make(chan []string, 10)
	h := cache.ResourceEventHandlerFuncs{AddFunc: func(o any) {
		p := o.(*v1.Pod)
		envs <- containerEnv(p, &p.Spec.Containers[0], nil, netip.MustParseAddr("172.30.0.11"), r.svcLister)
	}}
	ctx, cancel := context.WithCancel(context.Background())
	var watchErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchErr = r.watch(ctx, h)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-listing:
	case <-time.After(10 * time.Second):
		t.Fatal("the Service informer never listed")
	}
	// The pod list answers at once: an env built now lacks the Service.
	select {
	case env := <-envs:
		t.Fatalf("a container environment was built before the Service cache synced (has DB_SERVICE_HOST: %v)",
			slices.Contains(env, "DB_SERVICE_HOST=10.96.3.4"))
	case <-time.After(time.Second):
	}
	released.Store(true)
	select {
	case env := <-envs:
		if !slices.Contains(env, "DB_SERVICE_HOST=10.96.3.4") {
			t.Errorf("the environment lacks DB_SERVICE_HOST: %v", env)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pod never reached the handler")
	}
	<-done
	if watchErr != nil {
		t.Errorf("watch: %v", watchErr)
	}
}
