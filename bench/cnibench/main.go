// Command cnibench measures CNI ADD+DEL latency of podnet-cni side by side
// with the reference chain (ptp + host-local from containernetworking/plugins)
// in the same run: sequentially and with 8 and 32 concurrent callers. It execs
// the plugins exactly as a runtime does (environment + config on stdin).
//
// Run it as root inside a private network namespace so that every interface
// and route the plugins make disappears with it:
//
//	unshare --net -- go run ./bench/cnibench -podnet bin/podnet-cni \
//	    -ptp tools/bin/ptp -host-local tools/bin/host-local
//
// (make bench-cni does this.) Pod namespaces are created before timing and
// reused: each worker owns one and ADDs/DELs a new container ID into it.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/podnet/podnet/internal/netns"
)

type plugin struct {
	name    string
	bin     string
	pathDir string
	conf    string
}

type sample struct{ add, del time.Duration }

func main() {
	podnetBin := flag.String("podnet", "bin/podnet-cni", "podnet-cni binary")
	ptpBin := flag.String("ptp", "tools/bin/ptp", "reference ptp binary")
	hostLocalBin := flag.String("host-local", "tools/bin/host-local", "reference host-local binary")
	ops := flag.Int("ops", 400, "ADD+DEL pairs per plugin and concurrency level")
	rounds := flag.Int("rounds", 3, "alternating rounds (podnet, reference, podnet, ...) per level")
	flag.Parse()
	if err := run(*podnetBin, *ptpBin, *hostLocalBin, *ops, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "cnibench:", err)
		os.Exit(1)
	}
}

func run(podnetBin, ptpBin, hostLocalBin string, ops, rounds int) error {
	work, err := os.MkdirTemp("", "cnibench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	// Each plugin gets a CNI_PATH holding just what it needs.
	mk := func(name, typ string, bins map[string]string, conf string) (plugin, error) {
		dir := filepath.Join(work, name+"-bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return plugin{}, err
		}
		for as, src := range bins {
			abs, err := filepath.Abs(src)
			if err != nil {
				return plugin{}, err
			}
			if _, err := os.Stat(abs); err != nil {
				return plugin{}, fmt.Errorf("%s: %w", name, err)
			}
			if err := os.Symlink(abs, filepath.Join(dir, as)); err != nil {
				return plugin{}, err
			}
		}
		return plugin{name: name, bin: filepath.Join(dir, typ), pathDir: dir, conf: conf}, nil
	}
	podnet, err := mk("podnet-cni", "podnet-cni", map[string]string{"podnet-cni": podnetBin},
		fmt.Sprintf(`{"cniVersion":"1.1.0","name":"bench-podnet","type":"podnet-cni","dataDir":%q,"ranges":[[{"subnet":"10.251.0.0/16"}]]}`, filepath.Join(work, "podnet-ipam")))
	if err != nil {
		return err
	}
	ref, err := mk("ptp+host-local", "ptp", map[string]string{"ptp": ptpBin, "host-local": hostLocalBin},
		fmt.Sprintf(`{"cniVersion":"1.1.0","name":"bench-ptp","type":"ptp","ipMasq":false,"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.252.0.0/16"}]]}}`, filepath.Join(work, "hl-ipam")))
	if err != nil {
		return err
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return err
	}

	fmt.Printf("CNI ADD+DEL latency, %d pairs per plugin and level, %d alternating rounds, GOMAXPROCS-independent (separate processes)\n\n", ops, rounds)
	fmt.Println("| callers | plugin | ADD+DEL p50 | ADD+DEL p99 | ADD p50 | DEL p50 | ops/s |")
	fmt.Println("|---|---|---|---|---|---|---|")
	var ratios []string
	for _, workers := range []int{1, 8, 32} {
		nss, cleanup, err := makeNamespaces(workers)
		if err != nil {
			return err
		}
		res := map[string][]sample{}
		wall := map[string]time.Duration{}
		for r := 0; r < rounds; r++ {
			for _, p := range []plugin{podnet, ref} {
				s, d, err := measure(p, nss, ops/rounds, fmt.Sprintf("w%d-r%d", workers, r))
				if err != nil {
					cleanup()
					return err
				}
				res[p.name] = append(res[p.name], s...)
				wall[p.name] += d
			}
		}
		cleanup()
		p50 := map[string]time.Duration{}
		for _, p := range []plugin{podnet, ref} {
			s := res[p.name]
			tot := make([]time.Duration, len(s))
			adds := make([]time.Duration, len(s))
			dels := make([]time.Duration, len(s))
			for i, x := range s {
				tot[i], adds[i], dels[i] = x.add+x.del, x.add, x.del
			}
			p50[p.name] = pct(tot, 50)
			fmt.Printf("| %d | %s | %s | %s | %s | %s | %.0f |\n", workers, p.name, ms(pct(tot, 50)), ms(pct(tot, 99)),
				ms(pct(adds, 50)), ms(pct(dels, 50)), float64(len(s))/wall[p.name].Seconds())
		}
		ratios = append(ratios, fmt.Sprintf("%d callers: reference p50 / podnet p50 = %.2fx", workers, float64(p50[ref.name])/float64(p50[podnet.name])))
	}
	fmt.Println()
	for _, r := range ratios {
		fmt.Println(r)
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}

func makeNamespaces(n int) ([]string, func(), error) {
	var names, paths []string
	cleanup := func() {
		for _, name := range names {
			_ = netns.Delete(name)
		}
	}
	for range n {
		name := netns.UniqueName("cnibench-")
		path, err := netns.Create(name)
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		names = append(names, name)
		paths = append(paths, path)
	}
	return paths, cleanup, nil
}

// measure runs ops ADD+DEL pairs spread over one worker per namespace.
func measure(p plugin, nss []string, ops int, tag string) ([]sample, time.Duration, error) {
	var mu sync.Mutex
	var out []sample
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	per := max(ops/len(nss), 1)
	for w, ns := range nss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				id := fmt.Sprintf("%s-%s-%d-%d", p.name[:3], tag, w, i)
				t0 := time.Now()
				if err := call(p, "ADD", id, ns); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				t1 := time.Now()
				if err := call(p, "DEL", id, ns); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				t2 := time.Now()
				mu.Lock()
				out = append(out, sample{add: t1.Sub(t0), del: t2.Sub(t1)})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out, time.Since(start), firstErr
}

func call(p plugin, command, id, ns string) error {
	cmd := exec.Command(p.bin)
	cmd.Env = []string{"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + id, "CNI_NETNS=" + ns, "CNI_IFNAME=eth0", "CNI_PATH=" + p.pathDir}
	cmd.Stdin = strings.NewReader(p.conf)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s %s: %v: %s", p.name, command, id, err, out.String())
	}
	return nil
}
