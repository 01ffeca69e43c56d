// Package controller is the one shape of every podnet controller: the
// routing, the service proxy, NetworkPolicy and the DNS zone, and the ones
// still to come. A controller is declared, not wired by hand: its Spec says
// which informers it reads (Sources), how an event marks a key (optional,
// for incremental syncs), and what one Sync does. The Controller then
//
//   - registers handlers that only record the change (Mark the key, note
//     the change for health) and poke a rate-limited runner (package
//     runner); no handler does work. An update carrying the
//     resourceVersion the cache already had is no change: informers
//     deliver every object so at a periodic resync and at the relist after
//     a broken watch (the API server restarted), and marking them all would
//     turn the catch-up after an API-server outage into a rebuild of
//     everything (podnet_controller_events_total counts each outcome);
//   - waits for exactly its informers, and for its handlers to have seen
//     their initial lists, before the first Sync, so no controller acts on
//     a partial cache;
//   - calls Sync at most once per MinInterval, at least once per
//     MaxInterval, and again with exponential backoff after a failure;
//   - counts every sync in one set of metrics shared by all controllers of
//     a process (Metrics: podnet_controller_*{controller="<name>"});
//     each component declares its own metrics as podnet_<component>_* in
//     its own package (docs/metrics.md lists them all);
//   - reports health: unhealthy once a change has waited longer than
//     StallAfter for a successful sync (kube-proxy's /healthz rule); the
//     agent serves it as /healthz/<name>; and readiness (Ready): healthy
//     and synced successfully at least once since the start.
//
// Whoever assembles the controllers gives the informers a client from
// InformerConfig: its reads wait out an API server that refuses
// connections instead of failing into the reflectors' backoff, so the
// informers relist within a second of its return.
//
// Why: the agent and the DNS server used to assemble each controller by
// hand, each with its own runner, health tracking, cache-sync wait and
// failure metrics; the next controllers copy this shape instead.
//
// Dangerous:
//   - Sync must read only the listers of its Sources. A lister of an
//     informer the controller does not list is not waited for, and its
//     cache may be partial at the first sync: the kernel would be
//     programmed from half a cluster (deleting, for example, the routes or
//     the endpoints of everything not yet listed).
//   - Sync must compute the whole desired state from the listers (marks
//     only say what may have changed) and must be safe to repeat: it is
//     retried after failures and repeated every MaxInterval.
//   - Key and Mark run on the informers' goroutines: they must be cheap,
//     must not block, and Mark must be safe for concurrent use with Sync.
//   - Informers must be started (the factory's Start) by whoever assembles
//     the controllers, after every controller was constructed: an informer
//     requested from a factory after Start is never started, and its
//     controller waits forever (and turns unhealthy).
package controller
