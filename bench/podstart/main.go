// Command podstart measures pod start latency on a running local cluster:
// the time from creating a Pod to seeing it Running with an IP, as the
// API server reports it (a watch on the pods). Pods are created one at a
// time (sequential latency) and then in a burst.
//
//	podstart -kubeconfig /var/lib/podnet/podnet/kubeconfig -n 20 -burst 20
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "/var/lib/podnet/podnet/kubeconfig", "admin kubeconfig")
	n := flag.Int("n", 20, "pods created one at a time")
	burst := flag.Int("burst", 20, "pods created at once")
	flag.Parse()
	rc, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fail(err)
	}
	rc.QPS, rc.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		fail(err)
	}
	ns := fmt.Sprintf("podstart-%d", time.Now().Unix())
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		fail(err)
	}
	defer cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	// The service account controller must have made "default" first.
	for i := 0; i < 100; i++ {
		if _, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	seq := run(ctx, cs, ns, "seq", *n, 1)
	par := run(ctx, cs, ns, "burst", *burst, *burst)
	report("one at a time", seq)
	report(fmt.Sprintf("burst of %d", *burst), par)
}

func report(what string, d []time.Duration) {
	slices.Sort(d)
	if len(d) == 0 {
		fmt.Printf("%s: no samples\n", what)
		return
	}
	p := func(q int) time.Duration { return d[min(len(d)-1, (len(d)*q+99)/100-1)] }
	fmt.Printf("pod start (create -> Running with IP), %s: n=%d p50=%s p90=%s p99=%s max=%s\n",
		what, len(d), p(50).Round(time.Millisecond), p(90).Round(time.Millisecond), p(99).Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
}

// run creates total pods, parallel at a time, and returns each one's latency.
func run(ctx context.Context, cs kubernetes.Interface, ns, prefix string, total, parallel int) []time.Duration {
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		fail(err)
	}
	defer w.Stop()
	var mu sync.Mutex
	created := map[string]time.Time{}
	done := map[string]time.Duration{}
	finished := make(chan struct{}, total)
	go func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*v1.Pod)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			if p.Status.Phase == v1.PodRunning && p.Status.PodIP != "" {
				mu.Lock()
				if t0, ok := created[p.Name]; ok {
					if _, seen := done[p.Name]; !seen {
						done[p.Name] = time.Since(t0)
						finished <- struct{}{}
					}
				}
				mu.Unlock()
			}
		}
	}()
	for i := 0; i < total; i += parallel {
		k := min(parallel, total-i)
		for j := 0; j < k; j++ {
			name := fmt.Sprintf("%s-%d", prefix, i+j)
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.PodSpec{Containers: []v1.Container{{
				Name: "c", Image: "podnet/test", Ports: []v1.ContainerPort{{ContainerPort: 80}}}}}}
			mu.Lock()
			created[name] = time.Now()
			mu.Unlock()
			if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				fail(err)
			}
		}
		for j := 0; j < k; j++ {
			select {
			case <-finished:
			case <-time.After(2 * time.Minute):
				fail(fmt.Errorf("pods did not start within 2 minutes"))
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	out := make([]time.Duration, 0, len(done))
	for _, d := range done {
		out = append(out, d)
	}
	return out
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "podstart:", err)
	os.Exit(1)
}
