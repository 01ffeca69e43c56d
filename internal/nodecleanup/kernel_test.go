package nodecleanup

// Fixture conventions (root only): one throwaway "node" network namespace
// (pnt-clean-XXXXXXXX) and one pod namespace (pnt-cleanpod-XXXXXXXX), both
// removed in t.Cleanup; node address 172.31.R.11/24 on a dummy eth0, peer
// node 172.31.R.12, pod CIDR 10.R.1.0/24 here and 10.R.2.0/24 on the peer,
// with R random in 200-249. The node's files live in a temporary directory.
// podnet's state is made by podnet's own code: the routing, proxy and
// policy syncers, the agent's conflist writer and podnet-cni ADD (built
// for this test and run in the node namespace, as a runtime runs it),
// package wireguard's key file and strict table; the WireGuard device is
// a persistent TUN named pnwg0, as the user-space device leaves it, with a
// route of podnet's protocol into it.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"

	"github.com/podnet/podnet/internal/agent"
	"github.com/podnet/podnet/internal/atomicfile"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/policy"
	"github.com/podnet/podnet/internal/proxy"
	"github.com/podnet/podnet/internal/routing"
	"github.com/podnet/podnet/internal/wireguard"
)

var pluginBin string // podnet-cni built for these tests (root only)

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() == 0 {
			dir, err := os.MkdirTemp("", "podnet-cleanup-test-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			pluginBin = filepath.Join(dir, CNIPlugin)
			if b, err := exec.Command("go", "build", "-o", pluginBin, "../../cmd/podnet-cni").CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build podnet-cni: %v\n%s", err, b)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

type cleanFix struct {
	node, pod string // namespace paths
	r         int
	cfg       Config // the defaults under a temporary Root
	paths     Config // cfg's directories with Root joined
}

func newCleanFix(t *testing.T) *cleanFix {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: creating network namespaces needs root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("kernel test: the nft binary is missing (Debian package nftables)")
	}
	f := &cleanFix{r: 200 + rand.IntN(50)}
	for _, p := range []struct {
		prefix string
		path   *string
	}{{"pnt-clean-", &f.node}, {"pnt-cleanpod-", &f.pod}} {
		name := netns.UniqueName(p.prefix)
		path, err := netns.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = netns.Delete(name) })
		*p.path = path
	}
	f.cfg = DefaultConfig()
	f.cfg.Root = t.TempDir()
	f.paths = f.cfg.rooted()
	for _, d := range []string{f.paths.CNIBinDir, f.paths.RunDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *cleanFix) prefix(format string) netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf(format, f.r))
}

func (f *cleanFix) addr(format string) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf(format, f.r))
}

