// Command podnet-testserver is podnet's built-in test server (the same
// internal/testserver as `podnet serve`) as a small program of its own, for
// the test images that `make image` builds: `docker.io/podnet/test` runs it on
// the usual ports, the nginx and postgres stand-ins on theirs. It answers
// with the pod's name: --name, else $HOSTNAME, else the host name (a pod's
// host name is its name).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/podnet/podnet/internal/testserver"
)

func main() {
	var c testserver.Config
	var tcp, udp string
	flag.StringVar(&c.Pod, "name", "", "name to answer with (default: $HOSTNAME, else the host name)")
	flag.StringVar(&tcp, "tcp", "", "TCP ports to serve HTTP on, comma-separated")
	flag.StringVar(&udp, "udp", "", "UDP ports to answer on, comma-separated")
	flag.Parse()
	if err := run(c, tcp, udp); err != nil {
		fmt.Fprintln(os.Stderr, "podnet-testserver:", err)
		os.Exit(1)
	}
}

func run(c testserver.Config, tcp, udp string) error {
	var err error
	if c.TCPPorts, err = ports(tcp); err != nil {
		return fmt.Errorf("--tcp: %w", err)
	}
	if c.UDPPorts, err = ports(udp); err != nil {
		return fmt.Errorf("--udp: %w", err)
	}
	if c.Pod == "" {
		c.Pod = os.Getenv("HOSTNAME")
	}
	if c.Pod == "" {
		c.Pod, _ = os.Hostname()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	fmt.Fprintf(os.Stderr, "podnet-testserver: pod %s, tcp %v, udp %v\n", c.Pod, c.TCPPorts, c.UDPPorts)
	return testserver.Serve(ctx, c)
}

func ports(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := strconv.Atoi(f)
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("bad port %q", f)
		}
		out = append(out, p)
	}
	return out, nil
}
