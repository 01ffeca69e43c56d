// Package proxy is podnet's service proxy, a replacement for kube-proxy on
// nftables. It turns Services and EndpointSlices into one nftables table,
// "podnet-proxy" (family inet), and keeps that table equal to the desired
// state (see README.md in this folder for the table's contract):
//   - one verdict map, keyed by destination address . protocol . port, sends
//     the first packet of a connection to a Service port's chain; NodePorts
//     use a second map keyed by protocol . port, consulted only for the
//     node's own addresses;
//   - a Service port's chain picks an endpoint slot with "ct mark set numgen
//     random mod N offset BASE" and jumps to one shared rule per family and
//     protocol, "dnat to ct mark map @endpoint-slots-…". Only that one rule
//     is bound to each slot map: the kernel checks every element of a map
//     against every rule bound to it, so a rule per Service bound to one map
//     made loading quadratic. Postrouting resets the conntrack mark;
//   - Services without endpoints are rejected at once (TCP reset, ICMP port
//     unreachable) from filter chains, never left to time out; each reject
//     is logged to NFLOG for flow records, rate-limited with the excess
//     counted (package flow/logrule);
//   - traffic that must be masqueraded gets a packet mark that postrouting
//     turns into masquerade; a pod reaching itself through its Service is
//     masqueraded by a set of (endpoint, endpoint) pairs.
//
// The model (model.go) and the renderer (render.go) are pure and are tested
// against knftables' fake with a packet tracer and whole-table golden files
// (testdata/). The renderer's elements are typed values (elements.go) that
// both writers share: knftables formats them, the netlink writer encodes
// them; neither parses the other's text. The syncer (syncer.go) keeps
// the desired state in per-Service-port fragments (state.go), updated in
// place: after a start or a failure it rewrites the whole table in one nft
// transaction; otherwise it writes only what changed, in one transaction.
// A change that only moves endpoints (slot and hairpin elements, and the
// slot-pick rule of a Service whose endpoint count changed) goes over
// netlink (elements.go, github.com/google/nftables) in one atomic batch,
// without running nft. The cost of a change follows the change, not the
// number of Services: PortCache (cache.go) rebuilds only the Services
// informer handlers marked and hands the Syncer only their ports
// (Syncer.Apply); the Syncer compares each with the one its fragment was
// rendered from (sameRender) and renders it again only when they differ.
// Nothing in a sync walks every Service: endpoint slot blocks are released
// by their owner, the Service ports that read the node's addresses, the
// health check ports, the counts of the metrics and the stale conntrack
// entries all follow the changes. Each Service port keeps its endpoint
// slots across syncs, so one Service's change never moves another's.
// NewController (controller.go) is the agent's proxy controller (package
// controller): it reads Services, EndpointSlices and Nodes, Service and
// slice events mark their Service in the PortCache, and a sync runs the
// Syncer and the health check servers (health.go).
//
// Dangerous: the table sits on the nat and filter hooks of every packet the
// node routes. A failed transaction changes nothing in the kernel (and makes
// the next sync a full one); a restart never empties the table before its
// first full sync replaces it. The conntrack mark of a Service connection is
// scratch space while its first packet is translated (values 0x5a000000 and
// up), and is reset to 0 in postrouting.
package proxy
