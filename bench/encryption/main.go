// Command encbench measures what WireGuard encryption (issue 15) costs pod
// traffic between nodes: pod→pod across nodes, plain versus encrypted, side
// by side in one run. It reports; it asserts nothing.
//
// It starts two 2-node local clusters of its own with `bin/podnet up`, one
// plain (pnenc-plain) and one with `--encryption wireguard` (pnenc-wg), each
// with its own address plan (-plain-plan, -wg-plan), both running during the
// whole run, and takes them down at the end, also on error or
// SIGINT/SIGTERM (a leftover of a killed run is taken down before the next
// `up`). In each it places a client pod on node 1 and a server pod on node 2
// (nodeName; built-in test-server pods) and starts, inside the server pod's
// network namespace, iperf3 -s and single-threaded echo servers
// (bench/internal/netperf, the kit of bench/datapath). Before measuring it
// checks that node 1 routes the server pod into the WireGuard device
// (pnwg0) exactly in the encrypted cluster, that the server sees the
// client's own pod address, and that both encrypted nodes have handshaken.
//
// Measured from inside the client pod's namespace, alternating the arms in
// every round (the order flips each round), medians over -rounds:
//
//   - TCP throughput: iperf3 -c -t 5 -J, one stream and (-streams) -P 2;
//     the receiver's rate. In the encrypted arm each run also checks that
//     node 1's WireGuard device sent at least the bytes iperf3 received
//     (read from the agent's GET /encryption), so a run that bypassed
//     encryption fails the benchmark instead of flattering it.
//   - During each throughput run, the CPU time (utime + stime from
//     /proc/<pid>/stat) of both nodes' agent processes, found by the
//     records `podnet up` wrote (package proc): the user-space WireGuard
//     (wireguard-go on a TUN) lives in them, so this is what encryption
//     costs in CPU, reported in CPUs (CPU-seconds per second) and in CPUs
//     per Gbit/s. The whole machine's busy CPUs (from /proc/stat) are
//     printed next to it; they include everything else running here.
//   - Request/response: 1-byte ping-pong transactions per second over one
//     connection; new connections per second: connect, 1-byte request,
//     1-byte reply, close, one at a time.
//
// Then the cost of an agent restart to pods: a UDP request from the client
// pod to the server pod every -every (10 ms), each from a new socket, while
// node 1's agent is stopped (-restart-kinds: term = SIGTERM as `podnet
// down` does, kill = SIGKILL, both through a pidfd of the recorded process)
// and started again at once from its record (same argv, log and
// namespace). Per arm and kind, -restarts times: the longest time between
// two replies (last reply before → first after), the requests lost, and how
// long the stop took. The plain arm is the baseline: its routes stay while
// the agent is away, so its gap is the probe's own jitter.
//
// Caveats, printed with the results: this kernel has no WireGuard module,
// so the encrypted arm is always the user-space wireguard-go inside each
// agent, on a TUN device (every packet crosses to user space and back
// twice per node pair), not the kernel's WireGuard; both nodes, both pods,
// both agents and both control planes share the machine's CPUs (2 vCPUs
// here), so encryption's CPU competes with the traffic it encrypts; the
// encrypted pods' MTU is 1420 (1500 - 80), the plain pods' 1500.
//
// Run as root after `make build` (and `make tools` for the control plane):
//
//	make bench-encryption
//	make bench-encryption ENC_FLAGS="-rounds 3 -restarts 2"
//	go run ./bench/encryption -podnet bin/podnet -tools-bin tools/bin -keep   # leave the clusters up
//	go run ./bench/encryption -reuse -rounds 1                               # use them again
//
// Traffic goes only between pods of the clusters it made, inside their
// network namespaces; the clusters' address plans are checked by `podnet
// up`, which refuses ranges this machine already routes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/podnet/podnet/bench/internal/localbench"
	"github.com/podnet/podnet/bench/internal/netperf"
)

// metricsPort is where the agents of a local cluster serve /metrics and
// /encryption, inside their node's namespace (their --metrics-addr).
const metricsPort = 10249

// logw gets progress lines; the report goes to stdout.
var logw io.Writer = os.Stderr

type options struct {
	podnet, toolsBin, iperf3 string
	plainName, wgName        string
	plainPlan, wgPlan        string
	routingMode              string
	rounds                   int
	streams                  []int
	iperfTime, rrTime        time.Duration
	cpus                     string
	restarts                 int
	restartKinds             []string
	every, timeout           time.Duration
	keep, reuse              bool
}

