// Package probe connects from inside a network namespace to an address and
// reports whether anything answered: the engine behind `podnet probe`.
// TCP sends an HTTP request (podnet's built-in test server answers with who
// it is and the client address it saw; any reply counts); UDP sends a
// datagram and waits for one back.
//
// It keeps two kinds of failure apart, because callers branch on them: a
// probe that went out and got no reply (a *NoReplyError: refused, timed
// out, unreachable; the network's answer) and a probe that never went out
// (bad target or protocol, a namespace that cannot be entered; the caller's
// problem).
//
// RunMatrix probes every pair of a set of pods in parallel (bounded) and
// returns a Matrix, the truth table `podnet probe --matrix` prints in the
// upstream Kubernetes NetworkPolicy e2e format ("." connected, "X" not);
// ParseMatrix reads that format back (an --expect file) and Diff lists the
// cells where two matrices disagree. These are the functions the web UI
// calls too.
//
// Dangerous: the target must be an address. A name would be resolved by
// this machine's resolver, outside the cluster, so names are refused here;
// podnet probe turns pod/NAME and svc/NAME into addresses through the API
// server first (trace.Resolve).
package probe

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/testserver"
)

// Reply is what came back.
type Reply struct {
	// Body is the reply without HTTP headers.
	Body string
	// Pod and Client are the test server's answer: which pod answered and
	// the client address it saw (empty when another server answered).
	Pod, Client string
}

// NoReplyError is a probe that was sent and got no reply.
type NoReplyError struct{ Err error }

func (e *NoReplyError) Error() string { return "no reply: " + e.Err.Error() }
func (e *NoReplyError) Unwrap() error { return e.Err }

// From probes target (ADDR:PORT) over protocol (tcp or udp) from inside the
// namespace at nsPath, waiting up to timeout for a reply. Errors other than
// a *NoReplyError mean nothing was sent.
func From(nsPath, protocol, target string, timeout time.Duration) (Reply, error) {
	if protocol != "tcp" && protocol != "udp" {
		return Reply{}, fmt.Errorf("protocol %q: want tcp or udp", protocol)
	}
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return Reply{}, fmt.Errorf("target: %w", err)
	}
	// An address, never a name: resolving a name here would ask this
	// machine's resolver, not the cluster's DNS (use `podnet exec POD --
	// curl NAME` for names).
	if _, err := netip.ParseAddr(host); err != nil {
		return Reply{}, fmt.Errorf("target %q: give an IP address (names would be resolved by this machine, not the cluster)", target)
	}
	var conn net.Conn
	var dialErr error
	err = netns.Do(nsPath, func() error {
		conn, dialErr = (&net.Dialer{Timeout: timeout}).Dial(protocol, target)
		return nil
	})
	if err != nil {
		return Reply{}, fmt.Errorf("enter network namespace: %w", err)
	}
	if dialErr != nil {
		return Reply{}, &NoReplyError{dialErr}
	}
	defer conn.Close()
	body, err := exchange(conn, protocol, host, timeout)
	if err != nil {
		return Reply{}, &NoReplyError{err}
	}
	r := Reply{Body: body}
	if pod, client, ok := testserver.ParseReply(body); ok {
		r.Pod, r.Client = pod, client
	}
	return r, nil
}

// exchange sends the request and reads the first reply.
func exchange(conn net.Conn, protocol, host string, timeout time.Duration) (string, error) {
	_ = conn.SetDeadline(time.Now().Add(timeout))
	var err error
	if protocol == "udp" {
		_, err = conn.Write([]byte("probe\n"))
	} else {
		_, err = fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", host)
	}
	if err != nil {
		return "", err
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if n == 0 {
		if err == nil {
			err = errors.New("empty reply")
		}
		return "", err
	}
	reply := string(buf[:n])
	if i := strings.Index(reply, "\r\n\r\n"); i >= 0 {
		reply = reply[i+4:]
	}
	return reply, nil
}
