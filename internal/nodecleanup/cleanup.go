package nodecleanup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"

	"github.com/podnet/podnet/internal/agent"
	"github.com/podnet/podnet/internal/cni"
	"github.com/podnet/podnet/internal/nldump"
	"github.com/podnet/podnet/internal/policy"
	"github.com/podnet/podnet/internal/proxy"
	"github.com/podnet/podnet/internal/routing"
	"github.com/podnet/podnet/internal/wireguard"
)

// Tables are podnet's nftables tables, all of family inet.
var Tables = []string{proxy.Table, policy.Table, routing.Table, wireguard.Table}

// CNIPlugin is podnet-cni's file name in the CNI bin dir.
const CNIPlugin = "podnet-cni"

// hostAliasPrefix starts the ifalias podnet-cni gives a pod's host-side
// veth ("podnet:<network>:<ifname>/<containerID>", package cni).
const hostAliasPrefix = "podnet:"

// Config says where the node's podnet files are.
type Config struct {
	CNIConfDir string // holds agent.CNIConfFile
	CNIBinDir  string // holds podnet-cni
	CNIDataDir string // podnet-cni's IPAM directory, removed whole
	RunDir     string // podnet's runtime directory, removed whole
	// CNICacheDir is libcni's cache (the runtime's /var/lib/cni): its
	// results/ keeps each ADD's result until the DEL with the same
	// network, which no runtime sends once the conflist is gone.
	// Only the files of network CNINetwork go.
	CNICacheDir string
	CNINetwork  string // the conflist's network name (the agent's --cni-network)
	// WireGuardKeyFile is the node's WireGuard private key (the agent's
	// --wireguard-key-file): it goes, with the peers saved beside it
	// (wireguard.PeersFile) and the temporary files a crash left of
	// either, and so does its directory once empty.
	WireGuardKeyFile string
	// Root, when set, is where the node's file system is mounted (/host
	// in a `kubectl debug node/...` pod); the directories above are
	// inside it.
	Root string
}

// rooted returns cfg with Root joined to every directory that is set.
func (c Config) rooted() Config {
	if c.Root == "" {
		return c
	}
	for _, d := range []*string{&c.CNIConfDir, &c.CNIBinDir, &c.CNIDataDir, &c.RunDir, &c.CNICacheDir, &c.WireGuardKeyFile} {
		if *d != "" {
			*d = filepath.Join(c.Root, *d)
		}
	}
	c.Root = ""
	return c
}

// DefaultConfig is the paths of deploy/'s DaemonSet and podnet's defaults.
func DefaultConfig() Config {
	return Config{CNIConfDir: "/etc/cni/net.d", CNIBinDir: "/opt/cni/bin",
		CNIDataDir: cni.DefaultDataDir, RunDir: "/run/podnet", CNICacheDir: "/var/lib/cni", CNINetwork: "podnet",
		WireGuardKeyFile: wireguard.DefaultKeyFile}
}

// Validate refuses a directory to remove whole that is not podnet's.
func (c Config) Validate() error {
	var errs []error
	if c.Root != "" && !filepath.IsAbs(c.Root) {
		errs = append(errs, fmt.Errorf("--root %q: want an absolute path", c.Root))
	}
	for _, d := range []struct{ flag, dir string }{{"cni-data-dir", c.CNIDataDir}, {"run-dir", c.RunDir}} {
		if d.dir != "" && (!filepath.IsAbs(d.dir) || !strings.Contains(filepath.Base(d.dir), "podnet")) {
			errs = append(errs, fmt.Errorf("--%s %q: want an absolute path whose last element names podnet", d.flag, d.dir))
		}
	}
	if k := c.WireGuardKeyFile; k != "" && (!filepath.IsAbs(k) || strings.HasSuffix(k, "/")) {
		errs = append(errs, fmt.Errorf("--wireguard-key-file %q: want the absolute path of a file", k))
	}
	return errors.Join(errs...)
}

