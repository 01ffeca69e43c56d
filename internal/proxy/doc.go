// Package proxy is podnet's service proxy, a replacement for kube-proxy on
// nftables. It turns Services and EndpointSlices into one nftables table,
// "podnet-proxy" (family inet), and keeps that table equal to the desired
// state, replacing it atomically in one transaction per sync.
//
// The shape (see README.md in this folder for the table's contract):
//   - one verdict map, keyed by destination address . protocol . port, sends
//     the first packet of a connection to a Service port's chain; NodePorts
//     use a second map keyed by protocol . port, consulted only for the
//     node's own addresses;
//   - each Service port's chain holds one rule that picks an endpoint with
//     "numgen random mod N offset BASE" as the key of ONE global map of
//     endpoint slots (slot -> address . port). There is no anonymous map per
//     Service: adding a Service adds a chain and elements, which keeps large
//     tables fast to load;
//   - Services without endpoints are rejected at once (TCP reset, ICMP port
//     unreachable) from filter chains, never left to time out;
//   - traffic that must be masqueraded (from outside the pod network, to a
//     NodePort or LoadBalancer IP with externalTrafficPolicy Cluster, or a pod
//     reaching itself through its Service) gets a packet mark that the
//     postrouting chain turns into masquerade.
//
// The model (model.go) and the renderer (render.go) are pure functions and are
// tested against knftables' fake; syncer.go runs them against the kernel.
//
// Dangerous: the table sits on the nat and filter hooks of every packet the
// node routes. The syncer only ever replaces the whole table content in one
// transaction, so a failed sync leaves the previous rules in place; it never
// flushes to an empty state on restart.
package proxy
