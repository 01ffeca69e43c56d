package topology

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/localcluster/safety"
	"github.com/podnet/podnet/internal/netns"
)

// The interface each node and the world have on the underlay.
const underlayIfName = "eth0"

// Create builds the cluster's network: in the root namespace the
// bridge pnbr<id> with RootIP (and no forwarding or IPv6 on it) and
// blackhole routes for the pod CIDR, the service CIDR and the world
// network; the world namespace on the bridge with all of WorldNetwork local
// on its lo and no default route; and one namespace per node on the bridge
// with its default route via the world. Node and world namespaces forward
// IPv4 (net.ipv4.ip_forward=1) without reverse-path filtering (rp_filter 0
// for all and default).
//
// It validates cfg and runs safety.CheckHostConflicts first, so nothing is
// created when the cluster would overlap the host. It is transactional: on failure
// everything it created is removed again, and the one-line error says which
// step failed. It never removes what it did not create, so a leftover of an
// earlier run makes it fail (run Delete first).
func Create(cfg *plan.Config) (err error) {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("create topology: %w", err)
	}
	if err := safety.CheckHostConflicts(cfg); err != nil {
		return err
	}
	var u undoStack
	defer func() {
		if err != nil {
			err = u.rollback(fmt.Errorf("create topology of cluster %q: %w", cfg.Name, err))
		}
	}()
	if err := createBridge(cfg, &u); err != nil {
		return err
	}
	if err := addBlackholes(cfg, &u); err != nil {
		return err
	}
	if err := createWorld(cfg, &u); err != nil {
		return err
	}
	for i := 1; i <= cfg.Nodes; i++ {
		if err := addNode(cfg, i, &u); err != nil {
			return err
		}
	}
	return nil
}

// AddNode adds node i (1..cfg.Nodes) to an existing topology: its namespace,
// its veth pair on the bridge, its address and its default route via the
// world. It is transactional like Create.
func AddNode(cfg *plan.Config, i int) (err error) {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("add node %d: %w", i, err)
	}
	if i < 1 || i > cfg.Nodes {
		return fmt.Errorf("add node %d: want 1 to %d (raise Nodes first)", i, cfg.Nodes)
	}
	var u undoStack
	defer func() {
		if err != nil {
			err = u.rollback(fmt.Errorf("cluster %q: %w", cfg.Name, err))
		}
	}()
	return addNode(cfg, i, &u)
}

func createBridge(cfg *plan.Config, u *undoStack) error {
	name := cfg.BridgeName()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.HardwareAddr = cfg.BridgeMAC()
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		return fmt.Errorf("create bridge %s: %w", name, explainExist(err))
	}
	u.push("delete bridge "+name, func() error { return deleteLink(name) })
	br, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if err := writeSysctls(bridgeSysctls(name)); err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	root := netip.PrefixFrom(cfg.RootIP, cfg.NodeNetwork.Bits())
	if err := netlink.AddrAdd(br, &netlink.Addr{IPNet: ipNet(root)}); err != nil {
		return fmt.Errorf("add %s to bridge %s: %w", root, name, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("set bridge %s up: %w", name, err)
	}
	return nil
}

func blackholeRoute(cfg *plan.Config, p netip.Prefix) *netlink.Route {
	return &netlink.Route{
		Dst:      ipNet(p),
		Type:     unix.RTN_BLACKHOLE,
		Table:    unix.RT_TABLE_MAIN,
		Priority: cfg.BlackholeMetric(),
	}
}

func addBlackholes(cfg *plan.Config, u *undoStack) error {
	for _, p := range cfg.BlackholePrefixes() {
		r := blackholeRoute(cfg, p)
		if err := netlink.RouteAdd(r); err != nil {
			return fmt.Errorf("add blackhole route %s: %w", p, explainExist(err))
		}
		u.push("delete blackhole route "+p.String(), func() error { return deleteRoute(r) })
	}
	return nil
}

// sysctl is one setting written inside a namespace, relative to /proc/sys.
type sysctl struct{ key, value string }

// bridgeSysctls keep the root namespace from routing for the cluster, even
// when the host forwards: nothing received on the bridge is forwarded
// (IPv4; reset if someone later writes the global ip_forward), and the
// bridge takes no part in IPv6, so IPv6 from the cluster is dropped on
// arrival. Local delivery (to the API server on RootIP) is unaffected.
func bridgeSysctls(bridge string) []sysctl {
	out := []sysctl{{"net/ipv4/conf/" + bridge + "/forwarding", "0"}}
	if _, err := os.Stat("/proc/sys/net/ipv6/conf/" + bridge); err == nil {
		out = append(out, sysctl{"net/ipv6/conf/" + bridge + "/disable_ipv6", "1"})
	}
	return out
}

// forwardingSysctls make a namespace a router that does not drop packets
// whose source it would not route back the same way. The default applies
// to interfaces created later (eth0 and the pods' veths).
var forwardingSysctls = []sysctl{
	{"net/ipv4/ip_forward", "1"},
	{"net/ipv4/conf/all/rp_filter", "0"},
	{"net/ipv4/conf/default/rp_filter", "0"},
}

