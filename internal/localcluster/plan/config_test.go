package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestConfigDefaultsMatchTheContract(t *testing.T) {
	c := DefaultConfig("podnet")
	if err := c.Validate(); err != nil {
		t.Fatalf("the default config is invalid: %v", err)
	}
	sum := sha256.Sum256([]byte("podnet"))
	id := hex.EncodeToString(sum[:])[:6]
	for _, tc := range []struct{ what, got, want string }{
		{"ID", c.ID(), id},
		{"state dir", c.StateDir, "/var/lib/podnet/podnet"},
		{"pod CIDR", c.PodCIDR.String(), "10.244.0.0/16"},
		{"service CIDR", c.ServiceCIDR.String(), "10.96.0.0/16"},
		{"node network", c.NodeNetwork.String(), "172.30.0.0/24"},
		{"root IP", c.RootIP.String(), "172.30.0.1"},
		{"node 1 IP", c.NodeIP(1).String(), "172.30.0.11"},
		{"node 2 IP", c.NodeIP(2).String(), "172.30.0.12"},
		{"node 50 IP", c.NodeIP(50).String(), "172.30.0.60"},
		{"world IP", c.WorldIP.String(), "172.30.0.254"},
		{"world network", c.WorldNetwork.String(), "203.0.113.0/24"},
		{"world lo address", c.WorldLoopbackPrefix().String(), "203.0.113.1/24"},
		{"world DNS", c.WorldDNSIP.String(), "203.0.113.53"},
		{"LB pool", c.LBPool.String(), "172.30.0.200/29"},
		{"API server URL", c.APIServerURL(), "https://172.30.0.1:6443"},
		{"kubernetes Service IP", c.KubernetesServiceIP().String(), "10.96.0.1"},
		{"kube-dns Service IP", c.DNSServiceIP().String(), "10.96.0.10"},
		{"bridge", c.BridgeName(), "pnbr" + id},
		{"node 3 veth", c.NodeVethName(3), "pnu" + id + "n3"},
		{"world veth", c.WorldVethName(), "pnu" + id + "w"},
		{"node 1 name", c.NodeName(1), "podnet-node-1"},
		{"node 1 namespace", c.NodeNSName(1), "podnet-node-1"},
		{"world namespace", c.WorldNSName(), "podnet-world"},
		{"pod namespace", c.PodNSName("3F2A6B1C-8D4E-4a5b-9c0d-1e2f3a4b5c6d"), "podnet-pod-3f2a6b1c8d4e"},
		{"config path", c.Path(), "/var/lib/podnet/podnet/cluster.json"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.what, tc.got, tc.want)
		}
	}
	if got := c.NodeIP(0); got.IsValid() {
		t.Errorf("NodeIP(0) = %v, want the zero Addr", got)
	}
}

func TestConfigInterfaceNamesFitTheKernelLimit(t *testing.T) {
	c := DefaultConfig("abcdefghij0123456789") // the longest name
	for _, n := range []string{c.BridgeName(), c.WorldVethName(), c.NodeVethName(MaxNodes)} {
		if len(n) > 15 {
			t.Errorf("interface name %q is %d bytes, the kernel allows 15", n, len(n))
		}
	}
}

func TestConfigPodNSNameAlwaysHasTheSameShape(t *testing.T) {
	c := DefaultConfig("c")
	for _, uid := range []string{"", "x", "not-a-uid-at-all-zzzzzzzzzzzz", "0123456789ab"} {
		name := c.PodNSName(uid)
		if !c.OwnsNamespace(name) {
			t.Errorf("PodNSName(%q) = %q, which the cluster does not recognise as its own", uid, name)
		}
	}
}

