// Package ipam hands out the addresses of Services of type LoadBalancer
// from LoadBalancerIPPools (package pool), cluster-wide.
//
// The core is pure: Allocate takes pools and Services (FromService reads
// what matters of a v1.Service: class, families, requested addresses,
// sharing key, ports, the addresses in its status) and returns each
// Service's addresses or why it is pending, and the pools' usage. The
// controller (one active replica, Lease-based leader election) feeds it
// from informers and writes the result into the Services' and the pools'
// status; the node agents' announcers read only
// status.loadBalancer.ingress.
//
// Dangerous:
//   - The allocation lives only in the Services' status. Allocate keeps
//     what the status holds before it hands out anything new, so a restart
//     or a new leader rebuilds exactly the allocation in force; a
//     controller that assigned from an empty or partial cache would hand
//     one address to two Services. The controller therefore syncs only
//     after its informers have synced, and reads its own writes back
//     (written) until its cache has them.
//   - Two Services may hold one address only with the same sharing key
//     and no port in common per protocol; a key is not scoped to a
//     namespace (as MetalLB's is not): anyone who can annotate a Service
//     can join a key.
package ipam
