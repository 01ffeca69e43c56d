package wireguard

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A failed TUN open names what a pod lacks: the device (no hostPath of
// it) or the runtime's leave to use it; any other failure gets no hint.
func TestTUNHintNamesWhatAPodLacks(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "tun")
	if err := os.WriteFile(present, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dev string
		err       error
		want      string
	}{
		{"no device", filepath.Join(dir, "absent"), errors.New(`CreateTUN("pnwg0") failed; /dev/net/tun does not exist`), "deploy/components/wireguard-userspace"},
		{"the device cgroup denies it", present, unix.EPERM, "device rules must allow it"},
		{"it is not readable", present, &os.PathError{Op: "open", Path: present, Err: unix.EACCES}, "device rules must allow it"},
		{"another failure", present, unix.EBUSY, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tunHint(tc.dev, tc.err)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("tunHint = %q, want one containing %q", got, tc.want)
			}
		})
	}
}
