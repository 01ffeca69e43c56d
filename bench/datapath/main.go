// Command datapathbench measures what the service proxy's nftables table costs
// the packets of a pod: pod→ClusterIP versus pod→pod direct, in the same run,
// with N Services (default 10,000, 10 endpoints each) loaded in the table.
//
// It builds a private topology of network namespaces it creates itself with
// unique names: one "node" and two "pods" (client, server), wired by executing
// the real CNI plugin (bin/podnet-cni) through libcni inside the node, the way
// the local cluster's pod runtime does (routed veth pairs, pods from
// 10.250.0.0/24). In the node it loads the table `inet podnet-proxy` through
// proxy.Syncer with N unrelated Services (cluster IPs in 10.251.0.0/16,
// endpoints in 10.252.0.0/14 that are never contacted) plus one target
// Service, 10.251.255.1, whose only endpoint is the server pod. Packets go only
// to the pods' addresses and to that cluster IP, which the node translates to
// the server pod; the node has no default route.
//
// Measured, alternating direct and via-ClusterIP in every round (the order
// flips each round), reported as medians over rounds and as the ratio
// ClusterIP / direct (1.00 = the Service costs nothing):
//
//   - TCP throughput of one stream: iperf3 -c <target> -t 5 -J from the client
//     pod against iperf3 -s in the server pod (end.sum_received).
//   - Request/response: 1-byte ping-pong transactions per second over one
//     persistent connection, from one single-threaded client using blocking
//     system calls on a thread inside the client pod, against a server thread
//     doing the same in the server pod.
//   - New connections per second: connect, 1-byte request, 1-byte reply,
//     close, one at a time. The server closes first, so TIME_WAIT stays in the
//     server pod and client ports are reused freely; the direct path and the
//     Service's endpoint use different server ports (7001 and 7002) so their
//     4-tuples never collide in conntrack or in the server's TIME_WAIT table.
//
// Both sides are pinned (-cpus CLIENT,SERVER, default 0,0: the client thread
// and iperf3 -c on the first number, the server thread and iperf3 -s on the
// second). On the same CPU a transaction is pure CPU work, so the rates are
// highest and most sensitive to what the table costs per packet; on two vCPUs
// of a VM every transaction waits for a cross-CPU wake-up (about 5.7k/s here,
// whatever the table), and unpinned the rates swing by 2x with where the
// scheduler puts the two ends. -cpus none leaves placement to the scheduler.
//
// Every path crosses the same conntrack and nftables hooks of the node (the
// table is loaded for both); only the ClusterIP path matches a Service and is
// DNATed. Run it as root after `make build`, inside a private network
// namespace so that the node's own side is private too:
//
//	make bench-datapath
//	make bench-datapath DATAPATH_FLAGS="-services 0 -rounds 3"
//	unshare --net -- go run ./bench/datapath -cni-bin-dir bin -services 10000 -rounds 5
//
// With -policies N it compares instead pod→pod direct without and with the
// NetworkPolicy table `inet podnet-policy` holding N policies compiled over
// -policy-pods synthetic pods plus the client and server, the server
// ingress-isolated and the client egress-isolated, both allowed on the
// tested ports (policies.go says how the table is built and toggled). The
// proxy table with only the target Service stays loaded in both arms (-proxy,
// as on a real node, where it makes conntrack run anyway); -services defaults
// to 0 in this mode:
//
//	make bench-datapath DATAPATH_FLAGS="-policies 1000 -rounds 5"
//
// Everything it creates (namespaces, the iperf3 server it started, the IPAM
// state in a temporary directory) is removed when it ends, also on error or
// SIGINT/SIGTERM. Numbers on a shared 2-vCPU VM swing between runs: compare
// the ratios, which come from one run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	v1 "k8s.io/api/core/v1"

	"github.com/podnet/podnet/bench/internal/netperf"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/proxy"
)

const (
	podCIDR     = "10.250.0.0/24"
	network     = "podnet-datapath-bench"
	iperfPort   = 5201
	rrPort      = 7000 // persistent ping-pong, direct and via the Service
	connPortDir = 7001 // connect+request+close, direct; also the Service's port
	connPortSvc = 7002 // connect+request+close, the Service's endpoint port
)

var (
	serviceBase  = netip.MustParseAddr("10.251.0.0")
	targetIP     = netip.MustParseAddr("10.251.255.1")
	endpointBase = netip.MustParseAddr("10.252.0.0")
)

