// Package podruntime is the local cluster's kubelet: a pod runtime for
// network namespaces that runs inside one node namespace.
//
// It registers the Node (addresses, capacity, a Ready condition that turns
// true once the CNI configuration exists, heartbeats through a Lease), watches
// the pods bound to the node, and for each one: creates the pod's network
// namespace, calls the CNI plugin through libcni with the conflist found in
// the node's CNI configuration directory (exactly as a container runtime
// does), writes the pod's /etc/resolv.conf and /etc/hosts, runs every
// container's command as a host program inside the pod's namespaces (or
// podnet's built-in test server when the container has no command), honours
// restartPolicy and readiness/liveness probes, and reports status. Deleting a
// pod stops its processes (SIGTERM, then SIGKILL after the grace period),
// calls CNI DEL, removes the namespace and finally deletes the Pod object.
//
// What it does not do, compared with a kubelet: images (the image name is
// only recorded), volumes, resource limits, init containers, ephemeral
// containers, exec/logs through the API server (podnet exec and podnet logs
// go straight to the node's files), static pods, eviction.
//
// Dangerous: container processes run as root host programs with the node's
// file system; only the network, mount (for resolv.conf/hosts) and UTS
// namespaces are the pod's own. Container processes die with the runtime
// (parent-death signal), and a restarted runtime rebuilds every pod.
package podruntime
