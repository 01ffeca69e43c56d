// Package guard makes "nothing of the local cluster sends a packet outside
// its own namespaces" a property of the machine rather than of each
// program's flags. The processes podnet up starts in the root network
// namespace (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, and kubectl for `up -f`) run in a cgroup v1 net_cls group
// of the cluster's own, podnet-<cluster>, whose classid (ClassID: 0x70 and
// the cluster's 24-bit ID) every socket they make carries. A table of the
// cluster's own in the root namespace, inet podnet-guard-<id>, matches that
// classid in the output hook and lets those packets reach only loopback
// and the cluster's ranges (node network, pod CIDR, service CIDR, world
// network); anything else, and DNS even to loopback, is counted, logged
// (rate-limited, prefix "podnet-guard-<id> drop: ") and dropped. README.md
// is the table's contract.
//
// The table follows the project's shape: a Model (ForCluster) rendered
// into one knftables transaction (Install), tested as golden text against
// knftables.Fake; Dropped reads its counter and Read everything `podnet
// status` shows.
//
// A process enters the group before its first instruction: Do moves one
// locked OS thread into the group, starts the process from it (children
// inherit the forking thread's cgroup), and moves the thread back; if that
// fails the thread is discarded, never reused. Create mounts the net_cls
// hierarchy privately at <state>/net_cls; Delete removes the table, the
// group and the mount by their exact names, also after a crash.
// Supported checks that the kernel can do it at all; podnet up refuses to
// start without it (docs/local-cluster.md says why).
//
// Dangerous: Create and Delete change the machine: a cgroup mount, a
// group in the machine-wide net_cls hierarchy (every mount of net_cls
// shows the same hierarchy) and an nftables table in the root namespace
// whose drop is final for the confined processes, whatever other tables
// accept. While Do runs, the kernel also re-tags every socket of the
// calling process with the classid (it updates the moved thread's whole
// file table), so the caller's own packets are confined meanwhile.
// Processes podnet does not start (the user's kubectl, `podnet status`)
// are not confined.
package guard