type options struct {
	cniBinDir string
	iperf3    string
	services  int
	endpoints int
	rounds    int
	iperfTime time.Duration
	rrTime    time.Duration
	cpus      string

	// NetworkPolicy mode (policies > 0).
	policies   int
	policyPods int
	proxy      bool
}

func main() {
	var o options
	flag.StringVar(&o.cniBinDir, "cni-bin-dir", "bin", "directory holding podnet-cni (make build)")
	flag.StringVar(&o.iperf3, "iperf3", "/usr/bin/iperf3", "iperf3 binary")
	flag.IntVar(&o.services, "services", 10000, "unrelated Services loaded in the proxy table (besides the target)")
	flag.IntVar(&o.endpoints, "endpoints", 10, "endpoints per unrelated Service")
	flag.IntVar(&o.rounds, "rounds", 5, "alternating rounds (direct, ClusterIP; then reversed)")
	flag.DurationVar(&o.iperfTime, "iperf-time", 5*time.Second, "duration of one iperf3 run")
	flag.DurationVar(&o.rrTime, "rr-time", 3*time.Second, "duration of one request/response or connection-rate run")
	flag.StringVar(&o.cpus, "cpus", "0,0", "CLIENT,SERVER: CPUs the client and server sides are pinned to, or none")
	flag.IntVar(&o.policies, "policies", 0, "NetworkPolicy mode: compare pod→pod without and with a policy table of this many policies (0: the Service mode)")
	flag.IntVar(&o.policyPods, "policy-pods", 5000, "policy mode: synthetic pods the policies are compiled over (besides the client and server)")
	flag.BoolVar(&o.proxy, "proxy", true, "policy mode: keep a proxy table (the target Service plus -services, default 0 here) loaded in both arms, as on a real node")
	flag.Parse()
	if o.policies > 0 {
		explicit := false
		flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "services" })
		if !explicit {
			o.services = 0
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "datapathbench:", err)
		os.Exit(1)
	}
}

// topo is the namespaces and processes of one run.
type topo struct {
	node, client, server string // namespace paths
	clientIP, serverIP   netip.Addr
}

