// Package podruntime is the local cluster's kubelet: a pod runtime for
// network namespaces that runs inside one node namespace.
//
// It registers the Node (addresses, capacity, the labels of Config.NodeLabels
// such as its zone, kept at restarts, a Ready condition that turns
// true once the CNI configuration exists, heartbeats through a Lease), watches
// the pods bound to the node, and for each one: creates the pod's network
// namespace, calls the CNI plugin through libcni with the conflist found in
// the node's CNI configuration directory (exactly as a container runtime
// does), writes the pod's /etc/resolv.conf and /etc/hosts, runs every
// container's command as a host program inside the pod's namespaces (or
// podnet's built-in test server when the container has no command), honours
// restartPolicy and readiness/liveness probes, and reports status. Deleting a
// pod stops its processes (SIGTERM, then SIGKILL after the grace period;
// as the kubelet does, its liveness probes stop at once while its readiness
// probes go on until each container exits, their results pushed as status),
// calls CNI DEL, removes the namespace and finally deletes the Pod object.
//
// With Config.KubeletAPI set it serves the kubelet API (internal/kubeletapi)
// so that kubectl exec, attach, logs and port-forward work through the API
// server: exec runs beside the container in the pod's namespaces with the
// container's environment (a real pseudo-terminal with -t); port-forward
// dials the pod's loopback from inside its network namespace; logs come from
// each container instance's CRI-format log, logs/<container>/<restarts>.log
// under the pod's directory (the latest two are kept, for --previous), while
// logs/<container>.log keeps the plain output of every instance for podnet
// logs. The Node advertises the port in status.daemonEndpoints.
//
// It records the Events of `kubectl describe pod` as the kubelet does
// (events.go): Created and Started, Failed, Killing, BackOff, Unhealthy with
// the probe's output, FailedCreatePodSandBox with the CNI error and
// NetworkNotReady while the node has no CNI configuration, from component
// "kubelet", through client-go's correlator (repeats counted, similar
// events combined, rate-limited per pod).
//
// What it does not do, compared with a kubelet: images (the image name is
// only recorded), volumes, resource limits, init containers, ephemeral
// containers, a container's own stdin and TTY (spec.stdin/tty: attach only
// streams output), static pods, eviction.
//
// Dangerous: container processes run as root host programs with the node's
// file system; only the network, mount (for resolv.conf/hosts) and UTS
// namespaces are the pod's own. Container processes die with the runtime
// (parent-death signal), and a restarted runtime rebuilds every pod.
package podruntime
