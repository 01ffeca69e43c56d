// Package testserver is podnet's built-in test server: what a pod container
// with no command runs in the local cluster. On every TCP port it answers
// HTTP with the pod's name and the client's address as the server saw it; on
// every UDP port it answers each datagram with the same line. Probing tools
// (podnet probe, the e2e suites) read that line to learn who answered and
// whether the client's address was preserved.
package testserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Reply is the line the server answers with.
func Reply(pod, client string) string {
	return fmt.Sprintf("pod=%s client=%s\n", pod, client)
}

// ParseReply extracts the pod and client from a reply line.
func ParseReply(line string) (pod, client string, ok bool) {
	line = strings.TrimSpace(line)
	p, rest, ok1 := strings.Cut(line, " ")
	pod, ok2 := strings.CutPrefix(p, "pod=")
	client, ok3 := strings.CutPrefix(rest, "client=")
	return pod, client, ok1 && ok2 && ok3
}

// Config lists what to serve.
type Config struct {
	Pod      string
	TCPPorts []int
	UDPPorts []int
	// Host is the address to listen on; empty means every address.
	Host string
}

// Serve listens on every port and answers until ctx ends. It fails at once
// if any port cannot be bound.
func Serve(ctx context.Context, c Config) error {
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	var wg sync.WaitGroup
	errc := make(chan error, len(c.TCPPorts)+len(c.UDPPorts))
	for _, port := range c.TCPPorts {
		ln, err := net.Listen("tcp", net.JoinHostPort(c.Host, fmt.Sprint(port)))
		if err != nil {
			return err
		}
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				fmt.Fprint(w, Reply(c.Pod, r.RemoteAddr))
			}),
			ReadHeaderTimeout: 5 * time.Second,
		}
		closers = append(closers, func() { _ = srv.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	for _, port := range c.UDPPorts {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(c.Host, fmt.Sprint(port)))
		if err != nil {
			return err
		}
		closers = append(closers, func() { _ = pc.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2048)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = pc.WriteTo([]byte(Reply(c.Pod, from.String())), from)
			}
		}()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}
