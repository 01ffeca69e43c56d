package main

import (
	"bufio"
	"bytes"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/podnet/podnet/internal/netns"
)

// startUpstream serves the fake upstream on addr (UDP and TCP) inside the
// namespace at nsPath: *.example.test. has an A record (TTL 300) and no
// AAAA; every other name is NXDOMAIN. It stands for the node's resolver.
func startUpstream(nsPath, addr string) (stop func(), err error) {
	var pc net.PacketConn
	var ln net.Listener
	err = netns.Do(nsPath, func() error {
		var err error
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			return err
		}
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		if pc != nil {
			pc.Close()
		}
		return nil, err
	}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if len(r.Question) != 1 {
			m.Rcode = mdns.RcodeFormatError
			_ = w.WriteMsg(m)
			return
		}
		q := r.Question[0]
		soa := &mdns.SOA{Hdr: mdns.RR_Header{Name: "example.test.", Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: 300},
			Ns: "ns.example.test.", Mbox: "hostmaster.example.test.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 300}
		name := strings.ToLower(q.Name)
		switch {
		case !strings.HasSuffix(name, ".example.test."):
			m.Rcode = mdns.RcodeNameError
			soa.Hdr.Name, soa.Ns, soa.Mbox = ".", "a.root.test.", "nstld.root.test."
			m.Ns = []mdns.RR{soa}
		case q.Qtype == mdns.TypeA:
			f := fnv.New32a()
			f.Write([]byte(name))
			v := f.Sum32()
			m.Answer = []mdns.RR{&mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 300},
				A: net.IPv4(198, 51, byte(v>>8)|100, byte(v)).To4()}}
		default:
			m.Ns = []mdns.RR{soa}
		}
		_ = w.WriteMsg(m)
	})
	us := &mdns.Server{PacketConn: pc, Handler: h}
	ts := &mdns.Server{Listener: ln, Handler: h}
	go func() { _ = us.ActivateAndServe() }()
	go func() { _ = ts.ActivateAndServe() }()
	return func() { _ = us.Shutdown(); _ = ts.Shutdown() }, nil
}

// exchange sends one question to server from inside the namespace.
func exchange(nsPath, server, name string, qtype uint16) (*mdns.Msg, error) {
	var in *mdns.Msg
	err := netns.Do(nsPath, func() error {
		m := new(mdns.Msg)
		m.SetQuestion(name, qtype)
		c := &mdns.Client{Timeout: 2 * time.Second}
		var err error
		in, _, err = c.Exchange(m, server)
		if err == nil && in.Truncated {
			c.Net = "tcp"
			in, _, err = c.Exchange(m, server)
		}
		return err
	})
	return in, err
}

// normalized is a reply reduced to what both servers must agree on: the
// rcode and the answer section without TTLs, sorted.
func normalized(m *mdns.Msg) string {
	var rrs []string
	for _, rr := range m.Answer {
		rr = mdns.Copy(rr)
		rr.Header().Ttl = 0
		rrs = append(rrs, rr.String())
	}
	sort.Strings(rrs)
	return mdns.RcodeToString[m.Rcode] + " [" + strings.Join(rrs, " | ") + "]"
}

// perfResult is one dnsperf run.
type perfResult struct {
	qps      float64
	sent     int
	lost     int
	avgLat   float64 // seconds
	rcodes   string
	lats     []float64 // with -v: every response's latency; lost ones count as the timeout
	cpuTicks int64     // the server's utime+stime during the run
}

func (r perfResult) pct(p float64) float64 {
	if len(r.lats) == 0 {
		return math.NaN()
	}
	return r.lats[int(p*float64(len(r.lats)-1))]
}

// dnsperf runs dnsperf inside the namespace against server:53 for d. With
// rate > 0 it sends at most rate queries per second and records every
// response's latency (-v).
func dnsperf(bin, nsPath, server, dataFile string, clients, outstanding int, d time.Duration, rate int, serverPID int) (perfResult, error) {
	args := []string{"--net=" + nsPath, bin, "-s", server, "-p", "53", "-d", dataFile,
		"-c", strconv.Itoa(clients), "-q", strconv.Itoa(outstanding), "-l", strconv.Itoa(int(d.Seconds())), "-t", "2"}
	if rate > 0 {
		args = append(args, "-Q", strconv.Itoa(rate), "-v")
	}
	cmd := exec.Command("nsenter", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return perfResult{}, err
	}
	cpu0 := cpuTicks(serverPID)
	if err := cmd.Start(); err != nil {
		return perfResult{}, err
	}
	var res perfResult
	var stats strings.Builder
	timeouts := 0
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "> ") {
			// "> RCODE name type latency"; "> T name type" for a timeout.
			f := strings.Fields(line)
			if len(f) >= 2 && f[1] == "T" {
				timeouts++
				continue
			}
			if len(f) >= 5 {
				if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
					res.lats = append(res.lats, v)
				}
			}
			continue
		}
		stats.WriteString(line)
		stats.WriteByte('\n')
	}
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return perfResult{}, fmt.Errorf("dnsperf: %w: %s", err, stderr.String())
	}
	res.cpuTicks = cpuTicks(serverPID) - cpu0
	if err := parseStats(stats.String(), &res); err != nil {
		return perfResult{}, fmt.Errorf("%w in:\n%s%s", err, stats.String(), stderr.String())
	}
	if rate > 0 {
		if len(res.lats) == 0 {
			return perfResult{}, fmt.Errorf("dnsperf -v printed no latencies:\n%s", stats.String())
		}
		for range res.lost {
			res.lats = append(res.lats, 2) // the timeout
		}
		slices.Sort(res.lats)
	}
	return res, nil
}

func parseStats(s string, r *perfResult) error {
	found := 0
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "Queries per second":
			r.qps, _ = strconv.ParseFloat(f[0], 64)
			found++
		case "Queries sent":
			r.sent, _ = strconv.Atoi(f[0])
		case "Queries lost":
			r.lost, _ = strconv.Atoi(f[0])
			found++
		case "Average Latency (s)":
			r.avgLat, _ = strconv.ParseFloat(f[0], 64)
			found++
		case "Response codes":
			r.rcodes = strings.TrimSpace(v)
		}
	}
	if found != 3 {
		return fmt.Errorf("dnsperf statistics not found")
	}
	return nil
}

// cpuTicks is the process's user+system time in clock ticks.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
