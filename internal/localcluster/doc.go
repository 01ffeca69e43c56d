// Package localcluster runs a Kubernetes cluster on one Linux machine, with
// nodes and pods made of network namespaces (`podnet up`). DESIGN-NOTES.md
// fixes the names, addresses and files its parts share.
//
// The network (topology*.go) is an underlay bridge pnbr<id> in the root
// namespace; one namespace per node (<cluster>-node-<i>) and an
// "outside world" namespace (<cluster>-world) hang off it by veth pairs.
// Nodes route everything they do not know to the world namespace, which
// has every address of its world network (TEST-NET-3 by default) local on
// its lo and no default route, so it plays the internet and the external
// clients without anything leaving the machine.
//
// Dangerous: this package changes the machine's root network namespace.
// It adds a bridge with an address, veths, and blackhole routes for the pod
// CIDR, the service CIDR and the world network (so a mistake is dropped
// locally instead of leaving the machine), and it writes sysctls inside
// the namespaces it creates. The only traffic the cluster may send goes to
// loopback and to namespaces this package made. Therefore:
//   - Config.Validate and CheckHostConflicts (safety.go) run before
//     anything is created: a cluster whose ranges overlap an address or a
//     route of the root namespace, or a nameserver of /etc/resolv.conf, is
//     refused in one line that lists every conflict;
//   - CreateTopology is transactional and undoes what it made on failure;
//   - DeleteTopology removes only objects whose names are derived from the
//     cluster's name and ID (never by a loose prefix), and the blackhole
//     routes carrying the cluster's own metric;
//   - no route is added to the root namespace other than the blackholes and
//     the bridge's connected route, and the root does not forward what
//     arrives on the bridge (net.ipv4.conf.pnbr<id>.forwarding=0, IPv6
//     disabled on it), even on a host that forwards; writing the global
//     net.ipv4.ip_forward later resets the former.
//
// The control plane (controlplane*.go) runs in the root namespace: etcd on
// loopback without TLS or authentication (the state directory is root-only),
// kube-apiserver on the bridge address with the cluster's own CA. Dangerous:
// the CA key in pki/ can issue any identity, including system:masters, and
// the controller-manager holds it to sign certificate requests. Processes
// are recorded with their pid and start time (package proc) and ended only
// by those records, never by name.
//
// Up and Down (cluster.go) tie it together: the host check, the topology, the
// control plane, then one pod runtime and one podnet agent per node, each
// started inside its node's namespace. Status and List (status.go) only
// read: a cluster's processes and Nodes, and the clusters saved under a
// state root.
//
// Tests that create a topology use random cluster names and a test-only
// address plan that no real cluster uses, and remove everything in
// t.Cleanup.
package localcluster
