// Package ctstat exports the conntrack table's usage in the network
// namespace of the process that reads it (a node's, for the agent) as
// Prometheus metrics: entries against the limit, and the kernel's
// failure counters that show a table too small (packets dropped because
// no entry could be made, entries evicted early) or the insert race of
// parallel UDP queries (the classic 5-second DNS delay).
//
// It reads /proc/sys/net/netfilter/nf_conntrack_{count,max} and
// /proc/net/stat/nf_conntrack (one line per CPU, summed) at every scrape;
// nothing is kept between scrapes. A file that cannot be read (the
// nf_conntrack module is not loaded yet) leaves its metrics out of that
// scrape rather than failing it.
//
// Dangerous: procfs answers for the network namespace of the reading
// thread; the agent's process lives in its node's namespace, and no
// goroutine may scrape from a thread that netns.Do moved elsewhere (the
// HTTP server's goroutines never are).
package ctstat

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// failureKinds are the columns of /proc/net/stat/nf_conntrack that are
// exported, each under its own name as the kind label:
//   - drop: a new connection's packet dropped, no entry could be made
//     (table full);
//   - early_drop: an unassured entry evicted to make room (table full);
//   - insert_failed: an entry lost the race to be inserted (parallel UDP
//     from one socket, as a resolver's A and AAAA queries).
var failureKinds = []string{"drop", "early_drop", "insert_failed"}

// Collector is the conntrack usage collector.
type Collector struct {
	// set at construction, read-only: proc is the procfs root
	proc string

	entries, max, failures *prometheus.Desc
}

// New returns a collector reading procfs at proc ("/proc" on a node).
func New(proc string) *Collector {
	return &Collector{
		proc: proc,
		entries: prometheus.NewDesc("podnet_conntrack_entries",
			"Entries in the conntrack table of the node's network namespace (nf_conntrack_count).", nil, nil),
		max: prometheus.NewDesc("podnet_conntrack_max_entries",
			"Size limit of the conntrack table (nf_conntrack_max); beyond it new connections are dropped.", nil, nil),
		failures: prometheus.NewDesc("podnet_conntrack_failures_total",
			"Conntrack failures by kind: drop (no entry could be made, table full), early_drop (an entry evicted to make room), insert_failed (an insert race, as parallel UDP queries cause).",
			[]string{"kind"}, nil),
	}
}

// Register adds the collector to r (controller.MetricSet).
func (c *Collector) Register(r prometheus.Registerer) error {
	if err := r.Register(c); err != nil {
		return fmt.Errorf("conntrack metrics: %w", err)
	}
	return nil
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.entries
	ch <- c.max
	ch <- c.failures
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, g := range []struct {
		desc *prometheus.Desc
		file string
	}{{c.entries, "nf_conntrack_count"}, {c.max, "nf_conntrack_max"}} {
		if v, err := readNumber(filepath.Join(c.proc, "sys/net/netfilter", g.file)); err == nil {
			ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v)
		}
	}
	f, err := os.Open(filepath.Join(c.proc, "net/stat/nf_conntrack"))
	if err != nil {
		return
	}
	defer f.Close()
	sums, err := ParseStat(f)
	if err != nil {
		return
	}
	for _, kind := range failureKinds {
		if v, ok := sums[kind]; ok {
			ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(v), kind)
		}
	}
}

func readNumber(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
}

// ParseStat reads /proc/net/stat/nf_conntrack: a header of column names,
// then one line of hexadecimal counters per CPU. It returns each column
// summed over the CPUs (the "entries" column is the same on every line and
// is not summed).
func ParseStat(r io.Reader) (map[string]uint64, error) {
	sc := bufio.NewScanner(r)
	if !sc.Scan() {
		return nil, fmt.Errorf("nf_conntrack stat: no header: %w", sc.Err())
	}
	cols := strings.Fields(sc.Text())
	sums := make(map[string]uint64, len(cols))
	for sc.Scan() {
		vals := strings.Fields(sc.Text())
		if len(vals) != len(cols) {
			return nil, fmt.Errorf("nf_conntrack stat: %d values under %d columns", len(vals), len(cols))
		}
		for i, v := range vals {
			n, err := strconv.ParseUint(v, 16, 64)
			if err != nil {
				return nil, fmt.Errorf("nf_conntrack stat: column %s: %w", cols[i], err)
			}
			if cols[i] == "entries" {
				sums[cols[i]] = n
				continue
			}
			sums[cols[i]] += n
		}
	}
	return sums, sc.Err()
}
