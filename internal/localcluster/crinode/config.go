package crinode

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// The paths a CNI DaemonSet mounts from its node, which each node gets
// from its own directory (Node.CNIConfDir and the others) in its mount
// namespace. HostWireGuardDir holds the node's WireGuard private key
// (deploy/'s agent mounts it): each node has its own, so that no two
// nodes ever share a key.
const (
	HostCNIConfDir   = "/etc/cni/net.d"
	HostCNIBinDir    = "/opt/cni/bin"
	HostCNILibDir    = "/var/lib/cni"
	HostWireGuardDir = "/var/lib/podnet/wireguard"
)

// SandboxImage is the pause image the node's containerd runs every pod's
// sandbox from (its own default for containerd 2.4).
const SandboxImage = "registry.k8s.io/pause:3.10.1"

// Node is what one node needs to run: its names, addresses and
// directories, and those of the cluster around it.
type Node struct {
	Cluster string     // the cluster's name
	Name    string     // the Node's name (and its network namespace's)
	IP      netip.Addr // its InternalIP, on the underlay
	Dir     string     // its state directory (plan.Config.NodeDir)
	// NetnsPath is its network namespace; MountNSPath is where its mount
	// namespace is kept.
	NetnsPath, MountNSPath string

	Kubeconfig     string // the kubelet's (user system:node:<Name>)
	ServingCert    string // the kubelet API's serving certificate and key
	ServingKey     string
	ClientCAFile   string // the cluster CA: the kubelet API's clients
	ClusterDNS     netip.Addr
	ClusterDomain  string
	ResolvConf     string            // what dnsPolicy: Default pods get
	Labels         map[string]string // --node-labels
	Registry       netip.AddrPort    // every image registry's mirror
	KubeletBin     string
	ContainerdBin  string
	ShimDir        string // where containerd-shim-runc-v2 is (put first on PATH)
	RuncBin        string // runc, Debian's
	LogsDir        string // where containerd.log and kubelet.log go
	ProcsDir       string // process records (package proc)
	ProcessEnviron []string
}

// CgroupRoot is the node's cgroup (the kubelet's --cgroup-root), in every
// cgroup v1 hierarchy.
func (n *Node) CgroupRoot() string { return "/podnet." + n.Name }

// ContainerdDir holds containerd's configuration, root and mirror hosts.
func (n *Node) ContainerdDir() string { return filepath.Join(n.Dir, "containerd") }

// ContainerdSocket is containerd's gRPC socket; short, since a unix
// socket's path has at most 107 bytes.
func (n *Node) ContainerdSocket() string { return filepath.Join(n.Dir, "c.sock") }

// KubeletDir is the kubelet's --root-dir.
func (n *Node) KubeletDir() string { return filepath.Join(n.Dir, "kubelet") }

// PodLogsDir is where the kubelet keeps containers' logs (/var/log/pods).
func (n *Node) PodLogsDir() string { return filepath.Join(n.Dir, "pod-logs") }

// CNIConfDir, CNIBinDir and CNILibDir are the node's own /etc/cni/net.d,
// /opt/cni/bin and /var/lib/cni.
func (n *Node) CNIConfDir() string { return filepath.Join(n.Dir, "cni", "net.d") }
func (n *Node) CNIBinDir() string  { return filepath.Join(n.Dir, "cni", "bin") }
func (n *Node) CNILibDir() string  { return filepath.Join(n.Dir, "cni", "lib") }

// WireGuardDir is the node's own /var/lib/podnet/wireguard (mode 0700),
// where its agent keeps its private key: plan.Config.WireGuardKeyFile's
// directory, the same as the podnet runtime's agents use.
func (n *Node) WireGuardDir() string { return filepath.Join(n.Dir, "wireguard") }

// hostMountPoints are the host paths every node bind-mounts its own
// directories on.
func hostMountPoints() []string {
	var out []string
	for _, b := range (&Node{}).Binds() {
		out = append(out, b.Host)
	}
	return out
}

// Bind is one of the node's bind mounts: its own directory Own (made with
// Mode) over the host path Host.
type Bind struct {
	Host, Own string
	Mode      os.FileMode
}

// Binds are the node's bind mounts.
func (n *Node) Binds() []Bind {
	return []Bind{{HostCNIConfDir, n.CNIConfDir(), 0o755}, {HostCNIBinDir, n.CNIBinDir(), 0o755},
		{HostCNILibDir, n.CNILibDir(), 0o755}, {HostWireGuardDir, n.WireGuardDir(), 0o700}}
}

