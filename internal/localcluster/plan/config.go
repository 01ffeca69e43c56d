package plan

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Limits and defaults of a local cluster (see DESIGN-NOTES.md, "Addresses").
const (
	// MaxNodes is the largest node count a Config accepts.
	MaxNodes = 50
	// DefaultNodes is the node count of DefaultConfig.
	DefaultNodes = 2
	// DefaultStateRoot holds one state directory per cluster.
	DefaultStateRoot = "/var/lib/podnet"
	// ConfigFile is the name of the saved Config inside the state directory.
	ConfigFile = "cluster.json"
	// DefaultAPIServerPort is where kube-apiserver listens on the root
	// namespace's underlay address.
	DefaultAPIServerPort = 6443
	// DefaultNodeCIDRMaskSize is the size of the pod range of one node
	// (kube-controller-manager --node-cidr-mask-size).
	DefaultNodeCIDRMaskSize = 24

	// The default ranges; the addresses inside the node and world
	// networks are derived from them (SetNodeNetwork, SetWorldNetwork).
	DefaultPodCIDR      = "10.244.0.0/16"
	DefaultServiceCIDR  = "10.96.0.0/16"
	DefaultNodeNetwork  = "172.30.0.0/24"
	DefaultWorldNetwork = "203.0.113.0/24"
)

// Config describes one local cluster: its name, where its state lives, how
// many nodes it has and every address it uses. It is written to
// <StateDir>/cluster.json by Save and read back by Load, so every command
// (up, down, status, the node runtimes) derives the same names and addresses.
//
// All ranges are IPv4 for now. Names and interface names are derived from
// Name by the methods below; nothing else may invent them.
type Config struct {
	// Name is the cluster name, [a-z0-9-]{1,20}, starting and ending with
	// a letter or digit (it is the first label of every Node name).
	Name string `json:"name"`
	// StateDir holds cluster.json, certificates, logs and process records.
	StateDir string `json:"stateDir"`
	// Nodes is the number of nodes, 1..MaxNodes.
	Nodes int `json:"nodes"`
	// Zones are the names of the cluster's zones (podnet up --zones), at
	// most one per node; node i is in NodeZone(i). None: no zone labels,
	// and node names without a zone (zones.go).
	Zones []string `json:"zones,omitempty"`

	// PodCIDR is the cluster's pod range; kube-controller-manager gives
	// each node a /NodeCIDRMaskSize of it.
	PodCIDR          netip.Prefix `json:"podCIDR"`
	NodeCIDRMaskSize int          `json:"nodeCIDRMaskSize"`
	// ServiceCIDR is the ClusterIP range: the kubernetes Service is its
	// first address, kube-dns its tenth.
	ServiceCIDR netip.Prefix `json:"serviceCIDR"`

	// NodeNetwork is the underlay: the bridge in the root namespace and
	// eth0 of every node and of the world namespace.
	NodeNetwork netip.Prefix `json:"nodeNetwork"`
	// RootIP is the root namespace's address on the bridge (the API
	// server's address).
	RootIP netip.Addr `json:"rootIP"`
	// FirstNodeIP is node 1's address; node i has FirstNodeIP + i - 1.
	FirstNodeIP netip.Addr `json:"firstNodeIP"`
	// WorldIP is the outside-world namespace's address on the underlay,
	// and every node's default gateway.
	WorldIP netip.Addr `json:"worldIP"`
	// LBPool is where LoadBalancer IPs come from, inside NodeNetwork.
	LBPool netip.Prefix `json:"lbPool"`

	// WorldNetwork plays the internet: all of it is local on the world
	// namespace's lo.
	WorldNetwork netip.Prefix `json:"worldNetwork"`
	// WorldDNSIP is where the upstream DNS server of the world listens.
	WorldDNSIP netip.Addr `json:"worldDNSIP"`

	// APIServerPort is kube-apiserver's port on RootIP.
	APIServerPort int `json:"apiServerPort"`
	// EtcdPort is etcd's client port on 127.0.0.1, chosen by up; 0 until
	// then.
	EtcdPort int `json:"etcdPort,omitempty"`

	// ServiceProxy is what proxies Services on every node: one of
	// ServiceProxies (serviceproxy.go). A cluster.json saved before the
	// field existed has none, which Load reads as ServiceProxyPodnet.
	ServiceProxy string `json:"serviceProxy"`

	// NodeRuntime is what runs the nodes' pods: one of NodeRuntimes
	// (noderuntime.go). A cluster.json saved before the field existed has
	// none, which Load reads as NodeRuntimePodnet.
	NodeRuntime string `json:"nodeRuntime,omitempty"`

	// RoutingMode is how nodes reach each other's pods: "direct" or
	// "vxlan" (the agents' --routing-mode); a cluster.json saved before the
	// field existed has none, which means direct.
	RoutingMode string `json:"routingMode,omitempty"`

	// Encryption is "" (off) or "wireguard": the agents encrypt pod
	// traffic between nodes (podnet up --encryption); EncryptionStrict
	// drops what cannot be encrypted (encryption.go).
	Encryption       string `json:"encryption,omitempty"`
	EncryptionStrict bool   `json:"encryptionStrict,omitempty"`
}