func main() {
	var o options
	var streams, kinds string
	flag.StringVar(&o.podnet, "podnet", "bin/podnet", "the podnet binary (make build)")
	flag.StringVar(&o.toolsBin, "tools-bin", "tools/bin", "directory with the control-plane binaries (make tools)")
	flag.StringVar(&o.iperf3, "iperf3", "iperf3", "iperf3 binary")
	flag.StringVar(&o.plainName, "plain-cluster", "pnenc-plain", "name of the plain cluster")
	flag.StringVar(&o.wgName, "wg-cluster", "pnenc-wg", "name of the encrypted cluster")
	flag.StringVar(&o.plainPlan, "plain-plan", "172.29.50.0/24,10.163.0.0/16,10.168.0.0/16,198.18.50.0/24",
		"plain cluster's NODE-NETWORK,POD-CIDR,SERVICE-CIDR,WORLD-NETWORK")
	flag.StringVar(&o.wgPlan, "wg-plan", "172.29.51.0/24,10.164.0.0/16,10.169.0.0/16,198.18.51.0/24",
		"encrypted cluster's NODE-NETWORK,POD-CIDR,SERVICE-CIDR,WORLD-NETWORK")
	flag.StringVar(&o.routingMode, "routing-mode", "direct", "both clusters' --routing-mode: direct or vxlan (under WireGuard the pod routes go into the device either way)")
	flag.IntVar(&o.rounds, "rounds", 5, "alternating rounds (plain, encrypted; then reversed)")
	flag.StringVar(&streams, "streams", "1,2", "iperf3 runs per arm and round: parallel streams (-P) of each")
	flag.DurationVar(&o.iperfTime, "iperf-time", 5*time.Second, "duration of one iperf3 run")
	flag.DurationVar(&o.rrTime, "rr-time", 3*time.Second, "duration of one request/response or connection-rate run")
	flag.StringVar(&o.cpus, "cpus", "none", "CLIENT,SERVER: CPUs to pin the client and server sides to (the agents are never pinned), or none")
	flag.IntVar(&o.restarts, "restarts", 3, "agent restarts per arm and kind (0: skip the restart part)")
	flag.StringVar(&kinds, "restart-kinds", "term,kill", "how node 1's agent is stopped before it is started again: term (SIGTERM), kill (SIGKILL)")
	flag.DurationVar(&o.every, "every", 10*time.Millisecond, "restart part: the client pod sends a UDP request this often")
	flag.DurationVar(&o.timeout, "timeout", time.Second, "restart part: a request without a reply after this long is lost")
	flag.BoolVar(&o.keep, "keep", false, "leave the clusters (and the pods) up at the end")
	flag.BoolVar(&o.reuse, "reuse", false, "use running clusters of these names (from -keep) instead of starting new ones; they are left running")
	flag.Parse()
	for _, s := range strings.Split(streams, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 16 {
			fmt.Fprintf(os.Stderr, "encbench: -streams %q: want numbers 1..16\n", streams)
			os.Exit(2)
		}
		o.streams = append(o.streams, n)
	}
	for _, k := range strings.Split(kinds, ",") {
		if k = strings.TrimSpace(k); k != "term" && k != "kill" {
			fmt.Fprintf(os.Stderr, "encbench: -restart-kinds %q: want term and/or kill\n", kinds)
			os.Exit(2)
		}
		o.restartKinds = append(o.restartKinds, strings.TrimSpace(k))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "encbench:", err)
		os.Exit(1)
	}
}

// planArgs turns NODE,POD,SERVICE,WORLD into podnet up's flags.
func planArgs(plan string) ([]string, error) {
	f := strings.Split(plan, ",")
	if len(f) != 4 {
		return nil, fmt.Errorf("plan %q: want NODE-NETWORK,POD-CIDR,SERVICE-CIDR,WORLD-NETWORK", plan)
	}
	return []string{"--node-network", f[0], "--pod-cidr", f[1], "--service-cidr", f[2], "--world-network", f[3]}, nil
}

