// Package nodecleanup removes from a node what podnet's agent and
// podnet-cni made there, after an uninstall (`podnet cleanup-node`, run on
// each node by deploy/cleanup/ or `kubectl debug node/...`):
//
//   - the nftables tables inet podnet-proxy, podnet-policy,
//     podnet-routing and podnet-wireguard (package proxy, policy, routing
//     and wireguard own one each);
//   - the VXLAN device pnvxlan (with its neighbour and FDB entries) and
//     the WireGuard device pnwg0 (the kernel's, or the persistent TUN of
//     the user-space one, which outlives the agent with its routes);
//   - the host sides of pods' veth pairs: veths whose name starts with "pn"
//     and whose ifalias starts with "podnet:" (both, as podnet-cni names
//     them; see package cni), which also removes the pods' eth0;
//   - the routes with podnet's protocol number (routing.RouteProtocol) in
//     the main table;
//   - the conflist the agent wrote, podnet-cni in the CNI bin dir, the IPAM
//     directory, /run/podnet, the node's WireGuard private key and the
//     peers its agent saved beside it (their directory too, once empty,
//     unless it is a mount point);
//   - the results libcni cached for podnet's network (the runtime's
//     /var/lib/cni/results/<network>-<container>-<ifname>), which only a DEL
//     through podnet's conflist would remove: a file goes only if the
//     network name it records is podnet's.
//
// It only ever touches objects by those exact names, prefixes and
// protocol: other software's tables, links and routes stay. Running it
// twice is fine (the second run finds nothing). It leaves the forwarding
// sysctls podnet-cni turned on, which other software may rely on.
//
// Dangerous: pods still running on the node lose their network; run it
// once nothing of podnet runs there any more. Directories are removed
// recursively, so Config refuses directories whose name does not contain
// "podnet".
package nodecleanup
