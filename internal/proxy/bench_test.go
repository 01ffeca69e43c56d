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

// BenchmarkOneServiceChange measures what a sync computes when one of N
// Services lost or regained an endpoint: the update of the state with that
// one change and the difference. Its cost must not grow with N.
func BenchmarkOneServiceChange(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			sps := benchServicePorts(n, 10)
			cfg := Config{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
			slots := NewSlotAllocator()
			st := build(cfg, sps, slots)
			st.all()
			smaller := *sps[n/2]
			smaller.Endpoints = smaller.Endpoints[1:]
			versions := []*ServicePort{sps[n/2], &smaller}
			fake := knftables.NewFake(knftables.InetFamily, Table)
			i := 0
			for b.Loop() {
				i++
				st.update(cfg, []PortChange{{Key: versions[i%2].Key(), Port: versions[i%2]}}, slots)
				tx := fake.NewTransaction()
				emitDiff(tx, st, st)
				// 1 chain rewritten (mod 10 <-> 9), 9 slots changed, 1 slot and 1
				// hairpin element gone or back.
				if tx.NumOperations() == 0 || tx.NumOperations() > 30 {
					b.Fatalf("%d operations", tx.NumOperations())
				}
			}
		})
	}
}

// BenchmarkFullSyncText measures what a full sync of 10,000 Services
// computes before it runs nft: the build, the transaction that rewrites the
// table, and its text.
func BenchmarkFullSyncText(b *testing.B) {
	sps := benchServicePorts(10000, 10)
	cfg := Config{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	fake := knftables.NewFake(knftables.InetFamily, Table)
	for b.Loop() {
		tx := fake.NewTransaction()
		emitFull(tx, Build(cfg, sps), nil, nil)
		if len(tx.String()) == 0 {
			b.Fatal("empty transaction")
		}
	}
}