// ContainerdConfig is containerd's config.toml (version 3, containerd
// 2.x). What differs from containerd's defaults, and why:
//   - root and sockets under the node's directory (state stays /run/containerd,
//     which is the node's own tmpfs);
//   - runc is Debian's, with cgroupfs (no systemd on this machine kind);
//   - restrict_oom_score_adj: the machine has no CAP_SYS_RESOURCE;
//   - every registry is the world's mirror (RegistryHosts), the sandbox
//     image is pinned, and nothing listens beyond the socket (no metrics,
//     no debug, no NRI socket shared between nodes);
//   - pods' network namespaces are kept under containerd's state, so they
//     go with the node;
//   - containerd brings pods' lo up itself (use_internal_loopback): the
//     node has podnet-cni only, no loopback plugin.
func ContainerdConfig(n *Node) []byte {
	var b strings.Builder
	q := func(s string) string { return "'" + s + "'" }
	fmt.Fprintf(&b, `# containerd of node %s of the podnet local cluster %q (podnet up --node-runtime containerd).
version = 3
root = %s
state = '/run/containerd'
disabled_plugins = ['io.containerd.nri.v1.nri', 'io.containerd.snapshotter.v1.btrfs', 'io.containerd.snapshotter.v1.zfs', 'io.containerd.snapshotter.v1.devmapper', 'io.containerd.snapshotter.v1.blockfile', 'io.containerd.snapshotter.v1.erofs', 'io.containerd.differ.v1.erofs', 'io.containerd.mount-handler.v1.erofs', 'io.containerd.tracing.processor.v1.otlp', 'io.containerd.internal.v1.tracing']

[grpc]
  address = %s

[ttrpc]
  address = %s

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = %s
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = %s

  [plugins.'io.containerd.cri.v1.runtime']
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = %s
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = [%s]
      conf_dir = %s
      use_internal_loopback = true

  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'

  [plugins.'io.containerd.internal.v1.opt']
    path = %s

  [plugins.'io.containerd.transfer.v1.local']
    config_path = %s
`, n.Name, n.Cluster, q(filepath.Join(n.ContainerdDir(), "root")), q(n.ContainerdSocket()), q(n.ContainerdSocket()+".ttrpc"),
		q(SandboxImage), q(n.hostsDir()), q(n.RuncBin), q(HostCNIBinDir), q(HostCNIConfDir),
		q(filepath.Join(n.ContainerdDir(), "opt")), q(n.hostsDir()))
	return []byte(b.String())
}

// hostsDir is containerd's registry configuration directory (certs.d).
func (n *Node) hostsDir() string { return filepath.Join(n.ContainerdDir(), "certs.d") }

// RegistryHosts is certs.d/_default/hosts.toml: every registry (docker.io,
// registry.k8s.io, ghcr.io, any other) is the world's registry, which is
// also the server, so containerd has nothing to fall back to outside.
func RegistryHosts(n *Node) []byte {
	url := "http://" + n.Registry.String()
	return fmt.Appendf(nil, `# Every registry is the podnet local cluster's registry in the outside-world namespace.
server = %q

[host.%q]
  capabilities = ["pull", "resolve"]
`, url, url)
}

// KubeletConfig is the kubelet's KubeletConfiguration. What differs from
// a kubeadm node's, and why:
//   - cgroup v1 without systemd: failCgroupV1 false, the cgroupfs driver,
//     and a cgroup root of the node's own (several kubelets share the
//     machine's hierarchies);
//   - oomScoreAdj 0: the machine has no CAP_SYS_RESOURCE to lower it;
//   - every directory under the node's state directory, the API on the
//     node's InternalIP, the healthz on loopback (of the node's namespace);
//   - eviction thresholds low: the disk and memory are the machine's,
//     shared with everything else on it;
//   - the API server authenticates with its client certificate from the
//     cluster CA, and the kubelet asks the API server what it may do.
func KubeletConfig(n *Node) []byte {
	return fmt.Appendf(nil, `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %q
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
oomScoreAdj: 0
failSwapOn: false
containerRuntimeEndpoint: %q
imageServiceEndpoint: %q
address: %q
port: 10250
readOnlyPort: 0
healthzBindAddress: "127.0.0.1"
healthzPort: 10248
tlsCertFile: %q
tlsPrivateKeyFile: %q
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %q
authorization:
  mode: Webhook
clusterDNS: [%q]
clusterDomain: %q
resolvConf: %q
podLogsDir: %q
volumePluginDir: %q
staticPodPath: ""
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
imageGCHighThresholdPercent: 100
serializeImagePulls: false
shutdownGracePeriod: 0s
localStorageCapacityIsolation: false
rotateCertificates: false
serverTLSBootstrap: false
`, n.CgroupRoot(), "unix://"+n.ContainerdSocket(), "unix://"+n.ContainerdSocket(), n.IP.String(),
		n.ServingCert, n.ServingKey, n.ClientCAFile, n.ClusterDNS.String(), n.ClusterDomain, n.ResolvConf,
		n.PodLogsDir(), filepath.Join(n.KubeletDir(), "volume-plugins"))
}

// KubeletArgs is the kubelet's command line.
func KubeletArgs(n *Node) []string {
	args := []string{n.KubeletBin, "--config", filepath.Join(n.Dir, "kubelet.yaml"),
		"--kubeconfig", n.Kubeconfig, "--root-dir", n.KubeletDir(), "--cert-dir", filepath.Join(n.KubeletDir(), "pki"),
		"--hostname-override", n.Name, "--node-ip", n.IP.String()}
	if l := LabelsArg(n.Labels); l != "" {
		args = append(args, "--node-labels", l)
	}
	return args
}
