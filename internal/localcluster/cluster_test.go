package localcluster

import (
	"path/filepath"
	"testing"

	"github.com/podnet/podnet/internal/localcluster/crinode"
	"github.com/podnet/podnet/internal/localcluster/internal/lctest"
	"github.com/podnet/podnet/internal/podruntime"
	"github.com/podnet/podnet/internal/proc"
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

// The runtime of a zoned node gets its labels as one --node-labels value
// that pflag's key=value map reads back.
func TestLabelsArgIsSortedKeyValuePairs(t *testing.T) {
	c := lctest.RandomConfig(2)
	c.Zones = []string{"a", "b"}
	if got, want := crinode.LabelsArg(c.NodeLabels(2)), "topology.kubernetes.io/region=local,topology.kubernetes.io/zone=b"; got != want {
		t.Errorf("LabelsArg = %q, want %q", got, want)
	}
}
