// Package localcluster runs a Kubernetes cluster on one Linux machine, with
// nodes and pods made of network namespaces (`podnet up`). It is the thin
// top that assembles the parts, each a package of its own:
//
//	plan/          the Config: names, addresses and files, saved in
//	               cluster.json (DESIGN-NOTES.md in code)
//	safety/        the refusal of a cluster that overlaps the host
//	topology/      the underlay bridge, node and world namespaces, routes
//	controlplane/  etcd, kube-apiserver, kube-controller-manager,
//	               kube-scheduler: flags, PKI, RBAC, start, wait
//	addons/        the cluster DNS Deployment and the world's DNS server
//	guard/         the net_cls group and nftables table that keep the
//	               root-namespace processes inside the cluster's ranges
//	crinode/       a node as a real kubelet and containerd (--node-runtime
//	               containerd): configuration, namespaces, cgroups
//
// Up checks the binaries, the kernel (net_cls, for the guard) and the host,
// creates the topology, starts the world's DNS server, installs the guard,
// starts the control plane confined by it, then one pod runtime and one
// podnet agent per node inside its namespace (and upstream kube-proxy, with
// the agent's proxy off, when Config.ServiceProxy names a kube-proxy mode:
// kubeproxy.go); it waits for the nodes to be Ready and deploys the
// cluster DNS. With Config.NodeRuntime containerd, each node is a kubelet
// and containerd instead, and podnet is installed from deploy/ with
// kubectl (containerd.go). Down undoes all of it. FindPod tells
// the CLI where a pod lives: its node, its namespace, its state directory.
// DESIGN-NOTES.md fixes the contract between these parts.
//
// Dangerous: Up changes the machine's root network namespace (a bridge,
// veths, blackhole routes; see package topology; the guard's table and a
// net_cls cgroup mount, see package guard) and runs root processes
// holding a CA that can mint any identity (see package controlplane).
// Nothing is created before safety.CheckHostConflicts accepts the cluster,
// and a failed Up removes everything it made. Processes are recorded with
// their pid and start time (package proc) and ended only by those records,
// never by name; Down removes only what the cluster's names derive.
//
// Status and List (status.go) only read: a cluster's processes, guard and
// Nodes, and the clusters saved under a state root.
package localcluster