func run(ctx context.Context, o options) (err error) {
	if o.services < 0 || o.services > 65000 || o.endpoints < 1 || o.services*o.endpoints > 1<<18-2 || o.rounds < 1 {
		return fmt.Errorf("need 0 <= services <= 65000, endpoints >= 1, services*endpoints < 262142, rounds >= 1")
	}
	if o.policies < 0 || o.policyPods < 0 {
		return fmt.Errorf("need policies >= 0 and policy-pods >= 0")
	}
	cniBin, err := filepath.Abs(o.cniBinDir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(cniBin, "podnet-cni")); err != nil {
		return fmt.Errorf("podnet-cni not found in %s (run make build): %w", cniBin, err)
	}
	if _, err := exec.LookPath(o.iperf3); err != nil {
		return fmt.Errorf("iperf3: %w", err)
	}
	work, err := os.MkdirTemp("", "datapathbench-")
	if err != nil {
		return err
	}
	// Cleanups run in reverse order, also when run fails or is interrupted.
	var cleanups []func() error
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			if cerr := cleanups[i](); cerr != nil {
				err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
			}
		}
		err = errors.Join(err, os.RemoveAll(work))
	}()
	mkns := func(prefix string) (string, error) {
		name := netns.UniqueName(prefix)
		path, err := netns.Create(name)
		if err == nil {
			cleanups = append(cleanups, func() error { return netns.Delete(name) })
		}
		return path, err
	}

	var t topo
	if t.node, err = mkns("pdpb-node-"); err != nil {
		return err
	}
	list, err := libcni.NetworkConfFromBytes(fmt.Appendf(nil,
		`{"cniVersion":"1.1.0","name":%q,"plugins":[{"type":"podnet-cni","dataDir":%q,"ranges":[[{"subnet":%q}]]}]}`,
		network, filepath.Join(work, "ipam"), podCIDR))
	if err != nil {
		return err
	}
	cn := libcni.NewCNIConfigWithCacheDir([]string{cniBin}, filepath.Join(work, "cache"), nil)
	addPod := func(prefix, id string) (string, netip.Addr, error) {
		path, err := mkns(prefix)
		if err != nil {
			return "", netip.Addr{}, err
		}
		rt := &libcni.RuntimeConf{ContainerID: id, NetNS: path, IfName: "eth0"}
		var res *types100.Result
		err = netns.Do(t.node, func() error {
			// The plugin process inherits this thread's namespace: the node.
			r, err := cn.AddNetworkList(ctx, list, rt)
			if err != nil {
				return err
			}
			res, err = types100.NewResultFromResult(r)
			return err
		})
		if err != nil {
			return "", netip.Addr{}, fmt.Errorf("CNI ADD %s: %w", id, err)
		}
		cleanups = append(cleanups, func() error {
			return netns.Do(t.node, func() error { return cn.DelNetworkList(context.Background(), list, rt) })
		})
		if len(res.IPs) == 0 {
			return "", netip.Addr{}, fmt.Errorf("CNI ADD %s: no address in result", id)
		}
		ip, _ := netip.AddrFromSlice(res.IPs[0].Address.IP)
		return path, ip.Unmap(), nil
	}
	if t.client, t.clientIP, err = addPod("pdpb-client-", "datapath-client"); err != nil {
		return err
	}
	if t.server, t.serverIP, err = addPod("pdpb-server-", "datapath-server"); err != nil {
		return err
	}
	// The client pod's own port range, wide, so connection-rate runs rarely
	// reuse a port (a per-namespace sysctl of a namespace we made).
	if err := netns.Do(t.client, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_local_port_range", []byte("1024 65535"), 0o644)
	}); err != nil {
		return err
	}

	clientCPU, serverCPU := -1, -1
	if o.cpus != "" && o.cpus != "none" {
		if _, err := fmt.Sscanf(o.cpus, "%d,%d", &clientCPU, &serverCPU); err != nil || clientCPU < 0 || serverCPU < 0 ||
			clientCPU >= runtime.NumCPU() || serverCPU >= runtime.NumCPU() {
			return fmt.Errorf("-cpus %q: want CLIENT,SERVER CPU numbers below %d, or none", o.cpus, runtime.NumCPU())
		}
	}

	// Servers in the server pod: echo threads and iperf3.
	stopEcho, err := netperf.StartEcho(t.server, t.serverIP, serverCPU,
		netperf.EchoPort{Port: rrPort}, netperf.EchoPort{Port: connPortDir, Once: true}, netperf.EchoPort{Port: connPortSvc, Once: true})
	if err != nil {
		return err
	}
	cleanups = append(cleanups, stopEcho)
	iperfPid, stopIperf, err := netperf.StartIperfServer(ctx, o.iperf3, t.server, t.serverIP, iperfPort)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, stopIperf)

	direct := target{name: "direct", iperf: t.serverIP.String(),
		rr:   netip.AddrPortFrom(t.serverIP, rrPort),
		conn: netip.AddrPortFrom(t.serverIP, connPortDir)}
	if o.policies > 0 {
		return runPolicies(ctx, o, t, direct, iperfPid, clientCPU, serverCPU)
	}

	// The proxy table in the node.
	load, ops, err := loadTable(ctx, t, o.services, o.endpoints)
	if err != nil {
		return err
	}

	viaSvc := target{name: "ClusterIP", iperf: targetIP.String(),
		rr:   netip.AddrPortFrom(targetIP, rrPort),
		conn: netip.AddrPortFrom(targetIP, connPortDir)}
	// Sanity: both paths reach the server pod, which sees the client's own
	// address (no source NAT), and a short warm-up of each.
	for _, tg := range []target{direct, viaSvc} {
		if err := checkPath(t, tg); err != nil {
			return err
		}
		if _, err := netperf.PingPong(ctx, t.client, clientCPU, tg.rr, 500*time.Millisecond); err != nil {
			return fmt.Errorf("warm-up %s: %w", tg.name, err)
		}
	}
	if err := netperf.WaitListening(ctx, iperfPid, iperfPort); err != nil {
		return err
	}

	fmt.Printf("# Datapath: pod→ClusterIP vs pod→pod direct, same run\n\n")
	fmt.Printf("kernel %s, %d CPUs; client pod %s, server pod %s, target Service %s (1 endpoint: the server pod)\n",
		netperf.KernelRelease(), runtime.NumCPU(), t.clientIP, t.serverIP, targetIP)
	fmt.Printf("proxy table: N = %d Services × %d endpoints + the target Service; full sync (load) %s, %d nft operations\n",
		o.services, o.endpoints, load.Round(time.Millisecond), ops)
	if clientCPU >= 0 {
		fmt.Printf("client pinned to CPU %d, server to CPU %d\n", clientCPU, serverCPU)
	}
	fmt.Printf("%d rounds, each measuring direct and ClusterIP back to back (order flipped every round); medians\n", o.rounds)
	fmt.Printf("load average at start: %s (other work on this machine skews absolute numbers; the ratios come from back-to-back runs)\n\n", loadAvg())

	arms := [2]arm{{label: "direct pod→pod", tg: direct}, {label: fmt.Sprintf("via ClusterIP (%d Services)", o.services), tg: viaSvc}}
	order := func(r, _ int) []int {
		if r%2 == 1 {
			return []int{1, 0}
		}
		return []int{0, 1}
	}
	res, err := measure(ctx, o, t, arms, order, clientCPU, serverCPU)
	if err != nil {
		return err
	}
	res.print(o, arms)
	return nil
}