func run(ctx context.Context, o options) (err error) {
	if o.rounds < 1 || o.restarts < 0 || o.every <= 0 || o.timeout <= 0 {
		return errors.New("need -rounds >= 1, -restarts >= 0, -every > 0, -timeout > 0")
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (podnet up, network namespaces)")
	}
	if o.podnet, err = filepath.Abs(o.podnet); err != nil {
		return err
	}
	if _, err := os.Stat(o.podnet); err != nil {
		return fmt.Errorf("podnet binary: %w (make build)", err)
	}
	if o.toolsBin, err = filepath.Abs(o.toolsBin); err != nil {
		return err
	}
	if _, err := exec.LookPath(o.iperf3); err != nil {
		return fmt.Errorf("iperf3: %w (apt-get install iperf3)", err)
	}
	clientCPU, serverCPU := -1, -1
	if o.cpus != "" && o.cpus != "none" {
		if _, err := fmt.Sscanf(o.cpus, "%d,%d", &clientCPU, &serverCPU); err != nil || clientCPU < 0 || serverCPU < 0 ||
			clientCPU >= runtime.NumCPU() || serverCPU >= runtime.NumCPU() {
			return fmt.Errorf("-cpus %q: want CLIENT,SERVER CPU numbers below %d, or none", o.cpus, runtime.NumCPU())
		}
	}
	plainArgs, err := planArgs(o.plainPlan)
	if err != nil {
		return err
	}
	wgArgs, err := planArgs(o.wgPlan)
	if err != nil {
		return err
	}
	arms := [2]*arm{
		{label: "plain", name: o.plainName, routingMode: o.routingMode, upArgs: append(plainArgs, "--routing-mode", o.routingMode)},
		{label: "WireGuard", name: o.wgName, routingMode: o.routingMode, encrypted: true,
			upArgs: append(wgArgs, "--routing-mode", o.routingMode, "--encryption", "wireguard")},
	}
	// Whatever happens from here on, the clusters this run started go down.
	defer func() {
		for _, a := range arms {
			if terr := a.tearDown(o); terr != nil {
				err = errors.Join(err, fmt.Errorf("tear down %s: %w", a.name, terr))
			}
		}
		if o.keep {
			fmt.Fprintf(logw, "clusters left up (-keep): take them down with %s --cluster NAME down (%s, %s)\n", o.podnet, o.plainName, o.wgName)
		}
	}()
	for _, a := range arms {
		if err := a.bringUp(ctx, o); err != nil {
			return err
		}
		if err := a.setup(ctx, o, serverCPU); err != nil {
			return err
		}
	}
	st, err := arms[1].encryption(ctx, 1)
	if err != nil {
		return fmt.Errorf("WireGuard status of node 1: %w", err)
	}

	fmt.Printf("# Encryption (WireGuard): pod→pod across nodes, plain vs encrypted, same run\n\n")
	fmt.Printf("kernel %s, %d CPUs; routing mode %s; WireGuard implementation: %s (device %s, port %d)\n",
		netperf.KernelRelease(), runtime.NumCPU(), arms[1].cfg.AgentRoutingMode(), st.Implementation, st.Device, st.ListenPort)
	for _, a := range arms {
		up := "already running (-reuse)"
		if a.upTook > 0 {
			up = "up in " + a.upTook.Round(100*time.Millisecond).String()
		}
		fmt.Printf("- %s: cluster %s (%s), client pod %s on %s, server pod %s on %s, pod MTU %d\n",
			a.label, a.name, up, a.clientIP, a.cfg.NodeName(1), a.serverIP, a.cfg.NodeName(2), a.podMTU)
	}
	if clientCPU >= 0 {
		fmt.Printf("client side pinned to CPU %d, server side to CPU %d (the agents are not pinned)\n", clientCPU, serverCPU)
	} else {
		fmt.Printf("nothing pinned: client, server and agents go where the scheduler puts them\n")
	}
	fmt.Printf("%d rounds, each measuring both arms back to back (order flipped every round); medians\n", o.rounds)
	fmt.Printf("load average at start: %s\n\n", localbench.LoadAvg())

	res, err := measure(ctx, o, arms, clientCPU, serverCPU)
	if err != nil {
		return err
	}
	res.print(o, arms)
	if o.restarts > 0 {
		rs, err := restarts(ctx, o, arms)
		if err != nil {
			return err
		}
		printRestarts(o, arms, rs)
	}
	fmt.Printf("\nload average at end: %s\n", localbench.LoadAvg())
	return nil
}
