package proxy

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"

	"github.com/podnet/podnet/internal/controller"
)

// agentBenchSizes are the Service counts of BenchmarkAgentServiceChange
// (-agent-bench-services=1000,10000,100000).
var (
	agentBenchSizes = flag.String("agent-bench-services", "1000,10000", "Service counts of BenchmarkAgentServiceChange")
	agentBenchHeap  = flag.String("agent-bench-heapprofile", "", "write the heap profile after the changes to this file (with the size appended)")
)

// BenchmarkAgentServiceChange measures the agent's proxy sync of one
// EndpointSlice change (one endpoint replaced) with N Services of 10
// endpoints each, everything of the agent but the kernel: a fake clientset
// holds the objects as the API server stores them (managedFields, owner
// references, target references, annotations), the agent's informers with
// its transform cache them, and the proxy's sync (PortCache, Syncer,
// metrics, health) runs against a table writer that discards what it is
// given. It reports the p50 and p99 of the sync after a change and the
// heap the agent holds (the Go heap in use after a GC, minus the fake API
// server's copy of the objects, measured before the informers started).
//
//	go test -run x -bench AgentServiceChange -benchtime 200x ./internal/proxy -agent-bench-services 1000,10000,100000
func BenchmarkAgentServiceChange(b *testing.B) {
	for _, f := range strings.Split(*agentBenchSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) { benchAgentChange(b, n, 10) })
	}
}

func benchAgentChange(b *testing.B, n, e int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset()
	for i := 0; i < n; i++ {
		svc, sl := benchObjects(i, e)
		if err := client.Tracker().Add(svc); err != nil {
			b.Fatal(err)
		}
		if err := client.Tracker().Add(sl); err != nil {
			b.Fatal(err)
		}
	}
	if err := client.Tracker().Add(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"},
		Status: v1.NodeStatus{Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "172.30.0.11"}}}}); err != nil {
		b.Fatal(err)
	}
	apiHeap := heapInUse()

	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(controller.Transform))
	d := controller.Deps{Client: client, Factory: factory, Metrics: controller.NewMetrics()}
	p, spec, err := newProxySync(d, NewMetrics(), ControllerConfig{NodeName: "node-1", PodCIDRs: testCfg.PodCIDRs},
		kernel{nft: discardNFT{knftables.NewFake(knftables.InetFamily, Table)}, elems: discardElements{}, hcHost: "127.0.0.1"})
	if err != nil {
		b.Fatal(err)
	}
	defer p.hcServers.Close()
	if _, err := controller.New(d, spec); err != nil { // registers the handlers that mark
		b.Fatal(err)
	}
	factory.Start(ctx.Done())
	defer func() {
		cancel() // first: Shutdown waits for the informers to stop
		factory.Shutdown()
	}()
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			b.Fatalf("%v did not sync", typ)
		}
	}
	start := time.Now()
	if err := p.sync(ctx); err != nil {
		b.Fatal(err)
	}
	full := time.Since(start)
	agentHeap := heapInUse() - apiHeap

	var times []time.Duration
	k := 0
	for b.Loop() {
		b.StopTimer()
		i := (n/2 + k*7919) % n
		name := fmt.Sprintf("svc-%d", i)
		sl, err := client.DiscoveryV1().EndpointSlices("bench").Get(ctx, name+"-abcde", metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		sl.Endpoints[0].Addresses = []string{benchIP(0x0afe0001, k)}
		sl.ResourceVersion = strconv.Itoa(1000000 + k) // the fake keeps it; the API server would not
		sl.Annotations["endpoints.kubernetes.io/last-change-trigger-time"] = time.Now().Format(time.RFC3339Nano)
		if _, err := client.DiscoveryV1().EndpointSlices("bench").Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		waitFor(b, func() bool {
			p.ports.mu.Lock()
			defer p.ports.mu.Unlock()
			return p.ports.dirty["bench/"+name]
		})
		k++
		b.StartTimer()
		t0 := time.Now()
		if err := p.sync(ctx); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(t0))
	}
	if *agentBenchHeap != "" {
		writeHeapProfile(b, fmt.Sprintf("%s.%d", *agentBenchHeap, n))
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(full.Seconds(), "full-s")
	b.ReportMetric(float64(agentHeap)/(1<<20), "agent-heap-MiB")
}

