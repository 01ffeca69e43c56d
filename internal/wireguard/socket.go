package wireguard

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// SocketDir holds the control sockets of user-space devices, one
// NAME.sock each (wireguard-go's ipc package and wgctrl look there).
const SocketDir = "/var/run/wireguard"

// SocketPath is the control socket of the user-space device whose
// control socket is named name (Config.UAPIName).
func SocketPath(name string) string { return filepath.Join(SocketDir, name+".sock") }

// RemoveStaleSocket removes the control socket named name when no device
// listens on it any more, and says whether it did. A device that stops
// removes its own; one whose process was killed leaves it. A socket a
// device still listens on, or a file that is no socket, is left, with an
// error.
func RemoveStaleSocket(name string) (bool, error) {
	return removeStaleSocket(SocketPath(name))
}

func removeStaleSocket(path string) (bool, error) {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if st.Mode().Type() != fs.ModeSocket {
		return false, fmt.Errorf("%s is not a socket: left", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return false, fmt.Errorf("control socket %s is in use by a running device: left", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return false, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return true, nil
}
