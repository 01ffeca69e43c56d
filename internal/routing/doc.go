// Package routing connects the pod networks of the nodes: every node learns,
// from the Node objects, which pod CIDRs live on which node and routes them.
//
// Two modes:
//   - direct: "podCIDR via nodeIP" routes, for nodes on one L2 segment (the
//     local cluster's underlay, most cloud VPCs with routes, bare metal).
//   - vxlan: a VXLAN device (VNI 1, UDP 4789) with, per peer, a route
//     "podCIDR via <peer VTEP> dev pnvxlan onlink", a permanent neighbor entry
//     and a forwarding-database entry pointing at the peer's node IP. The
//     VTEP address of a node is the first address of its pod CIDR (.0/32) and
//     its MAC is derived from its node IP, so no annotation has to be shared.
//
// Routes carry the protocol number RouteProtocol; the syncer only ever
// changes routes with that protocol, so other software's routes are safe.
//
// Masquerade: traffic from the cluster's pod CIDRs to anything outside the
// pod and service CIDRs is masqueraded in the nftables table "podnet-routing"
// (family inet, chain postrouting, hook postrouting, priority srcnat). The
// table is owned by this package; nothing else writes to it, and it touches
// no other table. Pod-to-pod traffic is never masqueraded.
//
// NewController (controller_linux.go) is the agent's routing controller
// (package controller): it reads the Nodes, and each sync runs
// Syncer.Sync for this node and its peers.
package routing