func writeHeapProfile(b *testing.B, path string) {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

func heapInUse() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

func waitFor(b *testing.B, ok func() bool) {
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			b.Fatal("the change did not reach the informer")
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func benchIP(base uint32, i int) string {
	v := base + uint32(i)
	return fmt.Sprintf("%d.%d.%d.%d", v>>24, v>>16&255, v>>8&255, v&255)
}

// benchObjects returns Service i and its EndpointSlice of e endpoints, as
// the API server stores them after kubectl apply and the EndpointSlice
// controller: managedFields, uid, owner reference, target references of
// the pods, zones. Endpoints run on other nodes (node-2..node-50), as most
// do in a large cluster.
func benchObjects(i, e int) (*v1.Service, *discoveryv1.EndpointSlice) {
	name := fmt.Sprintf("svc-%d", i)
	created := metav1.NewTime(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	mf := func(manager string, fields string) []metav1.ManagedFieldsEntry {
		return []metav1.ManagedFieldsEntry{{Manager: manager, Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1",
			Time: &created, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)}}}
	}
	svcUID := types.UID(fmt.Sprintf("5b1c2e0a-0000-4000-8000-%012d", i))
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name, UID: svcUID, ResourceVersion: strconv.Itoa(1000 + i),
			CreationTimestamp: created, Labels: map[string]string{"app": name},
			ManagedFields: mf("kubectl", `{"f:spec":{"f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:name":{},"f:port":{},"f:protocol":{},"f:targetPort":{}}},"f:selector":{"f:app":{}},"f:type":{}},"f:metadata":{"f:labels":{"f:app":{}}}}`)},
		Spec: v1.ServiceSpec{
			Type: v1.ServiceTypeClusterIP, ClusterIP: benchIP(0x0a600001, i), ClusterIPs: []string{benchIP(0x0a600001, i)},
			IPFamilies: []v1.IPFamily{v1.IPv4Protocol}, IPFamilyPolicy: ptr.To(v1.IPFamilyPolicySingleStack),
			InternalTrafficPolicy: ptr.To(v1.ServiceInternalTrafficPolicyCluster), SessionAffinity: v1.ServiceAffinityNone,
			Selector: map[string]string{"app": name},
			Ports:    []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name + "-abcde", GenerateName: name + "-",
			UID: types.UID(fmt.Sprintf("7c2d3f1b-0000-4000-8000-%012d", i)), ResourceVersion: strconv.Itoa(200000 + i), Generation: 1,
			CreationTimestamp: created,
			Labels: map[string]string{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io",
				"app": name},
			Annotations:     map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": created.Format(time.RFC3339)},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: name, UID: svcUID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
			ManagedFields:   mf("endpointslice-controller.k8s.io", `{"f:addressType":{},"f:endpoints":{},"f:metadata":{"f:annotations":{".":{},"f:endpoints.kubernetes.io/last-change-trigger-time":{}},"f:generateName":{},"f:labels":{".":{},"f:endpointslice.kubernetes.io/managed-by":{},"f:kubernetes.io/service-name":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"x\"}":{}}},"f:ports":{}}`)},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To[int32](8080)}},
	}
	for j := 0; j < e; j++ {
		pod := fmt.Sprintf("%s-7d9f8c6b5-%05d", name, j)
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{benchIP(0x0a800001, i*e+j)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			NodeName:   ptr.To(fmt.Sprintf("node-%d", 2+(i+j)%49)),
			Zone:       ptr.To(fmt.Sprintf("zone-%c", 'a'+(i+j)%3)),
			TargetRef: &v1.ObjectReference{Kind: "Pod", Namespace: "bench", Name: pod,
				UID: types.UID(fmt.Sprintf("9e4f5a2c-%04d-4000-8000-%012d", j, i))},
		})
	}
	return svc, sl
}

// discardNFT runs nothing: its transactions are formatted (as knftables
// does before it runs nft) and dropped, and the table lists as empty.
type discardNFT struct{ *knftables.Fake }

func (discardNFT) Run(_ context.Context, tx *knftables.Transaction) error {
	_ = tx.String()
	return nil
}

func (discardNFT) List(context.Context, string) ([]string, error) { return nil, nil }

// discardElements takes every element change the netlink writer takes, and
// drops it.
type discardElements struct{}

func (discardElements) Supports(e Element) bool {
	_, _, ok := encodeElement(e)
	return ok
}

func (discardElements) Write(context.Context, []Element, []Element, []SlotPick) error { return nil }
