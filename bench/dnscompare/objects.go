package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"sync"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// The kinds of Service the benchmark creates.
const (
	kindClusterIP    = "ClusterIP"
	kindHeadless     = "headless"
	kindExternalName = "ExternalName"
)

// svcInfo is what the query mix needs to know of a created Service.
type svcInfo struct {
	name, ns, kind string
	clusterIP      netip.Addr // invalid for headless and ExternalName
}

func (s svcInfo) fqdn() string { return s.name + "." + s.ns + ".svc.cluster.local." }

// kindOf spreads the kinds over the Services: 1 in 100 is an ExternalName,
// 1 in 10 headless (with named endpoints, StatefulSet-like), the rest
// ClusterIP.
func kindOf(i int) string {
	switch {
	case i%100 == 99:
		return kindExternalName
	case i%10 == 3:
		return kindHeadless
	default:
		return kindClusterIP
	}
}

func nsName(i int) string { return fmt.Sprintf("ns-%d", i) }

// createObjects creates the namespaces and n Services (with their
// EndpointSlices) spread round-robin over them, and returns what it created.
func createObjects(ctx context.Context, c kubernetes.Interface, n, namespaces int) ([]svcInfo, error) {
	for i := range namespaces {
		_, err := c.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName(i)}}, metav1.CreateOptions{})
		if err != nil {
			return nil, err
		}
	}
	out := make([]svcInfo, n)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				si, err := createOne(ctx, c, i, namespaces)
				if err != nil {
					once.Do(func() { first = err })
					continue
				}
				out[i] = si
			}
		}()
	}
	for i := range n {
		next <- i
		if i > 0 && i%2000 == 0 {
			fmt.Fprintf(os.Stderr, "  %d Services\n", i)
		}
	}
	close(next)
	wg.Wait()
	return out, first
}

func endpointIP(i, j int) string {
	v := uint32(0x0a800001) + uint32(i*4+j) // 10.128.0.1 upwards
	return fmt.Sprintf("%d.%d.%d.%d", v>>24, v>>16&255, v>>8&255, v&255)
}

func createOne(ctx context.Context, c kubernetes.Interface, i, namespaces int) (svcInfo, error) {
	si := svcInfo{name: fmt.Sprintf("svc-%d", i), ns: nsName(i % namespaces), kind: kindOf(i)}
	tcp, udp := v1.ProtocolTCP, v1.ProtocolUDP
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: si.name, Namespace: si.ns, Labels: map[string]string{"app": si.name}}}
	var slPorts []discoveryv1.EndpointPort
	switch si.kind {
	case kindExternalName:
		svc.Spec = v1.ServiceSpec{Type: v1.ServiceTypeExternalName, ExternalName: fmt.Sprintf("ext-%d.example.test", i)}
	case kindHeadless:
		svc.Spec = v1.ServiceSpec{ClusterIP: v1.ClusterIPNone, Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: tcp}}}
		slPorts = []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(tcp)}}
	default:
		svc.Spec = v1.ServiceSpec{Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: tcp}, {Name: "grpc", Port: 9090, Protocol: tcp}}}
		slPorts = []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(tcp)},
			{Name: ptr.To("grpc"), Port: ptr.To[int32](9090), Protocol: ptr.To(tcp)}}
		if i%5 == 0 {
			svc.Spec.Ports = append(svc.Spec.Ports, v1.ServicePort{Name: "dns", Port: 53, Protocol: udp})
			slPorts = append(slPorts, discoveryv1.EndpointPort{Name: ptr.To("dns"), Port: ptr.To[int32](5353), Protocol: ptr.To(udp)})
		}
	}
	created, err := c.CoreV1().Services(si.ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		return si, err
	}
	if si.kind == kindClusterIP {
		si.clusterIP, err = netip.ParseAddr(created.Spec.ClusterIP)
		if err != nil {
			return si, fmt.Errorf("service %s/%s: cluster IP %q: %w", si.ns, si.name, created.Spec.ClusterIP, err)
		}
	}
	if slPorts == nil {
		return si, nil
	}
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: si.name + "-a", Namespace: si.ns, Labels: map[string]string{discoveryv1.LabelServiceName: si.name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       slPorts,
	}
	for j := range 3 {
		ep := discoveryv1.Endpoint{Addresses: []string{endpointIP(i, j)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}, NodeName: ptr.To("node-1")}
		if si.kind == kindHeadless {
			ep.Hostname = ptr.To(fmt.Sprintf("web-%d", j))
		}
		sl.Endpoints = append(sl.Endpoints, ep)
	}
	_, err = c.DiscoveryV1().EndpointSlices(si.ns).Create(ctx, sl, metav1.CreateOptions{})
	return si, err
}

// query is one line of dnsperf's input.
type query struct {
	name, qtype string
	class       string // the mix category, for the answer check
}

// The mix, in percent of all queries.
var mix = []struct {
	class string
	pct   int
}{
	{"A service", 60},
	{"search-path miss", 15},
	{"AAAA service", 10},
	{"SRV port", 5},
	{"PTR cluster IP", 5},
	{"A external", 5},
}

// externalNames is how many distinct external names the mix asks for: a
// pod's working set of outside hosts, answered by the fake upstream once and
// then from each server's cache.
const externalNames = 200

// buildMix returns n queries in random order following mix, over the
// Services picked uniformly at random.
func buildMix(svcs []svcInfo, namespaces, n int, seed uint64) []query {
	r := rand.New(rand.NewPCG(seed, 1))
	var withIP, withHTTP []svcInfo
	for _, s := range svcs {
		if s.clusterIP.IsValid() {
			withIP = append(withIP, s)
		}
		if s.kind != kindExternalName {
			withHTTP = append(withHTTP, s)
		}
	}
	var qs []query
	for _, m := range mix {
		k := n * m.pct / 100
		for range k {
			s := svcs[r.IntN(len(svcs))]
			var q query
			switch m.class {
			case "A service":
				q = query{s.fqdn(), "A", m.class}
			case "AAAA service":
				q = query{s.fqdn(), "AAAA", m.class}
			case "search-path miss":
				// What a pod's resolver tries first (ndots:5) for a
				// name from another namespace: "svc.ns" and the FQDN
				// without its dot get the pod's search domains
				// appended.
				other := nsName(r.IntN(namespaces))
				switch r.IntN(3) {
				case 0:
					q = query{s.name + "." + s.ns + "." + other + ".svc.cluster.local.", "A", m.class}
				case 1:
					q = query{strings.TrimSuffix(s.fqdn(), ".") + "." + other + ".svc.cluster.local.", "A", m.class}
				default: // "svc.ns.svc" with the search domain svc.cluster.local
					q = query{s.name + "." + s.ns + ".svc.svc.cluster.local.", "A", m.class}
				}
			case "SRV port":
				s = withHTTP[r.IntN(len(withHTTP))]
				q = query{"_http._tcp." + s.fqdn(), "SRV", m.class}
			case "PTR cluster IP":
				s = withIP[r.IntN(len(withIP))]
				b := s.clusterIP.As4()
				q = query{fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa.", b[3], b[2], b[1], b[0]), "PTR", m.class}
			case "A external":
				q = query{fmt.Sprintf("host-%d.example.test.", r.IntN(externalNames)), "A", m.class}
			}
			qs = append(qs, q)
		}
	}
	r.Shuffle(len(qs), func(i, j int) { qs[i], qs[j] = qs[j], qs[i] })
	return qs
}

func writeMix(path string, qs []query) error {
	var b strings.Builder
	for _, q := range qs {
		b.WriteString(q.name)
		b.WriteByte(' ')
		b.WriteString(q.qtype)
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
