package policy

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"

	"github.com/podnet/podnet/internal/netns"
)

func kernelNamespace(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: creating network namespaces needs root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("kernel test: the nft binary is missing (Debian package nftables)")
	}
	name := netns.UniqueName("pnt-pol-")
	path, err := netns.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Delete(name) })
	return path
}

// TestKernelLoadsRandomTables: the kernel accepts what the renderer writes
// for random clusters (no overlapping intervals, valid element syntax), as
// a full sync and as incremental changes from one cluster to the next, and
// the sets hold what was rendered.
func TestKernelLoadsRandomTables(t *testing.T) {
	path := kernelNamespace(t)
	rng := rand.New(rand.NewPCG(3, 5))
	ctx := context.Background()
	var s *Syncer
	if err := netns.Do(path, func() error {
		nft, err := NewNFT()
		s = NewSyncer(nft)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	partial := 0
	for round := 0; round < 25; round++ {
		w := randomWorld(rng)
		c, _ := Compile(w.policies, w.pods, w.nss)
		want := Render(c, "node-1")
		var res SyncResult
		err := netns.Do(path, func() (err error) { res, err = s.Sync(ctx, want); return err })
		if err != nil {
			t.Fatalf("round %d: %v\npolicies: %s", round, err, describe(w.policies))
		}
		if !res.Full {
			partial++
		}
		// What the kernel holds, element count per set.
		for _, set := range setNames() {
			out, err := exec.Command("nsenter", "--net="+path, "nft", "-j", "list", "set", "inet", Table, set).CombinedOutput()
			if err != nil {
				t.Fatalf("round %d: list %s: %v %s", round, set, err, out)
			}
			if got, n := countElems(string(out)), len(want[set]); got != n {
				t.Errorf("round %d: set %s holds %d elements, rendered %d", round, set, got, n)
			}
		}
	}
	if partial < 20 {
		t.Errorf("only %d of 25 syncs were incremental", partial)
	}
}

// countElems counts the elements of a set in `nft -j list set` output.
func countElems(js string) int {
	var doc struct {
		Nftables []struct {
			Set *struct {
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		return -1
	}
	for _, o := range doc.Nftables {
		if o.Set != nil {
			return len(o.Set.Elem)
		}
	}
	return -1
}