// DefaultConfig returns the default configuration of the cluster called
// name, with the contract's addresses. It does not validate name.
func DefaultConfig(name string) *Config {
	c := &Config{
		Name:             name,
		StateDir:         filepath.Join(DefaultStateRoot, name),
		Nodes:            DefaultNodes,
		PodCIDR:          netip.MustParsePrefix(DefaultPodCIDR),
		NodeCIDRMaskSize: DefaultNodeCIDRMaskSize,
		ServiceCIDR:      netip.MustParsePrefix(DefaultServiceCIDR),
		APIServerPort:    DefaultAPIServerPort,
		ServiceProxy:     ServiceProxyPodnet,
		NodeRuntime:      NodeRuntimePodnet,
	}
	if err := errors.Join(c.SetNodeNetwork(netip.MustParsePrefix(DefaultNodeNetwork)),
		c.SetWorldNetwork(netip.MustParsePrefix(DefaultWorldNetwork))); err != nil {
		panic("plan: the default address plan: " + err.Error())
	}
	return c
}

// ID is the first 6 hex digits of sha256(Name). It names the cluster's
// interfaces, which the kernel limits to 15 bytes.
func (c *Config) ID() string {
	sum := sha256.Sum256([]byte(c.Name))
	return hex.EncodeToString(sum[:3])
}

// NodeNSName is the network namespace of node i (1-based): the Node name.
func (c *Config) NodeNSName(i int) string { return c.NodeName(i) }

// WorldNSName is the network namespace of the outside world.
func (c *Config) WorldNSName() string { return c.Name + "-world" }

// BridgeName is the underlay bridge in the root namespace: pnbr<id>.
func (c *Config) BridgeName() string { return "pnbr" + c.ID() }

// NodeVethName is the root-side end of node i's veth pair: pnu<id>n<i>.
func (c *Config) NodeVethName(i int) string { return c.vethPrefix() + "n" + strconv.Itoa(i) }

// WorldVethName is the root-side end of the world's veth pair: pnu<id>w.
func (c *Config) WorldVethName() string { return c.vethPrefix() + "w" }

func (c *Config) vethPrefix() string { return "pnu" + c.ID() }

// PodNSName is the network namespace of the pod with the given UID:
// <cluster>-pod-<first 12 hex digits of the UID>, with the UID's dashes
// removed and letters lowercased. A UID that does not start with 12 hex
// digits (never one the API server made) is hashed instead, so the name
// always has the same shape.
func (c *Config) PodNSName(uid string) string {
	h := strings.ToLower(strings.ReplaceAll(uid, "-", ""))
	if len(h) < 12 || !isHex(h[:12]) {
		sum := sha256.Sum256([]byte(uid))
		h = hex.EncodeToString(sum[:6])
	}
	return c.Name + "-pod-" + h[:12]
}

// NodeIP is node i's underlay address (1-based; node 1 is FirstNodeIP).
// It returns the zero Addr when i is out of 1..MaxNodes.
func (c *Config) NodeIP(i int) netip.Addr {
	if i < 1 || i > MaxNodes || !c.FirstNodeIP.Is4() {
		return netip.Addr{}
	}
	return addN(c.FirstNodeIP, uint32(i-1))
}

