// Command dnscompare runs podnet's cluster DNS server (`podnet dns`) and
// upstream CoreDNS (its kubernetes plugin, built from its module in
// tools/coredns) side by side against one API server holding the same
// objects, and compares them under dnsperf with the same query mix.
//
// Run as root after `make build tools` and `make -C tools coredns`, with
// dnsperf installed (Debian package dnsperf); make bench-dns does all that:
//
//	make bench-dns
//	make bench-dns DNS_FLAGS="-services 1000 -rounds 1 -duration 10s"
//	go run ./bench/dnscompare -services 10000 -rounds 3 -duration 20s
//
// It starts a private control plane (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler on loopback, state in a temporary
// directory) inside a network namespace it creates, and creates -services
// Services spread over -namespaces namespaces: 1 in 100 an ExternalName
// (ext-N.example.test), 1 in 10 headless with one EndpointSlice of three
// named endpoints (web-0..2), the rest ClusterIP with named ports http and
// grpc (every fifth also dns/UDP) and one EndpointSlice of three endpoints.
// In the same namespace, on loopback, it runs:
//
//   - a fake upstream resolver (miekg/dns, in this process) on 127.0.0.1:5300:
//     *.example.test. has an A record with TTL 300, anything else NXDOMAIN;
//   - podnet dns on 127.0.0.2:53 (--ttl 30 --pods insecure, forwarding to the
//     fake upstream, --cache-size -cache-size --cache-max-ttl 30s: podnet
//     caches forwarded replies only);
//   - CoreDNS on 127.0.0.3:53 with kubeadm's Corefile (see corefile below):
//     kubernetes (pods insecure, fallthrough for the reverse zones, ttl 30),
//     forward to the fake upstream (max_concurrent 1000), cache 30 with
//     -cache-size entries for success and for denial and the cluster zone
//     excluded (disable success/denial cluster.local, as kubeadm has it since
//     Kubernetes 1.32), prometheus, errors and ready;
//   - with -coredns-zone-cache (default on), a second CoreDNS on
//     127.0.0.4:53 whose cache also holds the cluster zone (kubeadm's
//     Corefile before 1.32): CoreDNS at its fastest, at the price of
//     answers up to 30 s stale.
//
// All read the same kubeconfig. When all answer the last Service created,
// it checks that they give the same answers (rcode and answer records, TTLs
// aside) for a sample of the mix (differences are printed and counted, not
// fatal), records each server's RSS, warms each up,
// and then measures, alternating the servers and flipping the order each
// round:
//
//  1. Throughput: dnsperf with no rate limit (-c -clients, -q
//     -outstanding) for -duration: queries per second, average latency,
//     lost queries, and the server's CPU time per query.
//  2. Latency at a fixed load: dnsperf -Q R -v, where R is -latency-qps or
//     else half the lowest median throughput, the same R for all: p50, p99 and p99.9 of every response's latency (lost queries
//     count as the 2 s timeout).
//
// The query mix (-queries lines, shuffled, Services picked uniformly): 60% A
// of Service names, 15% search-path misses (svc.ns.<other>.svc.cluster.local,
// svc.ns.svc.cluster.local.<other>.svc.cluster.local,
// svc.ns.svc.svc.cluster.local: NXDOMAIN), 10% AAAA of Service names
// (NODATA: the cluster is IPv4), 5% SRV _http._tcp of Services, 5% PTR of
// cluster IPs, 5% A of 200 external names (forwarded once, then cached).
//
// dnsperf, the servers and the API server share the machine's CPUs; the
// table says so next to the load average. Everything it started and the
// namespace are removed when it ends.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/podnet/podnet/bench/internal/benchcp"
	"github.com/podnet/podnet/internal/localcluster/controlplane"
	"github.com/podnet/podnet/internal/proc"
)

type options struct {
	root         string
	services     int
	namespaces   int
	queries      int
	rounds       int
	duration     time.Duration
	warmup       time.Duration
	clients      int
	outstanding  int
	latencyQPS   int
	cacheSize    int
	zoneCache    bool
	checkSamples int
	dnsperf      string
	podnet       string
	seed         uint64
}

