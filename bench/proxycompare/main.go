// Command proxycompare runs upstream kube-proxy (nftables mode, built in
// tools/) and podnet's agent side by side against one API server with the
// same Services, in one private network namespace (each proxy writes its own
// nftables table there, and both reach the API server on its loopback), and
// reports for
// each: the time of the first (full) sync, of a sync after one
// EndpointSlice changed, and the process's resident memory.
//
// Run as root after `make build tools`:
//
//	go run ./bench/proxycompare -services 1000,10000
//
// It starts a private control plane (etcd and kube-apiserver on loopback,
// state in a temporary directory) and removes everything when it ends.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/podnet/podnet/bench/internal/benchcp"
	"github.com/podnet/podnet/internal/localcluster/controlplane"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/proc"
)

func main() {
	counts := flag.String("services", "1000", "comma-separated Service counts")
	root := flag.String("repo", ".", "repository root (bin/ and tools/bin/)")
	only := flag.String("only", "", `run only this proxy ("kube-proxy" or "podnet agent"; "": both)`)
	flag.Parse()
	onlyProxy = *only
	if err := run(*root, *counts); err != nil {
		fmt.Fprintln(os.Stderr, "proxycompare:", err)
		os.Exit(1)
	}
}

// onlyProxy, when set, names the one proxy to run.
var onlyProxy string

type proxyProc struct {
	name    string
	ns      string
	rec     *proc.Record
	metrics string // address of /metrics inside ns
	fullSum string // metric names
	partSum string
}

func run(root, counts string) error {
	root, _ = filepath.Abs(root)
	ctx := context.Background()
	env, err := benchcp.Start(ctx, root, "pcmp")
	if err != nil {
		return err
	}
	defer env.Close()
	work, nsPath, cp, client := env.Work, env.NSPath, env.CP, env.Client
	fmt.Println("| Services × 10 endpoints | proxy | first full sync | one EndpointSlice change | RSS | Go heap in use |")
	fmt.Println("|---|---|---|---|---|---|")
	have := 0
	for _, c := range strings.Split(counts, ",") {
		n, err := strconv.Atoi(c)
		if err != nil {
			return err
		}
		start := time.Now()
		if err := createServices(ctx, client, have, n); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "created %d Services and EndpointSlices in %s\n", n-have, time.Since(start).Round(time.Second))
		have = n
		if err := compare(ctx, root, work, nsPath, cp, client, n); err != nil {
			return err
		}
	}
	return nil
}

func createServices(ctx context.Context, c kubernetes.Interface, from, to int) error {
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := createOne(ctx, c, i); err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}
		}()
	}
	for i := from; i < to; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func ipOf(base uint32, i int) string {
	v := base + uint32(i)
	return fmt.Sprintf("%d.%d.%d.%d", v>>24, v>>16&255, v>>8&255, v&255)
}

func createOne(ctx context.Context, c kubernetes.Interface, i int) error {
	name := fmt.Sprintf("svc-%d", i)
	_, err := c.CoreV1().Services("default").Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1.ServiceSpec{Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name + "-a", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(v1.ProtocolTCP)}},
	}
	for j := 0; j < 10; j++ {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{ipOf(0x0a800001, i*10+j)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}, NodeName: ptr.To("other-node")})
	}
	_, err = c.DiscoveryV1().EndpointSlices("default").Create(ctx, sl, metav1.CreateOptions{})
	return err
}

