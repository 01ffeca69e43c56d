package localcluster

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/podnet/podnet/internal/localcluster/crinode"
	"github.com/podnet/podnet/internal/localcluster/internal/lctest"
	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/podruntime"
	"github.com/podnet/podnet/internal/proc"
	"github.com/podnet/podnet/internal/wireguard"
)

// TestDownEndsContainersThatOutlivedTheirRuntimeOnEveryNode records a
// container process on each node of a 2-node cluster, as the pod runtime
// does, and checks that Down ends all of them: nodes are numbered from 1,
// so the last node's containers must be found too.
func TestDownEndsContainersThatOutlivedTheirRuntimeOnEveryNode(t *testing.T) {
	lctest.NeedRoot(t) // Down also deletes the (here absent) topology
	c := lctest.RandomConfig(2)
	c.StateDir = filepath.Join(t.TempDir(), "state")
	var recs []*proc.Record
	for i := 1; i <= c.Nodes; i++ {
		dir := podruntime.ContainersDir(c.NodeDir(i))
		rec, err := proc.Start(dir, proc.Spec{Name: "leftover", Argv: []string{"sleep", "60"},
			LogFile: filepath.Join(c.NodeDir(i), "leftover.log")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = proc.Stop(rec, 0) })
		recs = append(recs, rec)
	}
	if err := Down(c); err != nil {
		t.Fatalf("Down: %v", err)
	}
	for i, rec := range recs {
		if proc.Alive(rec) {
			t.Errorf("the container on node %s (pid %d) outlived Down", c.NodeName(i+1), rec.PID)
		}
	}
}

// TestDownRemovesTheWireGuardSocketsOfKilledAgents leaves, as an agent
// killed with SIGKILL does, a control socket nobody listens on for each
// node of an encrypted 2-node cluster, and one of another cluster: Down
// removes the cluster's own and leaves the other.
func TestDownRemovesTheWireGuardSocketsOfKilledAgents(t *testing.T) {
	lctest.NeedRoot(t) // Down also deletes the (here absent) topology; the sockets are in /var/run
	c := lctest.RandomConfig(2)
	c.StateDir = filepath.Join(t.TempDir(), "state")
	c.Encryption = plan.EncryptionWireGuard
	other := lctest.RandomConfig(1)
	stale := func(name string) string {
		t.Helper()
		path := wireguard.SocketPath(name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(path) })
		l.SetUnlinkOnClose(false)
		l.Close()
		return path
	}
	mine := []string{stale(c.WireGuardSocketName(1)), stale(c.WireGuardSocketName(2))}
	theirs := stale(other.WireGuardSocketName(1))
	if err := Down(c); err != nil {
		t.Fatalf("Down: %v", err)
	}
	for _, p := range mine {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s is left after Down (%v)", p, err)
		}
	}
	if _, err := os.Lstat(theirs); err != nil {
		t.Errorf("another cluster's socket %s is gone: %v", theirs, err)
	}
}

// The runtime of a zoned node gets its labels as one --node-labels value
// that pflag's key=value map reads back.
func TestLabelsArgIsSortedKeyValuePairs(t *testing.T) {
	c := lctest.RandomConfig(2)
	c.Zones = []string{"a", "b"}
	if got, want := crinode.LabelsArg(c.NodeLabels(2)), "topology.kubernetes.io/region=local,topology.kubernetes.io/zone=b"; got != want {
		t.Errorf("LabelsArg = %q, want %q", got, want)
	}
}