func main() {
	var o options
	flag.StringVar(&o.root, "repo", ".", "repository root (bin/podnet, tools/bin/)")
	flag.IntVar(&o.services, "services", 10000, "Services to create")
	flag.IntVar(&o.namespaces, "namespaces", 5, "namespaces to spread them over")
	flag.IntVar(&o.queries, "queries", 100000, "lines in dnsperf's query file")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each runs both servers in each phase")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "length of one dnsperf run")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "unmeasured dnsperf run per server before the rounds")
	flag.IntVar(&o.clients, "clients", 10, "dnsperf -c")
	flag.IntVar(&o.outstanding, "outstanding", 100, "dnsperf -q (queries in flight)")
	flag.IntVar(&o.latencyQPS, "latency-qps", 0, "offered load of the latency phase; 0: half the lower median throughput")
	flag.BoolVar(&o.zoneCache, "coredns-zone-cache", true, "also run CoreDNS with the cluster zone cached (kubeadm's Corefile before Kubernetes 1.32)")
	flag.IntVar(&o.cacheSize, "cache-size", 9984, "cache entries, both servers (CoreDNS: for success and for denial each)")
	flag.IntVar(&o.checkSamples, "check", 600, "queries of the mix whose answers are compared between the servers")
	flag.StringVar(&o.podnet, "podnet", "", "podnet binary (default: bin/podnet under -repo)")
	flag.StringVar(&o.dnsperf, "dnsperf", "dnsperf", "dnsperf binary")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the query mix")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "dnscompare:", err)
		os.Exit(1)
	}
}

const (
	upstreamAddr = "127.0.0.1:5300"
	podnetIP     = "127.0.0.2"
	corednsIP    = "127.0.0.3"
	coredns2IP   = "127.0.0.4" // the variant that caches the cluster zone
)

// corefile is the CoreDNS configuration: kubeadm's Corefile (since
// Kubernetes 1.32, which keeps the cache plugin out of the cluster zone, as
// podnet does) with the same upstream, TTL and cache size as podnet; the
// health, loop, reload and loadbalance plugins are left out. %[5]s is
// where the variant that also caches the cluster zone (kubeadm's Corefile
// before 1.32) differs.
const corefile = `.:53 {
    bind %[1]s
    errors
    ready %[1]s:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %[2]s
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    prometheus %[1]s:9153
    forward . %[3]s {
        max_concurrent 1000
    }
    cache 30 {
        success %[4]d
        denial %[4]d
%[5]s    }
}
`

const cacheDisableZone = `        disable success cluster.local
        disable denial cluster.local
`

type server struct {
	name              string
	addr              string // IP; port 53
	rec               *proc.Record
	ready             time.Duration // from start to answering the last Service
	rssIdle, rssAfter int64
	tput              []perfResult
	lat               []perfResult
}