// podnetState makes, in the node namespace, what an agent and podnet-cni
// make on a node: the three tables, the VXLAN device, routes to the peer,
// the conflist, podnet-cni in the bin dir and one pod wired by ADD.
func (f *cleanFix) podnetState(t *testing.T) {
	t.Helper()
	me := routing.Peer{Name: "n0", NodeIP: f.addr("172.31.%d.11"), PodCIDRs: []netip.Prefix{f.prefix("10.%d.1.0/24")}}
	peer := routing.Peer{Name: "n1", NodeIP: f.addr("172.31.%d.12"), PodCIDRs: []netip.Prefix{f.prefix("10.%d.2.0/24")}}
	masq := routing.MasqConfig{PodCIDRs: []netip.Prefix{f.prefix("10.%d.0.0/16")}, ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16")}}
	err := netns.Do(f.node, func() error {
		ctx := context.Background()
		rnft, err := routing.NewNFT()
		if err != nil {
			return err
		}
		// vxlan first (the device), then direct (routes via the peer).
		for _, mode := range []string{routing.ModeVXLAN, routing.ModeDirect} {
			s, err := routing.NewSyncer(mode, masq, rnft)
			if err != nil {
				return err
			}
			if err := s.Sync(ctx, &me, []routing.Peer{peer}, routing.TunnelRoutes{}); err != nil {
				return fmt.Errorf("routing %s: %w", mode, err)
			}
		}
		pnft, err := proxy.NewNFT()
		if err != nil {
			return err
		}
		if _, err := proxy.NewSyncer(pnft, nil).Sync(ctx, proxy.Config{PodCIDRs: masq.PodCIDRs}, nil); err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
		qnft, err := policy.NewNFT()
		if err != nil {
			return err
		}
		if _, err := policy.NewSyncer(qnft).Sync(ctx, policy.Desired{}); err != nil {
			return fmt.Errorf("policy: %w", err)
		}
		return f.wireguardState(ctx, masq.PodCIDRs, me.PodCIDRs)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.WriteCNIConf(f.paths.CNIConfDir, agent.CNIConf{Network: "podnet", PodCIDRs: me.PodCIDRs, DataDir: f.paths.CNIDataDir, MTU: 1450}); err != nil {
		t.Fatal(err)
	}
	plugin, err := os.ReadFile(pluginBin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := atomicfile.WriteIfChanged(filepath.Join(f.paths.CNIBinDir, CNIPlugin), plugin, 0o755); err != nil {
		t.Fatal(err)
	}
	f.cniAdd(t)
	if err := os.WriteFile(filepath.Join(f.paths.RunDir, "state"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// wireguardState makes, in the current namespace, the strict-mode table,
// the user-space device's persistent TUN and a route to a third node's
// pod CIDR into it, and the node's key file.
func (f *cleanFix) wireguardState(ctx context.Context, cluster, local []netip.Prefix) error {
	wnft, err := wireguard.NewNFT()
	if err != nil {
		return err
	}
	tx := wnft.NewTransaction()
	wireguard.RenderStrict(tx, cluster, local)
	if err := wnft.Run(ctx, tx); err != nil {
		return fmt.Errorf("strict table: %w", err)
	}
	la := netlink.NewLinkAttrs()
	la.Name = wireguard.Device
	if err := netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: la, Mode: netlink.TUNTAP_MODE_TUN, Flags: netlink.TUNTAP_DEFAULTS}); err != nil {
		return fmt.Errorf("persistent TUN %s: %w", wireguard.Device, err)
	}
	dev, err := netlink.LinkByName(wireguard.Device)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(dev); err != nil {
		return err
	}
	_, dst, _ := net.ParseCIDR(fmt.Sprintf("10.%d.4.0/24", f.r))
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: dev.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK, Protocol: routing.RouteProtocol}); err != nil {
		return fmt.Errorf("route into %s: %w", wireguard.Device, err)
	}
	if _, err := wireguard.LoadOrCreateKey(f.paths.WireGuardKeyFile); err != nil {
		return err
	}
	// What the manager saves of its peers (only the file's place matters).
	return os.WriteFile(wireguard.PeersFile(f.paths.WireGuardKeyFile), []byte("[]\n"), 0o600)
}

// cniAdd runs podnet-cni ADD for the pod with the agent's conflist, as
// libcni does: the plugin's entry with the list's name and version.
func (f *cleanFix) cniAdd(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.paths.CNIConfDir, agent.CNIConfFile))
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(b, &list); err != nil || len(list.Plugins) != 1 {
		t.Fatalf("conflist %s: %v", b, err)
	}
	conf := list.Plugins[0]
	conf["cniVersion"], conf["name"] = list.CNIVersion, list.Name
	stdin, _ := json.Marshal(conf)
	cmd := exec.Command("nsenter", "--net="+f.node, filepath.Join(f.paths.CNIBinDir, CNIPlugin))
	cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=cleanup-test-pod", "CNI_NETNS=" + f.pod,
		"CNI_IFNAME=eth0", "CNI_PATH=" + f.paths.CNIBinDir}
	cmd.Stdin = bytes.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("podnet-cni ADD: %v: %s", err, out)
	}
}

// foreignState is what other software has on the node, which cleanup must
// leave: a table, a veth pair named like podnet's but without its alias,
// and a static route.
func (f *cleanFix) foreignState(t *testing.T) {
	t.Helper()
	err := netns.Do(f.node, func() error {
		nft, err := knftables.New(knftables.InetFamily, "keep-me")
		if err != nil {
			return err
		}
		tx := nft.NewTransaction()
		tx.Add(&knftables.Table{})
		if err := nft.Run(context.Background(), tx); err != nil {
			return err
		}
		la := netlink.NewLinkAttrs()
		la.Name = "pnkeep0"
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "pnkeep1"}); err != nil {
			return err
		}
		eth, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		_, dst, _ := net.ParseCIDR(fmt.Sprintf("10.%d.3.0/24", f.r))
		return netlink.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Dst: dst,
			Gw: f.addr("172.31.%d.13").AsSlice(), Protocol: unix.RTPROT_STATIC})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// underlay gives the node its eth0 (a veth whose peer "uplink" stays in
