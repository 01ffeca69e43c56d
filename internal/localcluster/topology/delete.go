package topology

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/localcluster/safety"
	"github.com/podnet/podnet/internal/netns"
)

// Delete removes everything Create and the pod runtime made
// for the cluster, deriving it from cfg alone, so it works after a crash:
// root-namespace links named pnu<id>n<i>, pnu<id>w and pnbr<id>; every
// namespace in /run/netns named <cluster>-world, <cluster>-node-<i>[.<zone>] or
// <cluster>-pod-<12 hex> (exact shapes, so another cluster whose name starts
// with this one's is never touched); and the blackhole routes of the main
// table with this cluster's metric. It is idempotent; it keeps going after
// an error and returns them all, joined.
//
// Processes still running in a removed namespace keep it alive but
// unreachable; stop them first.
func Delete(cfg *plan.Config) error {
	if err := plan.ValidateName(cfg.Name); err != nil {
		return fmt.Errorf("delete topology: %w", err)
	}
	var errs []error
	// Namespaces first: the kernel then destroys their devices, and with
	// them the root-side ends of the veths, in one batch in the background,
	// while the bridge goes. Deleting veths one by one costs an RCU grace
	// period (~20 ms) each.
	errs = append(errs, deleteOwnNamespaces(cfg)...)
	if err := deleteLink(cfg.BridgeName()); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, deleteOwnBlackholes(cfg)...)
	errs = append(errs, deleteOwnLinks(cfg, vethGrace)...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete topology of cluster %q: %w", cfg.Name, err)
	}
	return nil
}

// vethGrace is how long Delete waits for the kernel to remove the
// root-side veths of removed namespaces before it deletes them itself (it
// must when a process still holds a namespace). Measured: under 1 ms for
// most clusters, ~50 ms for 10 nodes.
const vethGrace = 250 * time.Millisecond

// deleteOwnLinks waits up to grace for the cluster's root-namespace links
// to disappear, then deletes those left: ports first, then the bridge.
func deleteOwnLinks(cfg *plan.Config, grace time.Duration) []error {
	deadline := time.Now().Add(grace)
	for {
		names, err := safety.LinkNames()
		if err != nil {
			return []error{err}
		}
		var own []string
		for _, n := range names {
			if cfg.OwnsLink(n) {
				own = append(own, n)
			}
		}
		if len(own) == 0 {
			return nil
		}
		if time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		slices.SortFunc(own, func(a, b string) int { // the bridge last
			return cmp.Compare(boolInt(a == cfg.BridgeName()), boolInt(b == cfg.BridgeName()))
		})
		var errs []error
		for _, n := range own {
			if err := deleteLink(n); err != nil {
				errs = append(errs, err)
			}
		}
		return errs
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func deleteOwnNamespaces(cfg *plan.Config) []error {
	entries, err := os.ReadDir(netns.RunDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return []error{fmt.Errorf("list namespaces: %w", err)}
	}
	var errs []error
	for _, e := range entries {
		if cfg.OwnsNamespace(e.Name()) {
			if err := netns.Delete(e.Name()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// deleteOwnBlackholes removes the blackhole routes with this cluster's
// metric whatever their destination (cfg's ranges may have been edited
// since they were made), plus cfg's own in case the listing missed one.
func deleteOwnBlackholes(cfg *plan.Config) []error {
	routes, err := safety.KernelRoutes()
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, r := range routes {
		if r.Type == unix.RTN_BLACKHOLE && r.Table == unix.RT_TABLE_MAIN && r.Metric == cfg.BlackholeMetric() && r.Dst.Addr().Is4() {
			if err := deleteRoute(blackholeRoute(cfg, r.Dst)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, p := range cfg.BlackholePrefixes() {
		if p.IsValid() {
			if err := deleteRoute(blackholeRoute(cfg, p)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}
