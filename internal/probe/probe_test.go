package probe

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/podnet/podnet/internal/testserver"
)

// A probe target must be an address: a name would be resolved by this
// machine's resolver (outside the cluster) before any packet left the pod.
// None of these is sent, so none is a *NoReplyError.
func TestRefusesNamesAndBadTargets(t *testing.T) {
	for _, tc := range []struct{ protocol, target, err string }{
		{"tcp", "api:8080", "give an IP address"},
		{"tcp", "nginx-service.default.svc.cluster.local:80", "give an IP address"},
		{"tcp", "10.0.0.1", "missing port"},
		{"tcp", "", "missing port"},
		{"sctp", "10.0.0.1:80", "want tcp or udp"},
	} {
		_, err := From("/nonexistent-netns", tc.protocol, tc.target, 10*time.Millisecond)
		var nr *NoReplyError
		if err == nil || errors.As(err, &nr) || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("probe %s %q: %v, want an error (not no-reply) with %q", tc.protocol, tc.target, err, tc.err)
		}
	}
}

// The probes go to loopback in this process's own namespace.
func TestFromOwnNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("entering a network namespace (even this process's own) needs CAP_SYS_ADMIN")
	}
	const self = "/proc/self/ns/net"
	t.Run("the test server's reply names the pod and the client", func(t *testing.T) {
		l := listen(t, func(c net.Conn) {
			_, _ = io.WriteString(c, "HTTP/1.0 200 OK\r\n\r\n"+testserver.Reply("web-1", "127.0.0.1"))
		})
		r, err := From(self, "tcp", l, time.Second)
		if err != nil || r.Pod != "web-1" || r.Client != "127.0.0.1" {
			t.Fatalf("From = %+v, %v; want pod web-1, client 127.0.0.1", r, err)
		}
	})
	t.Run("a server that closes without a word is no reply", func(t *testing.T) {
		l := listen(t, func(net.Conn) {})
		_, err := From(self, "tcp", l, time.Second)
		var nr *NoReplyError
		if !errors.As(err, &nr) {
			t.Fatalf("From: %v, want a NoReplyError", err)
		}
	})
	t.Run("a refused connection is no reply", func(t *testing.T) {
		_, err := From(self, "tcp", closed(t), time.Second)
		var nr *NoReplyError
		if !errors.As(err, &nr) || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("From: %v, want a NoReplyError saying refused", err)
		}
	})
	t.Run("a namespace that cannot be entered is an error", func(t *testing.T) {
		_, err := From("/nonexistent-netns", "tcp", closed(t), time.Second)
		var nr *NoReplyError
		if err == nil || errors.As(err, &nr) || !strings.Contains(err.Error(), "enter network namespace") {
			t.Fatalf("From: %v, want an error entering the namespace", err)
		}
	})
}

// listen serves each TCP connection on loopback with answer (after reading
// the request) and returns the address.
func listen(t *testing.T, answer func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Read(make([]byte, 512))
			answer(c)
			c.Close()
		}
	}()
	return l.Addr().String()
}

// closed is a loopback address nothing listens on.
func closed(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