// APIServerURL is the URL kubeconfigs use to reach kube-apiserver.
func (c *Config) APIServerURL() string {
	return "https://" + netip.AddrPortFrom(c.RootIP, uint16(c.APIServerPort)).String()
}

// KubernetesServiceIP is the ClusterIP of the default/kubernetes Service:
// the first address of ServiceCIDR.
func (c *Config) KubernetesServiceIP() netip.Addr { return addN(c.ServiceCIDR.Addr(), 1) }

// DNSServiceIP is the ClusterIP of the kube-dns Service: the tenth address
// of ServiceCIDR.
func (c *Config) DNSServiceIP() netip.Addr { return addN(c.ServiceCIDR.Addr(), 10) }

// WorldLoopbackPrefix is the address put on the world namespace's lo: the
// first address of WorldNetwork with its prefix length, which makes every
// address of WorldNetwork local there.
func (c *Config) WorldLoopbackPrefix() netip.Prefix {
	return netip.PrefixFrom(addN(c.WorldNetwork.Addr(), 1), c.WorldNetwork.Bits())
}

// WorldHostIP is the address the world's DNS server gives its zone's hosts
// (example.com, www.example.com): the world network's first address, local
// on the world namespace's lo, where test servers can listen.
func (c *Config) WorldHostIP() netip.Addr { return c.WorldLoopbackPrefix().Addr() }

// BlackholeMetric is the metric of the cluster's blackhole routes in the
// root namespace. It is derived from the ID, so the routes of this cluster
// can be told from the same ranges' routes of another one.
func (c *Config) BlackholeMetric() int {
	sum := sha256.Sum256([]byte(c.Name))
	return BlackholeMetricBase + int(binary.BigEndian.Uint32(append([]byte{0}, sum[:3]...)))
}

// BlackholeMetricBase keeps the metric recognisable: 1,000,000,000 + the
// ID read as a 24-bit number (below 16,777,216).
const BlackholeMetricBase = 1_000_000_000

// BlackholePrefixes are the ranges blackholed in the root namespace: the
// pod CIDR, the service CIDR and the world network.
func (c *Config) BlackholePrefixes() []netip.Prefix {
	return []netip.Prefix{c.PodCIDR, c.ServiceCIDR, c.WorldNetwork}
}

// BridgeMAC is a fixed, locally administered address for the bridge
// (02:70:6e = "pn"), so it does not change as ports come and go.
func (c *Config) BridgeMAC() net.HardwareAddr {
	sum := sha256.Sum256([]byte(c.Name))
	return net.HardwareAddr{0x02, 0x70, 0x6e, sum[0], sum[1], sum[2]}
}

// OwnsLink reports whether a root-namespace interface name is one this
// cluster makes: its bridge, its world veth or a node veth pnu<id>n<digits>.
func (c *Config) OwnsLink(name string) bool {
	if name == c.BridgeName() || name == c.WorldVethName() {
		return true
	}
	rest, ok := strings.CutPrefix(name, c.vethPrefix()+"n")
	return ok && isDigits(rest)
}

