// Package announce makes exactly one node answer ARP (IPv4) and NDP
// (IPv6) for each LoadBalancer IP (VIP) on the node network, the L2 mode of
// MetalLB without an API write per Service and with sub-second failover.
//
// The contract with the IP allocation: a Service of type LoadBalancer whose
// status.loadBalancer.ingress[].ip is set is announced.
//
// Owner choice (owner.go) is a rendezvous hash of (VIP, node) over the
// eligible nodes: Ready nodes that this agent's heartbeat view (package
// heartbeat) says are alive, and for externalTrafficPolicy Local only
// those with a ready local endpoint. Every agent computes it alone; agents
// with the same view agree, VIPs spread over the nodes, and a leaving node
// moves only its own VIPs.
//
// The pieces: the Speaker (speaker.go) decides which VIPs this node owns in
// its view and sends gratuitous ARP (both forms) and unsolicited NA at a
// takeover and again over a few seconds (Repeats); L2 (l2.go) answers ARP
// requests and neighbour solicitations for owned VIPs only, through
// mdlayher/arp and mdlayher/ndp; the Announcer (announcer.go) joins them to
// the heartbeat; the "lb-announce" controller (controller.go) feeds it
// targets and peers from the informers and makes it leave gracefully when
// the agent stops.
//
// Split brain (two views that disagree) heals on the wire: an owner that
// hears another host claim one of its VIPs compares the (VIP, MAC) ranks of
// both claims; the lower yields for YieldFor, the higher claims again.
//
// Dangerous:
//   - The VIP must never be an address of the node: the kernel would answer
//     ARP for it whether the node owns it or not. Packets to it arrive with
//     a non-local destination and the proxy's prerouting DNAT takes them.
//   - Sockets belong to the namespace they were opened in: NewAnnouncer
//     must run in the node's (the agent runs there; tests open it inside
//     netns.Do).
//   - A node whose heartbeats are lost but whose ARP still works looks dead
//     to its peers, which take its VIPs: the rank rule then settles each
//     VIP on one of them within a round trip, and the loser retries every
//     YieldFor. Watch podnet_lb_conflicts_total.
package announce