// the node namespace) with the node address.
func (f *cleanFix) underlay(t *testing.T) {
	t.Helper()
	err := netns.Do(f.node, func() error {
		la := netlink.NewLinkAttrs()
		la.Name = "eth0"
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "uplink"}); err != nil {
			return err
		}
		eth, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		a := f.prefix("172.31.%d.11/24")
		if err := netlink.AddrAdd(eth, &netlink.Addr{IPNet: &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(24, 32)}}); err != nil {
			return err
		}
		return netlink.LinkSetUp(eth)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// view is the node's state as cleanup sees it.
type view struct {
	tables      []string
	links       []string
	podnetRoute []string
	otherRoutes []string
	files       []string
}

func (f *cleanFix) view(t *testing.T) view {
	t.Helper()
	var v view
	err := netns.Do(f.node, func() error {
		out, err := exec.Command("nft", "list", "tables").CombinedOutput()
		if err != nil {
			return fmt.Errorf("nft list tables: %v: %s", err, out)
		}
		v.tables = strings.Fields(strings.ReplaceAll(string(out), "table ", ""))
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			v.links = append(v.links, l.Attrs().Name)
		}
		routes, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Dst == nil {
				continue
			}
			if r.Protocol == routing.RouteProtocol {
				v.podnetRoute = append(v.podnetRoute, r.Dst.String())
			} else {
				v.otherRoutes = append(v.otherRoutes, r.Dst.String())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(f.paths.CNIConfDir, agent.CNIConfFile), filepath.Join(f.paths.CNIBinDir, CNIPlugin), f.paths.CNIDataDir, f.paths.RunDir,
		f.paths.WireGuardKeyFile, wireguard.PeersFile(f.paths.WireGuardKeyFile), filepath.Dir(f.paths.WireGuardKeyFile)} {
		if _, err := os.Lstat(p); err == nil {
			v.files = append(v.files, p)
		}
	}
	slices.Sort(v.tables)
	slices.Sort(v.links)
	return v
}

func (f *cleanFix) cleanup(t *testing.T) []string {
	t.Helper()
	var removed []string
	err := netns.Do(f.node, func() error {
		var err error
		removed, err = Run(context.Background(), f.cfg)
		return err
	})
	if err != nil {
		t.Fatalf("cleanup: %v (removed %q)", err, removed)
	}
	return removed
}

func TestKernelCleanupRemovesEveryThingOfPodnetAndNothingElse(t *testing.T) {
	f := newCleanFix(t)
	f.underlay(t)
	f.podnetState(t)
	f.foreignState(t)
	before := f.view(t)
	for _, want := range []string{"inet podnet-proxy", "inet podnet-policy", "inet podnet-routing", "inet podnet-wireguard"} {
		if !strings.Contains(strings.Join(before.tables, " "), strings.Fields(want)[1]) {
			t.Fatalf("fixture: table %s missing from %v", want, before.tables)
		}
	}
	hostVeth := ""
	for _, l := range before.links {
		if strings.HasPrefix(l, "pn") && l != routing.VXLANDevice && l != wireguard.Device && !strings.HasPrefix(l, "pnkeep") {
			hostVeth = l
		}
	}
	if hostVeth == "" || !slices.Contains(before.links, routing.VXLANDevice) || !slices.Contains(before.links, wireguard.Device) ||
		!slices.Contains(before.podnetRoute, f.prefix("10.%d.4.0/24").String()) || len(before.files) != 7 {
		t.Fatalf("fixture: the podnet state is not all there: %+v", before)
	}

	removed := f.cleanup(t)
	joined := strings.Join(removed, "\n")
	for _, want := range []string{"nftables table inet podnet-proxy", "nftables table inet podnet-policy",
		"nftables table inet podnet-routing", "nftables table inet podnet-wireguard", "link pnvxlan (vxlan)", "link pnwg0 (tuntap)",
		"link " + hostVeth + " (veth, podnet:podnet:eth0/cleanup-test-pod)",
		"route " + f.prefix("10.%d.2.0/24").String(), f.paths.CNIDataDir, f.paths.RunDir, f.paths.WireGuardKeyFile + "\n", wireguard.PeersFile(f.paths.WireGuardKeyFile), filepath.Dir(f.paths.WireGuardKeyFile)} {
		if !strings.Contains(joined, want) {
			t.Errorf("removed does not say %q:\n%s", want, joined)
		}
	}
	after := f.view(t)
	if !slices.Equal(after.tables, []string{"inet", "keep-me"}) {
		t.Errorf("tables left: %v, want only inet keep-me", after.tables)
	}
	if !slices.Equal(after.links, []string{"eth0", "lo", "pnkeep0", "pnkeep1", "uplink"}) {
		t.Errorf("links left: %v, want eth0 lo pnkeep0 pnkeep1 uplink", after.links)
	}
	if len(after.podnetRoute) != 0 || !slices.Contains(after.otherRoutes, f.prefix("10.%d.3.0/24").String()) {
		t.Errorf("routes: podnet's %v (want none), others %v (want 10.R.3.0/24 kept)", after.podnetRoute, after.otherRoutes)
	}
	if len(after.files) != 0 {
		t.Errorf("files left: %v", after.files)
	}
	if again := f.cleanup(t); len(again) != 0 {
		t.Errorf("a second run removed %q, want nothing", again)
	}
}

// In deploy/cleanup's pod the key's directory is a hostPath mount under a
// read-only root: the key goes, the directory stays, and that is no
// error. (Root: bind mounts under a temporary directory, undone at the
// end.)
func TestKernelKeyDirectoryThatIsAMountPointStaysWithoutError(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("kernel test: bind mounts need root")
	}
	root := t.TempDir()
	ro, keys := filepath.Join(root, "ro"), filepath.Join(root, "keys")
	keyDir := filepath.Join(ro, "var", "lib", "podnet", "wireguard")
	for _, d := range []string{keyDir, keys} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// ro: a read-only root file system; keyDir: the hostPath in it.
	mount := func(src, dst string, flags uintptr) {
		t.Helper()
		if err := unix.Mount(src, dst, "", flags, ""); err != nil {
			t.Fatalf("mount %s on %s: %v", src, dst, err)
		}
	}
	mount(ro, ro, unix.MS_BIND)
	t.Cleanup(func() { _ = unix.Unmount(ro, unix.MNT_DETACH) })
	mount("", ro, unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY)
	mount(keys, keyDir, unix.MS_BIND)
	t.Cleanup(func() { _ = unix.Unmount(keyDir, unix.MNT_DETACH) })
	keyFile := filepath.Join(keyDir, "private.key")
	if _, err := wireguard.LoadOrCreateKey(keyFile); err != nil {
		t.Fatal(err)
	}

	removed, err := removeFiles(Config{WireGuardKeyFile: keyFile})
	if err != nil {
		t.Errorf("removeFiles: %v", err)
	}
	if len(removed) != 1 || removed[0] != keyFile {
		t.Errorf("removed %q, want only %s", removed, keyFile)
	}
	if _, err := os.Stat(filepath.Join(keys, "private.key")); !os.IsNotExist(err) {
		t.Errorf("the key is still on the host side: %v", err)
	}
	if _, err := os.Stat(keyDir); err != nil {
		t.Errorf("the mount point: %v", err)
	}
}

func TestConfigRefusesToRemoveDirectoriesThatAreNotPodnets(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"the defaults", DefaultConfig(), true},
		{"skipped directories", Config{}, true},
		{"the root", Config{CNIDataDir: "/"}, false},
		{"a shared directory", Config{RunDir: "/run"}, false},
		{"a relative path", Config{CNIDataDir: "podnet"}, false},
		{"a relative key file", Config{WireGuardKeyFile: "private.key"}, false},
		{"a key file that is a directory", Config{WireGuardKeyFile: "/var/lib/podnet/"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
