// Package cni implements podnet-cni, the plugin a container runtime executes
// to give a pod its network: a routed veth pair and addresses from podnet's
// own IPAM (package ipam), following the CNI specification 1.1.0 (ADD, DEL,
// CHECK, GC, STATUS and VERSION).
//
// The datapath is routed, with no bridge. Inside the pod, eth0 holds the pod
// address as a /32 (/128) and a default route through a link-local gateway
// (169.254.1.1, fe80::1) whose neighbor entry is permanent, pointing at the
// host side's MAC address. On the node, the host side holds a /32 (/128) route
// to the pod, a permanent neighbor entry for the pod, and proxy ARP as a
// fallback. Every packet of a pod is therefore routed by the node, so the
// node's nftables tables see pod-to-pod traffic on the same node too.
//
// ADD is transactional: every resource it acquires registers an undo that
// runs if a later step fails, and input is fully validated before anything is
// changed. DEL is idempotent: a missing network namespace, link or address is
// success. The host side's name is derived from the container ID and
// interface name (HostIfName), so DEL and GC find it without any other state.
//
// Dangerous: ADD turns on IP forwarding in the node's network namespace
// (IPv4, and IPv6 when an IPv6 range is configured), which routed pod
// networking needs. Setting net.ipv6.conf.all.forwarding makes the node stop
// accepting IPv6 router advertisements on interfaces left at accept_ra=1.
//
// Main is the binary's entry point: the verbs run through skel, and Main
// adds what skel leaves out of the specification (VERSION answers in the
// version it was asked in; every error object carries the config's
// cniVersion). It replaces os.Stdin with a pipe holding what it read, since
// skel reads the config from os.Stdin itself.
//
// The plugin imports no client-go: it is executed once per pod and must start
// fast.
package cni