func run(o options) error {
	root, err := filepath.Abs(o.root)
	if err != nil {
		return err
	}
	podnetBin, corednsBin := o.podnet, filepath.Join(root, "tools", "bin", "coredns")
	if podnetBin == "" {
		podnetBin = filepath.Join(root, "bin", "podnet")
	}
	for _, b := range []string{podnetBin, corednsBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%w (make build; make -C tools coredns)", err)
		}
	}
	dnsperfBin, err := exec.LookPath(o.dnsperf)
	if err != nil {
		return fmt.Errorf("%w (apt-get install dnsperf)", err)
	}
	ctx := context.Background()
	env, err := benchcp.Start(ctx, root, "dcmp")
	if err != nil {
		return err
	}
	defer env.Close()
	work, nsPath, cp, client := env.Work, env.NSPath, env.CP, env.Client
	start := time.Now()
	svcs, err := createObjects(ctx, client, o.services, o.namespaces)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "created %d Services and their EndpointSlices in %s\n", len(svcs), time.Since(start).Round(time.Second))

	mixFile := filepath.Join(work, "queries.txt")
	qs := buildMix(svcs, o.namespaces, o.queries, o.seed)
	if err := writeMix(mixFile, qs); err != nil {
		return err
	}
	stopUpstream, err := startUpstream(nsPath, upstreamAddr)
	if err != nil {
		return err
	}
	defer stopUpstream()

	kubeconfig := cp.AdminKubeconfig()
	procs := filepath.Join(work, "procs")
	srvs := []*server{
		{name: "podnet dns", addr: podnetIP},
		{name: "CoreDNS", addr: corednsIP},
	}
	if o.zoneCache {
		srvs = append(srvs, &server{name: "CoreDNS zone cached", addr: coredns2IP})
	}
	argv := map[string][]string{
		"podnet dns": {podnetBin, "dns", "--kubeconfig", kubeconfig, "--listen", podnetIP + ":53", "--zone", "cluster.local",
			"--ttl", "30", "--pods", "insecure", "--upstream", upstreamAddr, "--cache-size", strconv.Itoa(o.cacheSize),
			"--cache-max-ttl", "30s", "--max-concurrent-upstream", "1000",
			"--health-listen", podnetIP + ":8080"},
	}
	for _, s := range srvs[1:] {
		disable := cacheDisableZone
		if s.addr == coredns2IP {
			disable = ""
		}
		cf := filepath.Join(work, "Corefile-"+s.addr)
		if err := os.WriteFile(cf, []byte(fmt.Sprintf(corefile, s.addr, kubeconfig, upstreamAddr, o.cacheSize, disable)), 0o644); err != nil {
			return err
		}
		argv[s.name] = []string{corednsBin, "-conf", cf}
	}
	defer func() {
		for _, s := range srvs {
			if s.rec != nil {
				_ = proc.Stop(s.rec, 5*time.Second)
			}
		}
	}()
	last := svcs[len(svcs)-1]
	for _, s := range srvs {
		id := strings.ReplaceAll(s.name, " ", "-")
		t0 := time.Now()
		rec, err := proc.Start(procs, proc.Spec{Name: id, Argv: argv[s.name], LogFile: filepath.Join(work, id+".log"),
			Netns: nsPath, Env: controlplane.ProcessEnv()})
		if err != nil {
			return err
		}
		s.rec = rec
		if err := waitReady(nsPath, s, last, 5*time.Minute); err != nil {
			return fmt.Errorf("%s: %w\n%s", s.name, err, proc.LogTail(s.rec, 20))
		}
		s.ready = time.Since(t0)
		fmt.Fprintf(os.Stderr, "%s answers after %s\n", s.name, s.ready.Round(10*time.Millisecond))
	}
	if err := checkAnswers(nsPath, srvs, qs, o.checkSamples); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	for _, s := range srvs {
		s.rssIdle = benchcp.RSS(s.rec.PID)
	}

	perf := func(s *server, d time.Duration, rate int) (perfResult, error) {
		if !proc.Alive(s.rec) {
			return perfResult{}, fmt.Errorf("%s died:\n%s", s.name, proc.LogTail(s.rec, 20))
		}
		return dnsperf(dnsperfBin, nsPath, s.addr, mixFile, o.clients, o.outstanding, d, rate, s.rec.PID)
	}
	order := func(r int) []*server {
		o := slices.Clone(srvs)
		if r%2 == 1 {
			slices.Reverse(o)
		}
		return o
	}
	if o.warmup > 0 {
		for _, s := range srvs {
			if _, err := perf(s, o.warmup, 0); err != nil {
				return fmt.Errorf("warm-up %s: %w", s.name, err)
			}
		}
	}
	load0 := loadavg()
	for r := range o.rounds {
		for _, s := range order(r) {
			res, err := perf(s, o.duration, 0)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			s.tput = append(s.tput, res)
			fmt.Fprintf(os.Stderr, "round %d throughput %-10s %8.0f q/s  avg %s  lost %d  (%s)  load %s\n", r+1, s.name, res.qps,
				dur(res.avgLat), res.lost, res.rcodes, loadavg())
		}
	}
	rate := o.latencyQPS
	if rate == 0 {
		low := median(qpsOf(srvs[0].tput))
		for _, s := range srvs[1:] {
			low = min(low, median(qpsOf(s.tput)))
		}
		rate = int(low / 2)
	}
	for r := range o.rounds {
		for _, s := range order(r) {
			res, err := perf(s, o.duration, rate)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			s.lat = append(s.lat, res)
			fmt.Fprintf(os.Stderr, "round %d latency @%d q/s %-10s p50 %s  p99 %s  p99.9 %s  lost %d  load %s\n", r+1, rate, s.name,
				dur(res.pct(0.5)), dur(res.pct(0.99)), dur(res.pct(0.999)), res.lost, loadavg())
		}
	}
	load1 := loadavg()
	for _, s := range srvs {
		s.rssAfter = benchcp.RSS(s.rec.PID)
	}
	report(o, srvs, rate, load0, load1)
	return nil
}

func qpsOf(rs []perfResult) []float64 {
	var v []float64
	for _, r := range rs {
		v = append(v, r.qps)
	}
	return v
}