// compare starts both proxies on the current objects and measures them.
func compare(ctx context.Context, root, work, nsPath string, cp *controlplane.ControlPlane, client kubernetes.Interface, n int) error {
	kubeconfig := cp.AdminKubeconfig()
	procs := filepath.Join(work, "procs")
	var ps []*proxyProc
	defer func() {
		for _, p := range ps {
			_ = proc.Stop(p.rec, 5*time.Second)
		}
	}()
	for _, spec := range []struct {
		name    string
		argv    []string
		metrics string
		full    string
		part    string
	}{
		{"kube-proxy", []string{filepath.Join(root, "tools", "bin", "kube-proxy"), "--proxy-mode=nftables", "--kubeconfig=" + kubeconfig,
			"--hostname-override=bench-node", "--cluster-cidr=10.128.0.0/9", "--conntrack-max-per-core=0",
			"--metrics-bind-address=127.0.0.1:10249", "--healthz-bind-address=127.0.0.1:10256"},
			"127.0.0.1:10249", "kubeproxy_sync_full_proxy_rules_duration_seconds", "kubeproxy_sync_partial_proxy_rules_duration_seconds"},
		{"podnet agent", []string{filepath.Join(root, "bin", "podnet"), "agent", "--kubeconfig=" + kubeconfig, "--node-name=bench-node",
			"--cluster-cidr=10.128.0.0/9", "--service-cidr=10.96.0.0/12", "--cni-conf-dir=", "--metrics-addr=127.0.0.1:10259",
			"--healthz-addr=127.0.0.1:10266"},
			"127.0.0.1:10259", `podnet_proxy_sync_duration_seconds_sum{kind="full"}`, `podnet_proxy_sync_duration_seconds_sum{kind="partial"}`},
	} {
		if onlyProxy != "" && spec.name != onlyProxy {
			continue
		}
		path := nsPath
		p := &proxyProc{name: spec.name, ns: path, metrics: spec.metrics, fullSum: spec.full, partSum: spec.part}
		ps = append(ps, p)
		rec, err := proc.Start(procs, proc.Spec{Name: strings.ReplaceAll(spec.name, " ", "-") + "-" + strconv.Itoa(n), Argv: spec.argv,
			LogFile: filepath.Join(work, strings.ReplaceAll(spec.name, " ", "-")+".log"), Netns: path, Env: controlplane.ProcessEnv()})
		if err != nil {
			return err
		}
		p.rec = rec
	}
	full := map[string]float64{}
	for _, p := range ps {
		v, err := waitMetric(p, p.fullSum, func(float64) bool { return true }, 10*time.Minute)
		if err != nil {
			return fmt.Errorf("%s: %w (log %s)", p.name, err, p.rec.LogFile)
		}
		full[p.name] = v
	}
	// One EndpointSlice changes: an endpoint is replaced.
	before := map[string]float64{}
	for _, p := range ps {
		before[p.name], _ = metric(p, p.partSum)
	}
	sl, err := client.DiscoveryV1().EndpointSlices("default").Get(ctx, fmt.Sprintf("svc-%d-a", n/2), metav1.GetOptions{})
	if err != nil {
		return err
	}
	sl.Endpoints[0].Addresses = []string{"10.255.255.1"}
	if _, err := client.DiscoveryV1().EndpointSlices("default").Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		return err
	}
	for _, p := range ps {
		b := before[p.name]
		after, err := waitMetric(p, p.partSum, func(v float64) bool { return v > b }, 5*time.Minute)
		if err != nil {
			return fmt.Errorf("%s partial sync: %w", p.name, err)
		}
		heap, _ := metric(p, "go_memstats_heap_inuse_bytes") // both export Go's memory statistics
		fmt.Printf("| %d | %s | %s | %s | %d MiB | %d MiB |\n", n, p.name, secs(full[p.name]), secs(after-b), benchcp.RSS(p.rec.PID)>>20, int64(heap)>>20)
	}
	return nil
}

func secs(v float64) string {
	return time.Duration(v * float64(time.Second)).Round(time.Millisecond).String()
}

func waitMetric(p *proxyProc, name string, ok func(float64) bool, timeout time.Duration) (float64, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !proc.Alive(p.rec) {
			return 0, fmt.Errorf("the process died")
		}
		if v, err := metric(p, name); err == nil && v > 0 && ok(v) {
			return v, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return 0, fmt.Errorf("metric %s not reported within %s", name, timeout)
}

// metric reads a counter-like value (the _sum of a histogram) from the
// proxy's /metrics inside its namespace.
func metric(p *proxyProc, name string) (float64, error) {
	var body []byte
	err := netns.Do(p.ns, func() error {
		c, err := net.DialTimeout("tcp", p.metrics, time.Second)
		if err != nil {
			return err
		}
		tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return c, nil }}
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://" + p.metrics + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(resp.Body)
		return err
	})
	if err != nil {
		return 0, err
	}
	// A name with labels or a gauge is read as it is; a bare histogram
	// name (…_seconds) adds up its _sum over every label set (kube-proxy
	// has one per IP family).
	sum, found := 0.0, false
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := sc.Text()
		var rest string
		var ok bool
		if strings.Contains(name, "{") || !strings.HasSuffix(name, "_seconds") {
			rest, ok = strings.CutPrefix(line, name+" ") // a labeled series, or a gauge
		} else if r, ok2 := strings.CutPrefix(line, name+"_sum"); ok2 && (strings.HasPrefix(r, " ") || strings.HasPrefix(r, "{")) {
			if i := strings.LastIndexByte(r, ' '); i >= 0 {
				rest, ok = r[i+1:], true
			}
		}
		if ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				return 0, err
			}
			sum, found = sum+v, true
		}
	}
	if !found {
		return 0, fmt.Errorf("no %s", name)
	}
	return sum, nil
}
