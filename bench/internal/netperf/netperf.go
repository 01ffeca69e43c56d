// Package netperf is the measuring kit of the datapath benchmarks: TCP
// throughput with iperf3, 1-byte request/response over one connection,
// and new connections per second, between two network namespaces (pods)
// that the caller made or found. It sends only to the address it is
// given, from inside the client namespace, to servers it started inside
// the server namespace.
//
// The request/response and connection-rate sides are single threads doing
// blocking system calls (no Go scheduler between a packet and the next),
// each locked to an OS thread that entered the namespace and, optionally,
// pinned to a CPU. Such a thread is never unlocked: the Go runtime discards
// it when its goroutine ends, so neither the namespace nor the affinity
// leaks to other goroutines.
//
// Dangerous: iperf3 servers are child processes; StartIperfServer kills
// its own with a parent-death signal, so they die with the benchmark even
// on SIGKILL, and its stop function kills only that process.
package netperf

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/netns"
)

// OnThread runs fn on a fresh OS thread that has entered the namespace at
// nsPath ("": stay) and is pinned to cpu (-1: not pinned). The thread stays
// locked and is discarded by the Go runtime when fn returns.
func OnThread(nsPath string, cpu int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
		if nsPath != "" {
			f, err := os.Open(nsPath)
			if err != nil {
				errc <- err
				return
			}
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			f.Close()
			if err != nil {
				errc <- fmt.Errorf("enter %s: %w", nsPath, err)
				return
			}
		}
		if cpu >= 0 {
			var set unix.CPUSet
			set.Set(cpu)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				errc <- fmt.Errorf("pin to CPU %d: %w", cpu, err)
				return
			}
		}
		errc <- fn()
	}()
	return <-errc
}

// EchoPort is one port of an echo server: Once answers one byte and
// closes (the connection-rate side), otherwise every byte is echoed over
// the same connection (the request/response side).
type EchoPort struct {
	Port int
	Once bool
}

