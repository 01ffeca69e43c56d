package nodecleanup

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// libcni's cache after ADDs on three networks, one of whose names starts
// like podnet's: only podnet's results go (no root needed).
func TestCachedResultsOfPodnetsNetworkGoAndNoOthers(t *testing.T) {
	cache := t.TempDir()
	results := filepath.Join(cache, "results")
	if err := os.MkdirAll(results, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(network, container string) string {
		t.Helper()
		p := filepath.Join(results, network+"-"+container+"-eth0")
		body := fmt.Sprintf(`{"kind":"cniCacheV1","containerId":%q,"ifName":"eth0","networkName":%q}`, container, network)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gone := []string{write("podnet", "aaaa"), write("podnet", "bbbb")}
	kept := []string{write("podnet-two", "cccc"), write("other", "dddd")}

	removed, err := removeFiles(Config{CNICacheDir: cache, CNINetwork: "podnet"})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	if !slices.Equal(removed, gone) {
		t.Errorf("removed %v, want %v", removed, gone)
	}
	for _, p := range gone {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s is left: %v", p, err)
		}
	}
	for _, p := range kept {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s, not podnet's, is gone: %v", p, err)
		}
	}
	if again, err := removeFiles(Config{CNICacheDir: cache, CNINetwork: "podnet"}); err != nil || len(again) != 0 {
		t.Errorf("second run removed %v (%v), want nothing", again, err)
	}
}
