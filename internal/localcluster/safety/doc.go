// Package safety keeps a local cluster off the host's networks: before
// anything is created, CheckHostConflicts refuses a cluster whose ranges
// (pod CIDR, service CIDR, node network, world network, LoadBalancer pool)
// overlap an address or a route of the root network namespace, in any
// table and either family, or a nameserver of /etc/resolv.conf. The
// refusal is one line (*ConflictError) that lists every conflict.
//
// It reads the host through HostSources, so the decision is unit-tested
// with fakes; KernelHostSources reads the calling thread's namespace over
// netlink. LinkNames and KernelRoutes are those readers, also used by the
// topology to find what it must remove.
//
// Dangerous: this check is what stands between a cluster and the host's
// own traffic. It fails closed (a source that cannot be read refuses the
// cluster), and it ignores only what the cluster provably owns: addresses
// and routes on its own bridge and veths (by their exact derived names)
// and its own blackhole routes (its ranges, its metric, the main table),
// so that a cluster can be re-created after a crash. Default routes are
// ignored too: they overlap everything, and the cluster's blackholes are
// more specific.
package safety