// arm is one side of the comparison: a target and what to do before each
// of its runs (nil: nothing).
type arm struct {
	label string
	tg    target
	enter func(ctx context.Context) error
}

type series struct{ a, b []float64 } // per round: arm 0, arm 1

type results struct {
	thr, rr, cr series
	stalls      [2]int
}

// measure runs o.rounds rounds; in each, every metric is measured once per
// arm, back to back, in the order order(round, metric) gives (arm indexes).
func measure(ctx context.Context, o options, t topo, arms [2]arm, order func(r, metric int) []int, clientCPU, serverCPU int) (*results, error) {
	var res results
	add := func(s *series, i int, v float64) {
		if i == 0 {
			s.a = append(s.a, v)
		} else {
			s.b = append(s.b, v)
		}
	}
	enter := func(i int) error {
		if arms[i].enter == nil {
			return nil
		}
		return arms[i].enter(ctx)
	}
	for r := range o.rounds {
		for _, i := range order(r, 0) {
			if err := enter(i); err != nil {
				return nil, err
			}
			ir, err := netperf.Iperf{Bin: o.iperf3, NSPath: t.client, Dst: arms[i].tg.iperf, Port: iperfPort,
				Duration: o.iperfTime, ClientCPU: clientCPU, ServerCPU: serverCPU}.Run(ctx)
			if err != nil {
				return nil, fmt.Errorf("round %d iperf3 %s: %w", r+1, arms[i].label, err)
			}
			add(&res.thr, i, ir.BitsPerSecond)
		}
		for _, i := range order(r, 1) {
			if err := enter(i); err != nil {
				return nil, err
			}
			rate, err := netperf.PingPong(ctx, t.client, clientCPU, arms[i].tg.rr, o.rrTime)
			if err != nil {
				return nil, fmt.Errorf("round %d request/response %s: %w", r+1, arms[i].label, err)
			}
			add(&res.rr, i, rate)
		}
		for _, i := range order(r, 2) {
			if err := enter(i); err != nil {
				return nil, err
			}
			rate, slow, err := netperf.ConnRate(ctx, t.client, clientCPU, arms[i].tg.conn, o.rrTime)
			if err != nil {
				return nil, fmt.Errorf("round %d connection rate %s: %w", r+1, arms[i].label, err)
			}
			res.stalls[i] += slow
			add(&res.cr, i, rate)
		}
		fmt.Fprintf(os.Stderr, "round %d/%d: throughput %.2f / %.2f Gbit/s, RR %.0f / %.0f /s, conn %.0f / %.0f /s (%s / %s)\n",
			r+1, o.rounds, res.thr.a[r]/1e9, res.thr.b[r]/1e9, res.rr.a[r], res.rr.b[r], res.cr.a[r], res.cr.b[r], arms[0].label, arms[1].label)
	}
	return &res, nil
}

