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
package announce
