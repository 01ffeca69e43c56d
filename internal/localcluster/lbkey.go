package localcluster

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// lbHeartbeatKey returns the path of the cluster's LoadBalancer heartbeat
// key (32 random bytes, mode 0600, made once per cluster), which every
// agent reads with --lb-key-file: the agents' RBAC has no Secrets.
func lbHeartbeatKey(stateDir string) (string, error) {
	path := filepath.Join(stateDir, "lb-heartbeat.key")
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return path, nil
	}
	if err != nil {
		return "", fmt.Errorf("lb heartbeat key: %w", err)
	}
	_, err = f.Write(key)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("lb heartbeat key: %w", err)
	}
	return path, nil
}
