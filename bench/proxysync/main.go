// Command proxysync measures the service proxy's sync against the kernel:
// the first (full) sync of N Services with E endpoints each (on other nodes,
// as most endpoints are in a cluster of many nodes), then the median
// and p99 of syncs after one Service's endpoints changed (one endpoint
// replaced), handed to the syncer as that one change (Syncer.Apply, as the
// agent does), with Go's heap in use. Run it as
// root inside a private network namespace, so the table it loads disappears
// with it:
//
//	unshare --net -- go run ./bench/proxysync -services 1000,10000
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/podnet/podnet/internal/proxy"
)

var (
	viaNFT  = new(bool)
	changes = new(int)
)

func main() {
	counts := flag.String("services", "1000,10000", "comma-separated Service counts")
	eps := flag.Int("endpoints", 10, "endpoints per Service")
	flag.IntVar(changes, "changes", 101, "one-Service changes to time (the median and p99 are reported)")
	flag.BoolVar(viaNFT, "nft-only", false, "write element changes through nft too, not over netlink")
	flag.Parse()
	fmt.Println("| Services | endpoints each | full sync | one-Service change | operations | Go heap after |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, c := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(c)
		if err != nil {
			fail(err)
		}
		if err := run(n, *eps); err != nil {
			fail(err)
		}
	}
}

func run(n, e int) error {
	nft, err := proxy.NewNFT()
	if err != nil {
		return err
	}
	s := proxy.NewSyncer(nft, nil)
	if !*viaNFT {
		w, err := proxy.NewNetlinkElements()
		if err != nil {
			return err
		}
		defer w.Close()
		s.WithElementWriter(w)
	}
	cfg := proxy.Config{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, NodeIPs: []netip.Addr{netip.MustParseAddr("172.30.0.11")}}
	sps := make([]*proxy.ServicePort, n)
	for i := range sps {
		sp := &proxy.ServicePort{Namespace: "bench", Name: fmt.Sprintf("svc-%d", i), Protocol: v1.ProtocolTCP, Port: 80,
			ClusterIPs: []netip.Addr{addr(0x0a600000 + uint32(i) + 1)}}
		for j := 0; j < e; j++ {
			sp.Endpoints = append(sp.Endpoints, proxy.Endpoint{IP: addr(0x0af40000 + uint32(i*e+j) + 1), Port: 8080, Node: "other-node"})
		}
		sps[i] = sp
	}
	ctx := context.Background()
	all := make([]proxy.PortChange, n)
	for i, sp := range sps {
		all[i] = proxy.PortChange{Key: sp.Key(), Port: sp}
	}
	full, err := s.Apply(ctx, cfg, all)
	if err != nil {
		return err
	}
	// One Service at a time loses an endpoint and gains another; the
	// median of several such syncs.
	var times []time.Duration
	var one proxy.SyncResult
	for k := 0; k < *changes; k++ {
		i := (n/2 + k*7919) % n
		changed := *sps[i]
		changed.Endpoints = append(append([]proxy.Endpoint{}, changed.Endpoints[1:]...), proxy.Endpoint{IP: addr(0x0afe0001 + uint32(k)), Port: 8080, Node: "other-node"})
		sps[i] = &changed
		start := time.Now()
		if one, err = s.Apply(ctx, cfg, []proxy.PortChange{{Key: changed.Key(), Port: &changed}}); err != nil {
			return err
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	oneTime, p99 := times[len(times)/2], times[len(times)*99/100]
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	path := "nft"
	if one.Netlink {
		path = "netlink"
	}
	fmt.Printf("| %d | %d | %s | %s (p99 %s, %s) | %d | %d MiB |\n", n, e, full.Duration.Round(time.Millisecond), oneTime.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), path,
		one.Operations, ms.HeapInuse>>20)
	// Leave an empty table for the next size.
	for i := range all {
		all[i].Port = nil
	}
	_, err = s.Apply(ctx, cfg, all)
	return err
}

func addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "proxysync:", err)
	os.Exit(1)
}
