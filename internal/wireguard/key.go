package wireguard

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/podnet/podnet/internal/atomicfile"
)

// Key is a node's private key and when it was made (the file's
// modification time).
type Key struct {
	Private wgtypes.Key
	Created time.Time
}

// LoadOrCreateKey reads the private key in path, or makes one and writes
// it there (mode 0600, in a directory of mode 0700) when there is none. A
// file that exists but does not hold a key is an error, not replaced: it
// may be someone else's. The directory is made private too when it is not
// (a DaemonSet's hostPath is made 0755 by the kubelet).
func LoadOrCreateKey(path string) (Key, error) {
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err == nil && st.IsDir() && st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return Key{}, fmt.Errorf("key directory %s is open to others and cannot be made private: %w", dir, err)
		}
	}
	k, err := loadKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		return NewKey(path)
	}
	return k, err
}

func loadKey(path string) (Key, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Key{}, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return Key{}, fmt.Errorf("key file %s is readable by others and cannot be made private: %w", path, err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, err
	}
	priv, err := wgtypes.ParseKey(strings.TrimSpace(string(b)))
	if err != nil {
		return Key{}, fmt.Errorf("key file %s: %w", path, err)
	}
	return Key{Private: priv, Created: st.ModTime()}, nil
}

// NewKey makes a new private key and replaces the file in path with it.
func NewKey(path string) (Key, error) {
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return Key{}, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Key{}, err
	}
	if _, err := atomicfile.WriteIfChanged(path, []byte(priv.String()+"\n"), 0o600); err != nil {
		return Key{}, fmt.Errorf("write key file: %w", err)
	}
	return loadKey(path)
}