func TestConfigOwnershipIsExact(t *testing.T) {
	a := DefaultConfig("a")
	ab := DefaultConfig("a-b")
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"a-world", true},
		{"a-node-1", true},
		{"a-node-12", true},
		{"a-pod-0123456789ab", true},
		{"a-node-", false},
		{"a-node-1x", false},
		{"a-pod-0123456789a", false},
		{"a-pod-0123456789abc", false},
		{"a-worlds", false},
		{"a-b-world", false},
		{ab.NodeNSName(1), false},
		{ab.PodNSName("0123456789abcdef"), false},
		{"b-node-1", false},
		{"pnt-s-node", false},
	} {
		if got := a.OwnsNamespace(tc.name); got != tc.want {
			t.Errorf("cluster a owns namespace %q: got %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		want bool
	}{
		{a.BridgeName(), true},
		{a.WorldVethName(), true},
		{a.NodeVethName(7), true},
		{a.NodeVethName(7) + "x", false},
		{"pnu" + a.ID() + "n", false},
		{ab.BridgeName(), false},
		{ab.NodeVethName(1), false},
		{"eth0", false},
	} {
		if got := a.OwnsLink(tc.name); got != tc.want {
			t.Errorf("cluster a owns link %q: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestConfigValidateRejects(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"an empty name", func(c *Config) { c.Name = "" }, "cluster name"},
		{"a name with capitals", func(c *Config) { c.Name = "Podnet" }, "cluster name"},
		{"a name starting with a dash", func(c *Config) { c.Name = "-podnet" }, "cluster name"},
		{"a name of 21 characters", func(c *Config) { c.Name = strings.Repeat("a", 21) }, "cluster name"},
		{"a relative state dir", func(c *Config) { c.StateDir = "state" }, "stateDir"},
		{"zero nodes", func(c *Config) { c.Nodes = 0 }, "nodes 0"},
		{"51 nodes", func(c *Config) { c.Nodes = 51 }, "nodes 51"},
		{"a missing pod CIDR", func(c *Config) { c.PodCIDR = netip.Prefix{} }, "podCIDR invalid Prefix: missing"},
		{"a pod CIDR with host bits", func(c *Config) { c.PodCIDR = p("10.244.1.0/16") }, "host bits set (the network is 10.244.0.0/16)"},
		{"an IPv6 pod CIDR", func(c *Config) { c.PodCIDR = p("fd00::/48") }, "want IPv4"},
		{"a pod CIDR of the whole internet", func(c *Config) { c.PodCIDR = p("0.0.0.0/0") }, "prefix length"},
		{"a loopback service CIDR", func(c *Config) { c.ServiceCIDR = p("127.96.0.0/16") }, "special-purpose"},
		{"a service CIDR too small for kube-dns", func(c *Config) { c.ServiceCIDR = p("10.96.0.0/29") }, "serviceCIDR 10.96.0.0/29: want a prefix length of 12 to 28"},
		{"a service CIDR larger than /12", func(c *Config) { c.ServiceCIDR = p("10.0.0.0/11") }, "serviceCIDR"},
		{"a service CIDR inside the pod CIDR", func(c *Config) { c.ServiceCIDR = p("10.244.128.0/20") }, "podCIDR 10.244.0.0/16 overlaps serviceCIDR"},
		{"a world network overlapping the node network", func(c *Config) { c.WorldNetwork = p("172.30.0.0/16"); c.WorldDNSIP = a("172.30.9.9") }, "nodeNetwork 172.30.0.0/24 overlaps worldNetwork"},
		{"a pod CIDR with fewer node ranges than nodes", func(c *Config) { c.PodCIDR = p("10.244.0.0/23"); c.Nodes = 3 }, "holds 2 node ranges of /24, fewer than 3 nodes"},
		{"a node mask larger than the pod CIDR", func(c *Config) { c.NodeCIDRMaskSize = 8 }, "nodeCIDRMaskSize 8"},
		{"a root IP outside the node network", func(c *Config) { c.RootIP = a("172.30.1.1") }, "rootIP 172.30.1.1: want a host address"},
		{"a world IP on the broadcast address", func(c *Config) { c.WorldIP = a("172.30.0.255") }, "worldIP 172.30.0.255"},
		{"nodes running past the node network", func(c *Config) { c.FirstNodeIP = a("172.30.0.240"); c.Nodes = 20 }, "node 16 IP 172.30.0.255"},
		{"a node on the root IP", func(c *Config) { c.FirstNodeIP = a("172.30.0.1") }, "node 1 IP 172.30.0.1 is also rootIP"},
		{"an LB pool outside the node network", func(c *Config) { c.LBPool = p("172.30.1.0/29") }, "lbPool 172.30.1.0/29: want a range inside"},
		{"an LB pool holding the world IP", func(c *Config) { c.LBPool = p("172.30.0.248/29") }, "worldIP 172.30.0.254 is inside lbPool"},
		{"an LB pool holding the nodes", func(c *Config) { c.LBPool = p("172.30.0.8/29") }, "node 1 IP 172.30.0.11 is inside lbPool"},
		{"a world DNS IP outside the world", func(c *Config) { c.WorldDNSIP = a("198.51.100.53") }, "worldDNSIP"},
		{"no API server port", func(c *Config) { c.APIServerPort = 0 }, "apiServerPort"},
		{"a negative etcd port", func(c *Config) { c.EtcdPort = -1 }, "etcdPort"},
		{"an unknown service proxy", func(c *Config) { c.ServiceProxy = "kube-proxy-ipvs" }, `serviceProxy "kube-proxy-ipvs": want one of podnet, kube-proxy-nftables, kube-proxy-iptables`},
		{"no service proxy", func(c *Config) { c.ServiceProxy = "" }, `serviceProxy ""`},
		{"an unknown encryption", func(c *Config) { c.Encryption = "ipsec" }, `encryption "ipsec": want "wireguard" or none`},
		{"strict mode without encryption", func(c *Config) { c.EncryptionStrict = true }, `encryptionStrict: needs encryption "wireguard"`},
		{"an unknown routing mode", func(c *Config) { c.RoutingMode = "bgp" }, `routingMode "bgp"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig("podnet")
			tc.modify(c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	c := DefaultConfig("Bad_Name")
	c.Nodes = 0
	c.ServiceCIDR = netip.MustParsePrefix("10.244.0.0/16")
	c.APIServerPort = 70000
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted four problems")
	}
	for _, want := range []string{"cluster name", "nodes 0", "overlaps serviceCIDR", "apiServerPort"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 4 {
		t.Errorf("got %d lines, want one per problem (4):\n%v", n, err)
	}
}

func TestConfigSaveLoadRoundTrip(t *testing.T) {
	c := DefaultConfig("roundtrip")
	c.StateDir = filepath.Join(t.TempDir(), "state")
	c.Nodes = 5
	c.EtcdPort = 23790
	c.ServiceProxy = ServiceProxyKubeProxyIPTables
	c.Zones = []string{"a", "b"}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(c.StateDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir: %v, %v; want mode 0700", fi.Mode(), err)
	}
	data, err := os.ReadFile(filepath.Join(c.StateDir, "cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"podCIDR": "10.244.0.0/16"`, `"rootIP": "172.30.0.1"`, `"etcdPort": 23790`, `"serviceProxy": "kube-proxy-iptables"`, `"zones": [
    "a",
    "b"
  ]`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("cluster.json lacks %s:\n%s", want, data)
		}
	}
	got, err := Load(c.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, *c) {
		t.Errorf("loaded %+v\nsaved  %+v", *got, *c)
	}
	entries, _ := os.ReadDir(c.StateDir)
	if len(entries) != 1 {
		t.Errorf("state dir holds %d entries, want only cluster.json (no temporary files)", len(entries))
	}
}

func TestConfigSaveRefusesAnInvalidConfig(t *testing.T) {
	c := DefaultConfig("x")
	c.StateDir = t.TempDir()
	c.Nodes = 0
	if err := c.Save(); err == nil {
		t.Error("Save wrote an invalid config")
	}
	if _, err := os.Stat(c.Path()); !os.IsNotExist(err) {
		t.Errorf("cluster.json exists after a refused Save: %v", err)
	}
}

func TestConfigLoadRejects(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"broken JSON", "{", "unexpected end"},
		{"an invalid address", `{"name":"x","podCIDR":"10.244.0.0/33"}`, "10.244.0.0/33"},
		{"an invalid config", `{"name":"x","nodes":0}`, "nodes 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("Load of a directory without cluster.json succeeded")
	}
}

func TestConfigServiceProxy(t *testing.T) {
	c := DefaultConfig("proxies")
	if c.ServiceProxy != ServiceProxyPodnet {
		t.Errorf("default service proxy %q, want %q", c.ServiceProxy, ServiceProxyPodnet)
	}
	for _, tc := range []struct {
		proxy, mode string
		kubeProxy   bool
	}{
		{ServiceProxyPodnet, "", false},
		{ServiceProxyKubeProxyNFTables, "nftables", true},
		{ServiceProxyKubeProxyIPTables, "iptables", true},
	} {
		t.Run(tc.proxy+" runs kube-proxy: "+strconv.FormatBool(tc.kubeProxy), func(t *testing.T) {
			c.ServiceProxy = tc.proxy
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			mode, ok := c.KubeProxyMode()
			if ok != tc.kubeProxy || (ok && mode != tc.mode) {
				t.Errorf("KubeProxyMode() = %q, %v; want %q, %v", mode, ok, tc.mode, tc.kubeProxy)
			}
		})
	}
}

func TestConfigLoadReadsAClusterSavedBeforeServiceProxyAsPodnet(t *testing.T) {
	c := DefaultConfig("old")
	c.StateDir = t.TempDir()
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(c.Path())
	if err != nil {
		t.Fatal(err)
	}
	old := strings.Replace(string(data), `"serviceProxy": "podnet"`, `"x": 0`, 1)
	if old == string(data) {
		t.Fatalf("cluster.json has no serviceProxy to remove:\n%s", data)
	}
	if err := os.WriteFile(c.Path(), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Load(c.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if got.ServiceProxy != ServiceProxyPodnet {
		t.Errorf("service proxy %q, want %q", got.ServiceProxy, ServiceProxyPodnet)
	}
}

// Encryption works with either node runtime and routing mode: the podnet
// runtime's agents are processes, the containerd nodes' come from deploy/
// (the settings in its ConfigMap, the key in a directory of each node).
func TestConfigEncryptionWithEveryNodeRuntimeAndRoutingMode(t *testing.T) {
	for _, rt := range NodeRuntimes {
		for _, mode := range []string{"", "direct", "vxlan"} {
			for _, strict := range []bool{false, true} {
				c := DefaultConfig("podnet")
				c.NodeRuntime, c.RoutingMode, c.Encryption, c.EncryptionStrict = rt, mode, EncryptionWireGuard, strict
				if err := c.Validate(); err != nil {
					t.Errorf("nodeRuntime %s, routingMode %q, strict %v: %v", rt, mode, strict, err)
				}
			}
		}
	}
}
