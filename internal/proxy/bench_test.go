package proxy

import (
	"fmt"
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"
)

func benchServicePorts(n, e int) []*ServicePort {
	addr := func(v uint32) netip.Addr {
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	sps := make([]*ServicePort, n)
	for i := range sps {
		sp := &ServicePort{Namespace: "bench", Name: fmt.Sprintf("svc-%d", i), Protocol: v1.ProtocolTCP, Port: 80,
			ClusterIPs: []netip.Addr{addr(0x0a600000 + uint32(i) + 1)}}
		for j := 0; j < e; j++ {
			sp.Endpoints = append(sp.Endpoints, Endpoint{IP: addr(0x0af40000 + uint32(i*e+j) + 1), Port: 8080})
		}
		sps[i] = sp
	}
	return sps
}

// BenchmarkBuild measures computing the desired table for 10,000 Services.
func BenchmarkBuild(b *testing.B) {
	sps := benchServicePorts(10000, 10)
	cfg := Config{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	for b.Loop() {
		Build(cfg, sps)
	}
}

// BenchmarkDiff measures the difference of two 10,000-Service tables that
// differ in one Service.
func BenchmarkDiff(b *testing.B) {
	sps := benchServicePorts(10000, 10)
	cfg := Config{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	old := Build(cfg, sps)
	sps[5000].Endpoints = sps[5000].Endpoints[1:]
	cur := Build(cfg, sps)
	fake := knftables.NewFake(knftables.InetFamily, Table)
	for b.Loop() {
		tx := fake.NewTransaction()
		emitDiff(tx, old, cur)
	}
}