// OwnsNamespace reports whether a namespace name is one this cluster makes:
// <name>-world, <name>-node-<digits>, <name>-node-<digits>.<zone> (of any
// zone: a config saved with other zones, or none, still finds them) or
// <name>-pod-<12 hex>. These exact
// shapes matter: cluster "a" must never claim "a-b-node-1" of cluster "a-b".
func (c *Config) OwnsNamespace(name string) bool {
	if name == c.WorldNSName() {
		return true
	}
	if rest, ok := strings.CutPrefix(name, c.Name+"-node-"); ok {
		return ownsNodeName(rest)
	}
	if rest, ok := strings.CutPrefix(name, c.Name+"-pod-"); ok {
		return len(rest) == 12 && isHex(rest)
	}
	return false
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$`)

// ValidateName checks the cluster name alone; deleting a topology needs no
// more.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("cluster name %q: want 1 to 20 of [a-z0-9-], starting and ending with a letter or digit", name)
	}
	return nil
}

// Validate reports every problem of the configuration, joined, or nil.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if err := ValidateName(c.Name); err != nil {
		errs = append(errs, err)
	}
	if c.StateDir == "" || !filepath.IsAbs(c.StateDir) {
		add("stateDir %q: want an absolute path", c.StateDir)
	}
	if c.Nodes < 1 || c.Nodes > MaxNodes {
		add("nodes %d: want 1 to %d", c.Nodes, MaxNodes)
	}
	if c.APIServerPort < 1 || c.APIServerPort > 65535 {
		add("apiServerPort %d: want 1 to 65535", c.APIServerPort)
	}
	if c.EtcdPort < 0 || c.EtcdPort > 65535 {
		add("etcdPort %d: want 0 (not chosen yet) to 65535", c.EtcdPort)
	}
	if err := c.validateServiceProxy(); err != nil {
		errs = append(errs, err)
	}
	if err := c.validateNodeRuntime(); err != nil {
		errs = append(errs, err)
	}
	if err := c.validateEncryption(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.validateZones()...)

	ranges := []struct {
		what    string
		p       netip.Prefix
		minBits int
		maxBits int
	}{
		{"podCIDR", c.PodCIDR, 8, 28},
		// kube-apiserver refuses service ranges larger than /12; kube-dns
		// is the 10th address, so at least 16 addresses.
		{"serviceCIDR", c.ServiceCIDR, 12, 28},
		{"nodeNetwork", c.NodeNetwork, 16, 29},
		{"worldNetwork", c.WorldNetwork, 8, 30},
		{"lbPool", c.LBPool, 16, 32},
	}
	valid := true
	for _, r := range ranges {
		if err := checkRange(r.p, r.minBits, r.maxBits); err != nil {
			add("%s %s: %v", r.what, r.p, err)
			valid = false
		}
	}
	for i, a := range ranges[:4] {
		for _, b := range ranges[i+1 : 4] {
			if a.p.IsValid() && b.p.IsValid() && a.p.Overlaps(b.p) {
				add("%s %s overlaps %s %s", a.what, a.p, b.what, b.p)
			}
		}
	}
	if c.PodCIDR.IsValid() && c.PodCIDR.Addr().Is4() {
		m := c.NodeCIDRMaskSize
		switch {
		case m < c.PodCIDR.Bits() || m > 28:
			add("nodeCIDRMaskSize %d: want %d (the pod CIDR's size) to 28", m, c.PodCIDR.Bits())
		case m-c.PodCIDR.Bits() < 7 && 1<<(m-c.PodCIDR.Bits()) < c.Nodes:
			add("podCIDR %s holds %d node ranges of /%d, fewer than %d nodes", c.PodCIDR, 1<<(m-c.PodCIDR.Bits()), m, c.Nodes)
		}
	}
	if valid {
		errs = append(errs, c.validateUnderlay()...)
	}
	return errors.Join(errs...)
}

// validateUnderlay checks the addresses inside the node and world networks;
// it runs only when the ranges themselves are valid.
func (c *Config) validateUnderlay() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	netw, bcast := c.NodeNetwork.Addr(), lastAddr(c.NodeNetwork)
	hosts := []struct {
		what string
		a    netip.Addr
	}{{"rootIP", c.RootIP}, {"worldIP", c.WorldIP}}
	if c.Nodes >= 1 && c.Nodes <= MaxNodes && c.FirstNodeIP.Is4() {
		for i := 1; i <= c.Nodes; i++ {
			hosts = append(hosts, struct {
				what string
				a    netip.Addr
			}{fmt.Sprintf("node %d IP", i), c.NodeIP(i)})
		}
	} else if !c.FirstNodeIP.Is4() {
		add("firstNodeIP %v: want an IPv4 address", c.FirstNodeIP)
	}
	seen := map[netip.Addr]string{}
	for _, h := range hosts {
		switch {
		case !h.a.Is4():
			add("%s %v: want an IPv4 address", h.what, h.a)
			continue
		case !c.NodeNetwork.Contains(h.a) || h.a == netw || h.a == bcast:
			add("%s %s: want a host address of nodeNetwork %s", h.what, h.a, c.NodeNetwork)
		case c.LBPool.Contains(h.a):
			add("%s %s is inside lbPool %s", h.what, h.a, c.LBPool)
		}
		if other, dup := seen[h.a]; dup {
			add("%s %s is also %s", h.what, h.a, other)
		}
		seen[h.a] = h.what
	}
	if !c.NodeNetwork.Contains(c.LBPool.Addr()) || c.LBPool.Bits() < c.NodeNetwork.Bits() {
		add("lbPool %s: want a range inside nodeNetwork %s", c.LBPool, c.NodeNetwork)
	} else if c.LBPool.Contains(netw) || c.LBPool.Contains(bcast) {
		add("lbPool %s holds the network or broadcast address of nodeNetwork %s", c.LBPool, c.NodeNetwork)
	}
	if !c.WorldDNSIP.Is4() || !c.WorldNetwork.Contains(c.WorldDNSIP) ||
		c.WorldDNSIP == c.WorldNetwork.Addr() || c.WorldDNSIP == lastAddr(c.WorldNetwork) {
		add("worldDNSIP %v: want a host address of worldNetwork %s", c.WorldDNSIP, c.WorldNetwork)
	}
	return errs
}

// checkRange checks that p is a canonical IPv4 network of a sane size, in
// no special-purpose block the kernel treats differently.
func checkRange(p netip.Prefix, minBits, maxBits int) error {
	switch a := p.Addr(); {
	case !p.IsValid():
		return errors.New("missing or not a CIDR")
	case !a.Is4():
		return errors.New("want IPv4")
	case p.Masked() != p:
		return fmt.Errorf("host bits set (the network is %s)", p.Masked())
	case p.Bits() < minBits || p.Bits() > maxBits:
		return fmt.Errorf("want a prefix length of %d to %d", minBits, maxBits)
	case a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast() || a.IsUnspecified() ||
		p.Overlaps(netip.MustParsePrefix("240.0.0.0/4")):
		return errors.New("a special-purpose range (loopback, link-local, multicast or reserved)")
	}
	return nil
}

// Path is the path of cluster.json in the state directory.
func (c *Config) Path() string { return filepath.Join(c.StateDir, ConfigFile) }

// Save validates the configuration and writes it atomically to
// <StateDir>/cluster.json, creating the state directory (mode 0700).
func (c *Config) Save() error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("save cluster config: %w", err)
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("save cluster config: %w", err)
	}
	if err := os.MkdirAll(c.StateDir, 0o700); err != nil {
		return fmt.Errorf("save cluster config: %w", err)
	}
	tmp, err := os.CreateTemp(c.StateDir, ConfigFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("save cluster config: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	_, err = tmp.Write(append(data, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), c.Path())
	}
	if err != nil {
		return fmt.Errorf("save cluster config: %w", err)
	}
	return nil
}

// Load reads <stateDir>/cluster.json and validates it. StateDir is set to
// stateDir, the directory the file was actually found in.
func Load(stateDir string) (*Config, error) {
	path := filepath.Join(stateDir, ConfigFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load cluster config: %w", err)
	}
	c := &Config{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("load cluster config %s: %w", path, err)
	}
	if abs, err := filepath.Abs(stateDir); err == nil {
		stateDir = abs
	}
	c.StateDir = stateDir
	if c.NodeRuntime == "" { // saved before the field existed
		c.NodeRuntime = NodeRuntimePodnet
	}
	if c.ServiceProxy == "" { // saved before the field existed
		c.ServiceProxy = ServiceProxyPodnet
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("load cluster config %s: %w", path, err)
	}
	return c, nil
}

// addN returns a + n for an IPv4 address (wrapping is the caller's problem;
// Validate checks that every derived address stays in its range).
func addN(a netip.Addr, n uint32) netip.Addr {
	if !a.Is4() {
		return netip.Addr{}
	}
	b := a.As4()
	v := binary.BigEndian.Uint32(b[:]) + n
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// lastAddr is the last (broadcast) address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	if !p.Addr().Is4() {
		return netip.Addr{}
	}
	return addN(p.Masked().Addr(), uint32(1)<<(32-p.Bits())-1)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func isHex(s string) bool {
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return s != ""
}