func createWorld(cfg *plan.Config, u *undoStack) error {
	path, err := createNamespace(cfg.WorldNSName(), u)
	if err != nil {
		return fmt.Errorf("world: %w", err)
	}
	if err := attachToBridge(cfg, path, cfg.WorldVethName(), u); err != nil {
		return fmt.Errorf("world: %w", err)
	}
	err = netns.Do(path, func() error {
		if err := configureUnderlay(netip.PrefixFrom(cfg.WorldIP, cfg.NodeNetwork.Bits())); err != nil {
			return err
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		local := cfg.WorldLoopbackPrefix()
		if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: ipNet(local)}); err != nil {
			return fmt.Errorf("add %s to lo: %w", local, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("world: configure namespace %s: %w", cfg.WorldNSName(), err)
	}
	return nil
}

func addNode(cfg *plan.Config, i int, u *undoStack) error {
	name := cfg.NodeNSName(i)
	path, err := createNamespace(name, u)
	if err != nil {
		return fmt.Errorf("node %d: %w", i, err)
	}
	if err := attachToBridge(cfg, path, cfg.NodeVethName(i), u); err != nil {
		return fmt.Errorf("node %d: %w", i, err)
	}
	err = netns.Do(path, func() error {
		if err := configureUnderlay(netip.PrefixFrom(cfg.NodeIP(i), cfg.NodeNetwork.Bits())); err != nil {
			return err
		}
		eth0, err := netlink.LinkByName(underlayIfName)
		if err != nil {
			return err
		}
		def := &netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: cfg.WorldIP.AsSlice()}
		if err := netlink.RouteAdd(def); err != nil {
			return fmt.Errorf("add default route via %s: %w", cfg.WorldIP, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("node %d: configure namespace %s: %w", i, name, err)
	}
	return nil
}

// createNamespace makes a named namespace with forwardingSysctls set and
// registers its removal.
func createNamespace(name string, u *undoStack) (string, error) {
	path, err := netns.Create(name)
	if err != nil {
		return "", fmt.Errorf("create namespace %s: %w", name, explainExist(err))
	}
	u.push("delete namespace "+name, func() error { return netns.Delete(name) })
	if err := netns.Do(path, func() error { return writeSysctls(forwardingSysctls) }); err != nil {
		return "", fmt.Errorf("namespace %s: %w", name, err)
	}
	return path, nil
}

// writeSysctls writes settings of the calling thread's network namespace:
// /proc/sys/net follows the namespace of the thread that opens it.
func writeSysctls(settings []sysctl) error {
	for _, s := range settings {
		if err := os.WriteFile(filepath.Join("/proc/sys", s.key), []byte(s.value), 0o644); err != nil {
			return fmt.Errorf("set %s=%s: %w", strings.ReplaceAll(s.key, "/", "."), s.value, err)
		}
	}
	return nil
}

// attachToBridge creates a veth pair whose far end is eth0 inside the
// namespace at nsPath (created there directly, so no name clash with the
// root's own eth0) and whose near end, hostName, is a port of the bridge.
func attachToBridge(cfg *plan.Config, nsPath, hostName string, u *undoStack) error {
	br, err := netlink.LinkByName(cfg.BridgeName())
	if err != nil {
		return fmt.Errorf("bridge %s: %w", cfg.BridgeName(), err)
	}
	ns, err := vnetns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = hostName
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: underlayIfName, PeerNamespace: netlink.NsFd(ns)}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s: %w", hostName, explainExist(err))
	}
	u.push("delete veth "+hostName, func() error { return deleteLink(hostName) })
	host, err := netlink.LinkByName(hostName)
	if err != nil {
		return fmt.Errorf("veth %s: %w", hostName, err)
	}
	if err := netlink.LinkSetMaster(host, br); err != nil {
		return fmt.Errorf("attach %s to bridge %s: %w", hostName, cfg.BridgeName(), err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("set %s up: %w", hostName, err)
	}
	return nil
}

// configureUnderlay gives eth0 of the calling thread's namespace its
// address and brings it up.
func configureUnderlay(addr netip.Prefix) error {
	eth0, err := netlink.LinkByName(underlayIfName)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(eth0, &netlink.Addr{IPNet: ipNet(addr)}); err != nil {
		return fmt.Errorf("add %s to %s: %w", addr, underlayIfName, err)
	}
	if err := netlink.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("set %s up: %w", underlayIfName, err)
	}
	return nil
}

// deleteLink removes a root-namespace link; a missing one is success.
func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("find link %s: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// deleteRoute removes a root-namespace route; a missing one is success.
func deleteRoute(r *netlink.Route) error {
	if err := netlink.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("delete route %s: %w", r.Dst, err)
	}
	return nil
}

// explainExist replaces "already exists" errors by one that says so and
// hints at the likely cause: a leftover of an earlier run.
func explainExist(err error) error {
	if errors.Is(err, fs.ErrExist) || errors.Is(err, unix.EEXIST) {
		return existError{err}
	}
	return err
}

// existError is an "already exists" error (errors.Is(err, fs.ErrExist)).
type existError struct{ err error }

// Error says what happened without the kernel's wording ("file exists").
func (e existError) Error() string {
	return "already exists (a leftover of an earlier run? `podnet down` removes it)"
}

// Unwrap returns the original error (fs.ErrExist or EEXIST).
func (e existError) Unwrap() error { return e.err }

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// undoStack records how to remove what a transaction created, to do it in
// reverse order when a later step fails.
type undoStack struct{ steps []undoStep }

type undoStep struct {
	what string
	fn   func() error
}

func (u *undoStack) push(what string, fn func() error) {
	u.steps = append(u.steps, undoStep{what, fn})
}

// rollback undoes every step, newest first, and returns err, with any undo
// failure appended on the same line.
func (u *undoStack) rollback(err error) error {
	var failed []string
	for i := len(u.steps) - 1; i >= 0; i-- {
		if uerr := u.steps[i].fn(); uerr != nil {
			failed = append(failed, u.steps[i].what+": "+oneLine(uerr))
		}
	}
	u.steps = nil
	if len(failed) > 0 {
		return fmt.Errorf("%w (undo failed: %s)", err, strings.Join(failed, "; "))
	}
	return err
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