// waitReady waits until the server answers the A question for the last
// Service created with its cluster IP (or, for another kind, NOERROR).
func waitReady(nsPath string, s *server, last svcInfo, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if !proc.Alive(s.rec) {
			return fmt.Errorf("the process died")
		}
		m, err := exchange(nsPath, s.addr+":53", last.fqdn(), mdns.TypeA)
		switch {
		case err != nil:
			lastErr = err
		case m.Rcode != mdns.RcodeSuccess:
			lastErr = fmt.Errorf("%s: %s", last.fqdn(), mdns.RcodeToString[m.Rcode])
		case last.clusterIP.IsValid() && (len(m.Answer) != 1 || !strings.HasSuffix(m.Answer[0].String(), "\t"+last.clusterIP.String())):
			lastErr = fmt.Errorf("%s: unexpected answer %v", last.fqdn(), m.Answer)
		default:
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %v", timeout, lastErr)
}

// checkAnswers asks both servers a sample of the mix (every category) and
// reports where they differ. Differences are printed, not fatal: the table
// says how many there were.
func checkAnswers(nsPath string, srvs []*server, qs []query, n int) error {
	diffs := map[string]int{}
	asked := map[string]int{}
	shown := 0
	for i := 0; i < n && i < len(qs); i++ {
		q := qs[i]
		t := mdns.StringToType[q.qtype]
		var got []string
		for _, s := range srvs {
			m, err := exchange(nsPath, s.addr+":53", q.name, t)
			if err != nil {
				return fmt.Errorf("check %s %s on %s: %w", q.name, q.qtype, s.name, err)
			}
			got = append(got, normalized(m))
		}
		asked[q.class]++
		for j := 1; j < len(got); j++ {
			if got[0] != got[j] {
				diffs[q.class]++
				if shown < 8 {
					shown++
					fmt.Fprintf(os.Stderr, "answers differ for %s %s:\n  %s: %s\n  %s: %s\n", q.name, q.qtype, srvs[0].name, got[0], srvs[j].name, got[j])
				}
				break
			}
		}
	}
	var classes []string
	for c := range asked {
		classes = append(classes, c)
	}
	slices.Sort(classes)
	var parts []string
	for _, c := range classes {
		parts = append(parts, fmt.Sprintf("%s %d/%d", c, diffs[c], asked[c]))
	}
	fmt.Fprintf(os.Stderr, "answer check (differing/asked): %s\n", strings.Join(parts, ", "))
	answerCheck = strings.Join(parts, ", ")
	return nil
}

var answerCheck string

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func dur(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	default:
		return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000)
	}
}

func report(o options, srvs []*server, rate int, load0, load1 string) {
	clk := 100.0 // USER_HZ
	fmt.Printf("\n%d Services in %d namespaces, %d-line query mix; dnsperf -c %d -q %d, %d rounds × %s per server and phase; load average before/after the rounds: %s / %s\n\n",
		o.services, o.namespaces, o.queries, o.clients, o.outstanding, o.rounds, o.duration, load0, load1)
	fmt.Printf("| server | max QPS (median; runs) | avg latency at max | CPU per 1k queries | p50 @ %d q/s | p99 @ %d q/s | p99.9 @ %d q/s | lost | ready after start | RSS idle | RSS after |\n", rate, rate, rate)
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	type agg struct{ qps, avg, cpu, p50, p99, p999 float64 }
	var a []agg
	for _, s := range srvs {
		var qps, avg, cpu, p50, p99, p999 []float64
		lost := 0
		for _, r := range s.tput {
			qps = append(qps, r.qps)
			avg = append(avg, r.avgLat)
			if r.sent > 0 {
				cpu = append(cpu, float64(r.cpuTicks)/clk/float64(r.sent)*1000)
			}
			lost += r.lost
		}
		for _, r := range s.lat {
			p50 = append(p50, r.pct(0.5))
			p99 = append(p99, r.pct(0.99))
			p999 = append(p999, r.pct(0.999))
			lost += r.lost
		}
		x := agg{median(qps), median(avg), median(cpu), median(p50), median(p99), median(p999)}
		a = append(a, x)
		var runs []string
		for _, v := range qps {
			runs = append(runs, fmt.Sprintf("%.0f", v))
		}
		fmt.Printf("| %s | %.0f (%s) | %s | %.0f ms | %s | %s | %s | %d | %s | %d MiB | %d MiB |\n", s.name, x.qps, strings.Join(runs, ", "),
			dur(x.avg), x.cpu*1000, dur(x.p50), dur(x.p99), dur(x.p999), lost, s.ready.Round(10*time.Millisecond), s.rssIdle>>20, s.rssAfter>>20)
	}
	for i := 1; i < len(a); i++ {
		p, c := a[0], a[i]
		fmt.Printf("| podnet / %s | **%.2fx** | %.2fx | %.2fx | %.2fx | **%.2fx** | %.2fx | | | %.2fx | %.2fx |\n", srvs[i].name, p.qps/c.qps, p.avg/c.avg, p.cpu/c.cpu,
			p.p50/c.p50, p.p99/c.p99, p.p999/c.p999, float64(srvs[0].rssIdle)/float64(srvs[i].rssIdle), float64(srvs[0].rssAfter)/float64(srvs[i].rssAfter))
	}
	fmt.Printf("\nAnswer check (differing/asked): %s\n", answerCheck)
}