// Run removes podnet's state from the node (the network namespace of the
// calling thread, the files of cfg) and returns what it removed, one line
// each. It goes on after a failure and returns the failures joined.
func Run(ctx context.Context, cfg Config) ([]string, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, part := range []func() ([]string, error){
		func() ([]string, error) { return removeTables(ctx) },
		removeLinks,
		removeRoutes,
		func() ([]string, error) { return removeFiles(cfg.rooted()) },
	} {
		r, err := part()
		removed = append(removed, r...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}

// removeTables deletes podnet's nftables tables that exist.
func removeTables(ctx context.Context) ([]string, error) {
	var removed []string
	var errs []error
	for _, name := range Tables {
		nft, err := knftables.New(knftables.InetFamily, name)
		if err != nil {
			return removed, fmt.Errorf("nftables: %w", err)
		}
		if _, err := nft.List(ctx, "chains"); knftables.IsNotFound(err) {
			continue
		} else if err != nil {
			errs = append(errs, fmt.Errorf("table inet %s: %w", name, err))
			continue
		}
		tx := nft.NewTransaction()
		tx.Delete(&knftables.Table{})
		if err := nft.Run(ctx, tx); err != nil {
			errs = append(errs, fmt.Errorf("delete table inet %s: %w", name, err))
			continue
		}
		removed = append(removed, "nftables table inet "+name)
	}
	return removed, errors.Join(errs...)
}

// isPodnetLink says whether l is the VXLAN device, the WireGuard device
// (the kernel's, or the user-space one's persistent TUN) or a pod's
// host-side veth made by podnet-cni.
func isPodnetLink(l netlink.Link) bool {
	a := l.Attrs()
	switch l.Type() {
	case "vxlan":
		return a.Name == routing.VXLANDevice
	case "wireguard", "tuntap":
		return a.Name == wireguard.Device
	case "veth":
		return strings.HasPrefix(a.Name, cni.HostIfPrefix) && strings.HasPrefix(a.Alias, hostAliasPrefix)
	}
	return false
}

// removeLinks deletes the VXLAN and WireGuard devices and the pods'
// host-side veths.
func removeLinks() ([]string, error) {
	links, err := nldump.Do(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var removed []string
	var errs []error
	for _, l := range links {
		if !isPodnetLink(l) {
			continue
		}
		if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("delete link %s: %w", l.Attrs().Name, err))
			continue
		}
		what := "link " + l.Attrs().Name + " (" + l.Type()
		if l.Attrs().Alias != "" {
			what += ", " + l.Attrs().Alias
		}
		removed = append(removed, what+")")
	}
	return removed, errors.Join(errs...)
}

// removeRoutes deletes the main table's routes with podnet's protocol.
func removeRoutes() ([]string, error) {
	routes, err := nldump.Do(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: routing.RouteProtocol, Table: unix.RT_TABLE_MAIN},
			netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var removed []string
	var errs []error
	for _, r := range routes {
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %s: %w", r.Dst, err))
			continue
		}
		removed = append(removed, fmt.Sprintf("route %s via %s (protocol %d)", r.Dst, r.Gw, r.Protocol))
	}
	return removed, errors.Join(errs...)
}

// removeFiles deletes the conflist, podnet-cni, the WireGuard key and
// saved peers (with temporary files a crash left of each), the IPAM
// directory and the runtime directory.
func removeFiles(cfg Config) ([]string, error) {
	var paths []string
	add := func(dir, name string) {
		if dir == "" {
			return
		}
		paths = append(paths, filepath.Join(dir, name))
		tmps, _ := filepath.Glob(filepath.Join(dir, "."+name+".tmp-*"))
		paths = append(paths, tmps...)
	}
	add(cfg.CNIConfDir, agent.CNIConfFile)
	add(cfg.CNIBinDir, CNIPlugin)
	if k := cfg.WireGuardKeyFile; k != "" {
		add(filepath.Dir(k), filepath.Base(k))
		p := wireguard.PeersFile(k)
		add(filepath.Dir(p), filepath.Base(p))
	}
	paths = append(paths, cfg.CNIDataDir, cfg.RunDir)
	paths = append(paths, cachedResults(cfg.CNICacheDir, cfg.CNINetwork)...)
	var removed []string
	var errs []error
	for _, p := range paths {
		if p == "" {
			continue
		}
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	// The key's directory, once empty. It stays while it holds other
	// files, or is a mount point: deploy/cleanup's hostPath, under a
	// read-only root (EROFS; EBUSY where the root is writable).
	if k := cfg.WireGuardKeyFile; k != "" {
		dir := filepath.Dir(k)
		if err := unix.Rmdir(dir); err == nil {
			removed = append(removed, dir)
		} else if !slices.ContainsFunc([]error{unix.ENOENT, unix.ENOTEMPTY, unix.EEXIST, unix.EBUSY, unix.EROFS},
			func(e error) bool { return errors.Is(err, e) }) {
			errs = append(errs, fmt.Errorf("remove %s: %w", dir, err))
		}
	}
	return removed, errors.Join(errs...)
}

// cachedResults are the files libcni keeps in dir/results for network's
// ADDs (named <network>-<container>-<ifname>), each checked by the network
// name it records, so that a network whose name merely starts the same
// keeps its own.
func cachedResults(dir, network string) []string {
	if dir == "" || network == "" {
		return nil
	}
	files, _ := filepath.Glob(filepath.Join(dir, "results", network+"-*"))
	var out []string
	for _, f := range files {
		var cached struct {
			NetworkName string `json:"networkName"`
		}
		if b, err := os.ReadFile(f); err == nil && json.Unmarshal(b, &cached) == nil && cached.NetworkName == network {
			out = append(out, f)
		}
	}
	return out
}
