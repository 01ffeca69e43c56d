// Package topology builds and removes the network of a local cluster
// (DESIGN-NOTES.md, "Names" and "Addresses"): an underlay bridge
// pnbr<id> in the root namespace; one namespace per node
// (<cluster>-node-<i>) and an "outside world" namespace (<cluster>-world)
// hanging off it by veth pairs. Nodes route everything they do not know to
// the world namespace, which has every address of its world network
// (TEST-NET-3 by default) local on its lo and no default route, so it plays
// the internet and the external clients without anything leaving the
// machine.
//
// Dangerous: this package changes the machine's root network namespace. It
// adds a bridge with an address, veths, and blackhole routes for the pod
// CIDR, the service CIDR and the world network (so a mistake is dropped
// locally instead of leaving the machine), and it writes sysctls inside the
// namespaces it creates. Therefore:
//   - Create validates the Config and runs safety.CheckHostConflicts before
//     anything is created, and is transactional: on failure it undoes what
//     it made, newest first, and says in one line which step failed;
//   - Delete removes only objects whose names are derived from the
//     cluster's name and ID (plan.Config.OwnsLink, OwnsNamespace; never a
//     loose prefix), and the blackhole routes carrying the cluster's own
//     metric; it is idempotent and works from the Config alone, after a
//     crash;
//   - no route is added to the root namespace other than the blackholes and
//     the bridge's connected route, and the root does not forward what
//     arrives on the bridge (net.ipv4.conf.pnbr<id>.forwarding=0, IPv6
//     disabled on it), even on a host that forwards; writing the global
//     net.ipv4.ip_forward later resets the former.
//
// Tests that create a topology use random cluster names and a test-only
// address plan that no real cluster uses (package lctest), and remove
// everything in t.Cleanup.
package topology
