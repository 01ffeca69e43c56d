// Package wireguard encrypts pod traffic between nodes with WireGuard.
//
// Every node makes its own key pair. The private key is a file readable by
// root only (KeyFile) and never leaves the node; the public key and the
// endpoint (node InternalIP and UDP port) are published as annotations on
// the node's own Node object (AnnotationPublicKey, AnnotationEndpoint,
// AnnotationKeyCreated). Each node configures one WireGuard device, Device
// ("pnwg0"), with a peer for every other node that has published a valid
// key: AllowedIPs are the peer's pod CIDRs and its node IP. Package routing
// then routes those pod CIDRs into the device, in both routing modes:
// WireGuard is itself a UDP tunnel between node IPs, so VXLAN is not needed
// under it.
//
// The device is the kernel's when the kernel has WireGuard, and otherwise a
// user-space one (golang.zx2c4.com/wireguard on a TUN device) that lives in
// the agent process; both are configured the same way, through wgctrl. The
// user-space device's TUN is persistent: it, and the routes into it, stay
// while the agent restarts, so packets wait in (or drop from) its queue and
// never take another path; the new agent attaches to it again.
//
// Strict mode: the nftables table "podnet-wireguard" (family inet, chain
// postrouting, filter hook at priority StrictPriority) drops every packet
// to a pod CIDR of the cluster that is not this node's and does not leave
// through the WireGuard device, and counts it in the named counter
// "strict-drops". So a packet to a remote pod never leaves in the clear,
// also while a peer's key is unknown, a node just joined, or the agent is
// down. The table is owned by this package; nothing else writes to it.
// Without strict mode, traffic to a node whose key is not known (yet) takes
// the plain route (direct or VXLAN) unencrypted.
//
// Rotation: a node makes a new key when its key is older than the rotation
// period, or when its Node's AnnotationRotate names a time after the key
// was made (`podnet rotate-keys`, or kubectl annotate). The peers pick the
// new key up from the Node; in between, packets between that node and its
// peers are dropped for about one sync interval (TCP retransmits them).
//
// model.go is pure (Nodes -> peers, device config, rotation rule, strict
// rules), and so is diff.go (the least change that brings the device to
// that config); key.go keeps the key file; device_linux.go opens the
// device; socket.go finds and removes user-space control sockets that a
// killed agent left; manager_linux.go is what the agent's routing
// controller calls each sync.
package wireguard
