package crinode

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/localcluster/internal/lctest"
)

// The host mount points one cluster's node made go with the last node of
// another cluster, which found them there and has no record of them; a
// host directory that was there before stays. (Root: trusted.* extended
// attributes; under a temporary directory standing for /.)
func TestTheLastNodeOfAnyClusterRemovesTheMountPointsAnyNodeMade(t *testing.T) {
	lctest.NeedRoot(t)
	root := t.TempDir()
	if err := unix.Setxattr(root, createdMark, []byte("1"), 0); errors.Is(err, unix.ENOTSUP) {
		t.Skipf("the file system of %s has no trusted.* extended attributes: only each node's own record works there", root)
	} else if err != nil {
		t.Fatal(err)
	}
	if err := unix.Removexattr(root, createdMark); err != nil {
		t.Fatal(err)
	}
	hostOwn := filepath.Join(root, "opt")
	if err := os.Mkdir(hostOwn, 0o755); err != nil {
		t.Fatal(err)
	}
	conf, bin := filepath.Join(root, "etc", "cni", "net.d"), filepath.Join(hostOwn, "cni", "bin")
	var made []string // what the first cluster's node makes and records
	for _, p := range []string{conf, bin} {
		m, err := mkdirAllNew(p)
		if err != nil {
			t.Fatal(err)
		}
		markCreated(m)
		made = append(made, m...)
	}
	if len(made) != 5 {
		t.Fatalf("made %v, want etc, etc/cni, etc/cni/net.d, opt/cni, opt/cni/bin", made)
	}

	// The other cluster's last node: no record of its own.
	if err := removeCreatedDirs(markedDirs([]string{conf, bin})); err != nil {
		t.Fatal(err)
	}
	for _, d := range made {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s, made by a node, is left: %v", d, err)
		}
	}
	if _, err := os.Stat(hostOwn); err != nil {
		t.Errorf("%s was the host's and is gone: %v", hostOwn, err)
	}
}
