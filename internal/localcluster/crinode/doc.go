// Package crinode runs a local cluster's node as a real kubelet and
// containerd (`podnet up --node-runtime containerd`), the way a node of a
// kubeadm cluster runs, inside the node's network namespace and a mount
// namespace of its own.
//
// The mount namespace gives each node what a machine of its own would
// have at the paths a CNI DaemonSet mounts: /etc/cni/net.d, /opt/cni/bin,
// /var/lib/cni and /var/lib/podnet/wireguard (the agent's WireGuard key,
// which no two nodes may share) are the node's directories under the
// state directory, and /run is a fresh tmpfs (containerd's state, its
// shims' sockets and /run/podnet are the node's alone). Everything else of the host's file
// system is shared, so the node's containerd and kubelet keep their own
// paths under the state directory through their configuration.
//
// containerd, its shims, the kubelet and every container they start run
// in cgroups under the node's cgroup root (/podnet.<node> in each cgroup
// v1 hierarchy; the kubelet's --cgroup-root; runc also makes containers'
// cgroups under it in the cgroup2 hierarchy of a hybrid machine,
// /sys/fs/cgroup/unified). Delete ends every process in that tree, so a
// node whose kubelet and containerd were killed with SIGKILL still goes
// away whole, then removes the cgroups (cgroup2's too), the mount
// namespace and the mount points it made on the host.
//
// The renderers (ContainerdConfig, KubeletConfig, RegistryHosts) are pure
// functions of Node; Start writes their output and starts the processes.
package crinode
