package ctstat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// stat is /proc/net/stat/nf_conntrack of a 2-CPU machine (kernel 6.18).
const stat = `entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000011  00000000 00000000 00000000 00000003 00000000 00000000 00000000 00000000 00000002 0000000a 00000001 00000000  00000000 00000000 00000000 00000000
00000011  00000000 00000000 00000000 00000004 00000000 00000000 00000000 00000000 00000001 00000006 00000000 00000000  00000000 00000000 00000000 00000000
`

// fakeProc writes a procfs tree with the given files (relative paths).
func fakeProc(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestTheTableUsageAndFailuresAreExported(t *testing.T) {
	proc := fakeProc(t, map[string]string{
		"sys/net/netfilter/nf_conntrack_count": "17\n",
		"sys/net/netfilter/nf_conntrack_max":   "262144\n",
		"net/stat/nf_conntrack":                stat,
	})
	want := `# HELP podnet_conntrack_entries Entries in the conntrack table of the node's network namespace (nf_conntrack_count).
# TYPE podnet_conntrack_entries gauge
podnet_conntrack_entries 17
# HELP podnet_conntrack_failures_total Conntrack failures by kind: drop (no entry could be made, table full), early_drop (an entry evicted to make room), insert_failed (an insert race, as parallel UDP queries cause).
# TYPE podnet_conntrack_failures_total counter
podnet_conntrack_failures_total{kind="drop"} 16
podnet_conntrack_failures_total{kind="early_drop"} 1
podnet_conntrack_failures_total{kind="insert_failed"} 3
# HELP podnet_conntrack_max_entries Size limit of the conntrack table (nf_conntrack_max); beyond it new connections are dropped.
# TYPE podnet_conntrack_max_entries gauge
podnet_conntrack_max_entries 262144
`
	if err := testutil.CollectAndCompare(New(proc), strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestAMissingFileLeavesItsMetricsOut(t *testing.T) {
	proc := fakeProc(t, map[string]string{"sys/net/netfilter/nf_conntrack_max": "65536\n"})
	if n := testutil.CollectAndCount(New(proc)); n != 1 {
		t.Errorf("%d metrics from a procfs with only nf_conntrack_max, want 1", n)
	}
}

func TestParseStatRefusesARaggedLine(t *testing.T) {
	if _, err := ParseStat(strings.NewReader("entries drop\n00000001\n")); err == nil {
		t.Error("a line with fewer values than columns: no error")
	}
	if _, err := ParseStat(strings.NewReader("entries drop\n00000001 zz\n")); err == nil {
		t.Error("a value that is not hexadecimal: no error")
	}
}

// TestTheKernelsFilesParse reads this machine's own procfs: the format the
// parser expects is the kernel's.
func TestTheKernelsFilesParse(t *testing.T) {
	f, err := os.Open("/proc/net/stat/nf_conntrack")
	if os.IsNotExist(err) {
		t.Skip("the nf_conntrack module is not loaded: /proc/net/stat/nf_conntrack does not exist")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums, err := ParseStat(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range failureKinds {
		if _, ok := sums[k]; !ok {
			t.Errorf("the kernel's nf_conntrack stat has no %s column: %v", k, sums)
		}
	}
	if n := testutil.CollectAndCount(New("/proc")); n != 5 {
		t.Errorf("%d metrics from /proc, want 5 (entries, max, three failure kinds)", n)
	}
}