// StartEcho opens listening sockets on ip inside the namespace at nsPath
// (a socket keeps the namespace it was made in) and serves each port from
// its own thread with blocking system calls, one connection at a time (the
// clients are sequential too), pinned to cpu (-1: not pinned). A '?' is
// answered with "PEER LOCAL\n", the addresses the server saw. The returned
// function stops the threads and closes the sockets.
func StartEcho(nsPath string, ip netip.Addr, cpu int, ports ...EchoPort) (func() error, error) {
	var fds []int
	closeAll := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	err := netns.Do(nsPath, func() error {
		for _, p := range ports {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			fds = append(fds, fd)
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			// accept and read wake up every 200 ms to see whether to stop.
			tv := unix.Timeval{Usec: 200000}
			_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
			if err := unix.Bind(fd, &unix.SockaddrInet4{Port: p.Port, Addr: ip.As4()}); err != nil {
				return fmt.Errorf("bind %s:%d: %w", ip, p.Port, err)
			}
			if err := unix.Listen(fd, 1024); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	var stopping atomic.Bool
	var wg sync.WaitGroup
	for i, lfd := range fds {
		once := ports[i].Once
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = OnThread("", cpu, func() error {
				for !stopping.Load() {
					fd, sa, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
					if err != nil {
						continue // timeout or EINTR: check stopping
					}
					serveConn(fd, sa, once, &stopping)
					unix.Close(fd)
				}
				return nil
			})
		}()
	}
	return func() error {
		stopping.Store(true)
		wg.Wait()
		closeAll()
		return nil
	}, nil
}

func serveConn(fd int, peer unix.Sockaddr, once bool, stopping *atomic.Bool) {
	tv := unix.Timeval{Usec: 200000}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	b := make([]byte, 1)
	for !stopping.Load() {
		n, err := unix.Read(fd, b)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return
		}
		if b[0] == '?' {
			local, _ := unix.Getsockname(fd)
			msg := fmt.Sprintf("%s %s\n", sockaddrString(peer), sockaddrString(local))
			if _, err := unix.Write(fd, []byte(msg)); err != nil {
				return
			}
			continue
		}
		if _, err := unix.Write(fd, b); err != nil || once {
			return
		}
	}
}

func sockaddrString(sa unix.Sockaddr) string {
	if s, ok := sa.(*unix.SockaddrInet4); ok {
		return netip.AddrPortFrom(netip.AddrFrom4(s.Addr), uint16(s.Port)).String()
	}
	return "?"
}

// StartIperfServer starts `bin -s -B ip -p port` in the namespace at
// nsPath from a thread of its own, which stays until iperf3 exits: the
// child inherits the namespace of the thread that forks it, and its
// parent-death signal fires when that thread ends, so iperf3 dies with
// this program even on SIGKILL. It returns once the server listens; stop
// kills only this process.
func StartIperfServer(ctx context.Context, bin, nsPath string, ip netip.Addr, port int) (pid int, stop func() error, err error) {
	cmd := exec.Command(bin, "-s", "-B", ip.String(), "-p", strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- OnThread(nsPath, -1, func() error {
			if err := cmd.Start(); err != nil {
				return err
			}
			close(started)
			return cmd.Wait()
		})
	}()
	select {
	case <-started:
	case err := <-done:
		return 0, nil, fmt.Errorf("start iperf3 server: %w", err)
	}
	stop = func() error {
		_ = cmd.Process.Kill()
		<-done
		return nil
	}
	if err := WaitListening(ctx, cmd.Process.Pid, port); err != nil {
		_ = stop()
		return 0, nil, err
	}
	return cmd.Process.Pid, stop, nil
}

// WaitListening polls /proc/PID/net/tcp, which shows the namespace of that
// process, until a socket listens on port (5 s at most).
func WaitListening(ctx context.Context, pid, port int) error {
	want := fmt.Sprintf(":%04X", port)
	for range 100 {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
		if err != nil {
			return fmt.Errorf("iperf3 server: %w", err)
		}
		for _, l := range strings.Split(string(data), "\n") {
			f := strings.Fields(l)
			if len(f) > 3 && strings.HasSuffix(f[1], want) && f[3] == "0A" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("iperf3 server is not listening on port %d after 5 s", port)
}

// Iperf is one iperf3 client run.
type Iperf struct {
	Bin      string // iperf3 binary
	NSPath   string // the client's namespace
	Dst      string // server address
	Port     int
	Duration time.Duration // rounded to whole seconds, at least 1 s
	// Streams is iperf3 -P (0 or 1: one stream).
	Streams int
	// ClientCPU, ServerCPU pin both ends (iperf3 -A), unless ClientCPU < 0.
	ClientCPU, ServerCPU int
}

// IperfResult is what one run reports.
type IperfResult struct {
	// BitsPerSecond is the receiver's rate (end.sum_received).
	BitsPerSecond float64
	// Bytes is what the receiver got (end.sum_received.bytes).
	Bytes float64
	// Seconds is the length of the measured interval.
	Seconds float64
}

// Run runs the client and returns the receiver's numbers.
func (r Iperf) Run(ctx context.Context) (IperfResult, error) {
	secs := strconv.Itoa(int(max(r.Duration.Round(time.Second), time.Second) / time.Second))
	args := []string{"-c", r.Dst, "-p", strconv.Itoa(r.Port), "-t", secs, "-J", "--connect-timeout", "3000"}
	if r.Streams > 1 {
		args = append(args, "-P", strconv.Itoa(r.Streams))
	}
	if r.ClientCPU >= 0 {
		args = append(args, "-A", fmt.Sprintf("%d,%d", r.ClientCPU, r.ServerCPU))
	}
	cmd := exec.CommandContext(ctx, r.Bin, args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := netns.Do(r.NSPath, cmd.Start); err != nil {
		return IperfResult{}, err
	}
	werr := cmd.Wait()
	if ctx.Err() != nil {
		return IperfResult{}, ctx.Err()
	}
	return parseIperf(out.String(), errOut.String(), werr)
}

func parseIperf(out, errOut string, werr error) (IperfResult, error) {
	var res struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				Seconds       float64 `json:"seconds"`
				Bytes         float64 `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return IperfResult{}, fmt.Errorf("%v: cannot parse output (%v): %s%s", werr, err, out, errOut)
	}
	if res.Error != "" || werr != nil {
		return IperfResult{}, fmt.Errorf("%v: %s %s", werr, res.Error, errOut)
	}
	s := res.End.SumReceived
	if s.BitsPerSecond <= 0 {
		return IperfResult{}, fmt.Errorf("no end.sum_received.bits_per_second in output")
	}
	return IperfResult{BitsPerSecond: s.BitsPerSecond, Bytes: s.Bytes, Seconds: s.Seconds}, nil
}

// dialRaw makes a blocking TCP socket on the calling thread (inside its
// namespace) and connects it, with 2 s send/receive timeouts.
func dialRaw(dst netip.AddrPort) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	tv := unix.Timeval{Sec: 2}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	for {
		err = unix.Connect(fd, &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %s: %w", dst, err)
	}
	return fd, nil
}

// exchange writes one byte and reads one byte back.
func exchange(fd int, b []byte) error {
	for {
		n, err := unix.Write(fd, b[:1])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n != 1 {
			return io.ErrShortWrite
		}
		break
	}
	for {
		n, err := unix.Read(fd, b[:1])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n != 1 {
			return io.ErrUnexpectedEOF
		}
		return nil
	}
}

// PingPong runs 1-byte transactions over one connection to dst (an echo
// port of StartEcho) for d, from one thread inside the namespace at
// clientNS pinned to cpu (-1: not pinned), with blocking system calls, and
// returns transactions per second.
func PingPong(ctx context.Context, clientNS string, cpu int, dst netip.AddrPort, d time.Duration) (float64, error) {
	var rate float64
	err := OnThread(clientNS, cpu, func() error {
		fd, err := dialRaw(dst)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		b := []byte{'x'}
		n := 0
		start := time.Now()
		end := start.Add(d)
		for {
			if err := exchange(fd, b); err != nil {
				return fmt.Errorf("after %d transactions: %w", n, err)
			}
			n++
			if n%256 == 0 {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if time.Now().After(end) {
					break
				}
			}
		}
		rate = float64(n) / time.Since(start).Seconds()
		return nil
	})
	return rate, err
}

// ConnRate connects to dst (a Once port of StartEcho), exchanges one byte,
// waits for the server's close and closes, one connection at a time for d,
// from one thread inside the namespace at clientNS pinned to cpu (-1: not
// pinned). The server closes first, so TIME_WAIT stays on its side and
// client ports are reused freely. It returns connections per second and
// how many took over 100 ms (SYN retransmits, usually).
func ConnRate(ctx context.Context, clientNS string, cpu int, dst netip.AddrPort, d time.Duration) (float64, int, error) {
	var rate float64
	var slow int
	err := OnThread(clientNS, cpu, func() error {
		b := []byte{'x'}
		n := 0
		start := time.Now()
		end := start.Add(d)
		for {
			t0 := time.Now()
			if t0.After(end) {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fd, err := dialRaw(dst)
			if err != nil {
				return fmt.Errorf("after %d connections: %w", n, err)
			}
			err = exchange(fd, b)
			if err == nil {
				// The server closes first: read its FIN.
				var m int
				for {
					m, err = unix.Read(fd, b)
					if err != unix.EINTR {
						break
					}
				}
				if err == nil && m != 0 {
					err = fmt.Errorf("server sent more than one byte")
				}
			}
			unix.Close(fd)
			if err != nil {
				return fmt.Errorf("after %d connections: %w", n, err)
			}
			n++
			if time.Since(t0) > 100*time.Millisecond {
				slow++
			}
		}
		rate = float64(n) / time.Since(start).Seconds()
		return nil
	})
	return rate, slow, err
}

// Median of v (0 for none), v unchanged.
func Median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// KernelRelease is uname -r, "?" if unknown.
func KernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// Seen connects to dst (an echo port of StartEcho) from the namespace at
// clientNS and asks the server which addresses it saw: the client's
// (peer) and its own (local), as ADDR:PORT.
func Seen(clientNS string, dst netip.AddrPort, timeout time.Duration) (peer, local string, err error) {
	var c net.Conn
	if err := netns.Do(clientNS, func() (err error) {
		c, err = net.DialTimeout("tcp", dst.String(), timeout)
		return err
	}); err != nil {
		return "", "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("?")); err != nil {
		return "", "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", "", err
	}
	f := strings.Fields(line)
	if len(f) != 2 {
		return "", "", fmt.Errorf("server answered %q, want PEER LOCAL", strings.TrimSpace(line))
	}
	return f[0], f[1], nil
}
