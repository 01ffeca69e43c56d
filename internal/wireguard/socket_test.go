package wireguard

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// staleSocket makes a unix socket file at path that nobody listens on, as
// a killed device leaves it.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("fixture: %v", err)
	}
}

func TestRemoveStaleSocket(t *testing.T) {
	dir := t.TempDir()
	t.Run("a socket nobody listens on goes", func(t *testing.T) {
		p := filepath.Join(dir, "stale.sock")
		staleSocket(t, p)
		if removed, err := removeStaleSocket(p); !removed || err != nil {
			t.Errorf("removeStaleSocket = %v, %v; want true, nil", removed, err)
		}
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("the socket is still there: %v", err)
		}
	})
	t.Run("a missing socket is nothing to do", func(t *testing.T) {
		if removed, err := removeStaleSocket(filepath.Join(dir, "missing.sock")); removed || err != nil {
			t.Errorf("removeStaleSocket = %v, %v; want false, nil", removed, err)
		}
	})
	t.Run("a socket a device listens on stays", func(t *testing.T) {
		p := filepath.Join(dir, "live.sock")
		l, err := net.Listen("unix", p)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		removed, err := removeStaleSocket(p)
		if removed || err == nil || !strings.Contains(err.Error(), "in use") {
			t.Errorf("removeStaleSocket = %v, %v; want false and an error saying it is in use", removed, err)
		}
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("the live socket is gone: %v", err)
		}
	})
	t.Run("a file that is no socket stays", func(t *testing.T) {
		p := filepath.Join(dir, "file.sock")
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if removed, err := removeStaleSocket(p); removed || err == nil {
			t.Errorf("removeStaleSocket = %v, %v; want false and an error", removed, err)
		}
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("the file is gone: %v", err)
		}
	})
	if got := SocketPath("pnwg0-x-node-1"); got != "/var/run/wireguard/pnwg0-x-node-1.sock" {
		t.Errorf("SocketPath = %s", got)
	}
}