// print writes the medians, the ratio arm 1 / arm 0 and the rounds.
func (res *results) print(o options, arms [2]arm) {
	fmt.Printf("| metric | %s | %s | ratio | per-round ratios: median (min–max) |\n|---|---|---|---|---|\n", arms[0].label, arms[1].label)
	row := func(name string, s series, unit string, scale float64, prec int) {
		d, v := netperf.Median(s.a), netperf.Median(s.b)
		// Each round's two runs are back to back, so their ratio is less
		// exposed to load that changes during the run.
		rs := make([]float64, len(s.a))
		for i := range rs {
			rs[i] = s.b[i] / s.a[i]
		}
		fmt.Printf("| %s | %.*f %s | %.*f %s | %.3f | %.3f (%.2f–%.2f) |\n", name, prec, d/scale, unit, prec, v/scale, unit, v/d,
			netperf.Median(rs), slices.Min(rs), slices.Max(rs))
	}
	row(fmt.Sprintf("TCP throughput, 1 stream (iperf3, %s)", o.iperfTime), res.thr, "Gbit/s", 1e9, 2)
	row("request/response, 1 byte, persistent connection", res.rr, "trans/s", 1, 0)
	row("new connections (connect + 1 request + close)", res.cr, "conn/s", 1, 0)
	fmt.Printf("\nper round (%s / %s):\n\n| round | throughput Gbit/s | RR trans/s | conn/s |\n|---|---|---|---|\n", arms[0].label, arms[1].label)
	for r := range o.rounds {
		fmt.Printf("| %d | %.2f / %.2f | %.0f / %.0f | %.0f / %.0f |\n", r+1,
			res.thr.a[r]/1e9, res.thr.b[r]/1e9, res.rr.a[r], res.rr.b[r], res.cr.a[r], res.cr.b[r])
	}
	fmt.Printf("\nload average at end: %s\n", loadAvg())
	if res.stalls[0]+res.stalls[1] > 0 {
		fmt.Printf("\nwarning: connections slower than 100 ms: %s %d, %s %d (SYN retransmits?)\n",
			arms[0].label, res.stalls[0], arms[1].label, res.stalls[1])
	}
}

type target struct {
	name  string
	iperf string
	rr    netip.AddrPort
	conn  netip.AddrPort
}

// loadTable writes N unrelated Services plus the target Service into the
// node's proxy table in one full sync and returns how long it took.
func loadTable(ctx context.Context, t topo, n, e int) (time.Duration, int, error) {
	cfg := proxy.Config{PodCIDRs: []netip.Prefix{netip.MustParsePrefix(podCIDR), netip.MustParsePrefix("10.252.0.0/14")}}
	sps := make([]*proxy.ServicePort, 0, n+3)
	for i := range n {
		sp := &proxy.ServicePort{Namespace: "bench", Name: fmt.Sprintf("svc-%d", i), Protocol: v1.ProtocolTCP, Port: 80,
			ClusterIPs: []netip.Addr{plus(serviceBase, i+1)}}
		for j := range e {
			sp.Endpoints = append(sp.Endpoints, proxy.Endpoint{IP: plus(endpointBase, i*e+j+1), Port: 8080})
		}
		sps = append(sps, sp)
	}
	for _, p := range []struct {
		name       string
		port, dest int32
	}{{"iperf", iperfPort, iperfPort}, {"rr", rrPort, rrPort}, {"conn", connPortDir, connPortSvc}} {
		sps = append(sps, &proxy.ServicePort{Namespace: "bench", Name: "target", PortName: p.name, Protocol: v1.ProtocolTCP,
			Port: p.port, ClusterIPs: []netip.Addr{targetIP},
			Endpoints: []proxy.Endpoint{{IP: t.serverIP, Port: p.dest, Local: true}}})
	}
	var res proxy.SyncResult
	err := netns.Do(t.node, func() error {
		// nft runs as a child process of this thread: in the node.
		nft, err := proxy.NewNFT()
		if err != nil {
			return err
		}
		res, err = proxy.NewSyncer(nft, nil).Sync(ctx, cfg, sps)
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("load proxy table: %w", err)
	}
	return res.Duration, res.Operations, nil
}

func plus(a netip.Addr, n int) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) + uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// checkPath asks the server pod, through tg, which peer and local address it
// saw: the client pod's own address and the server pod's address.
func checkPath(t topo, tg target) error {
	peer, local, err := netperf.Seen(t.client, tg.rr, 3*time.Second)
	if err != nil {
		return fmt.Errorf("%s path to %s: %w", tg.name, tg.rr, err)
	}
	want := []string{t.clientIP.String(), netip.AddrPortFrom(t.serverIP, tg.rr.Port()).String()}
	if !strings.HasPrefix(peer, want[0]+":") || local != want[1] {
		return fmt.Errorf("%s path to %s: server saw %s %s, want peer %s and local %s", tg.name, tg.rr, peer, local, want[0], want[1])
	}
	return nil
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}
