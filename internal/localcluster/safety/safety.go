package safety

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/localcluster/plan"
	"github.com/podnet/podnet/internal/nldump"
)

// ResolvConfPath is the resolver configuration whose nameservers a cluster
// must not overlap.
const ResolvConfPath = "/etc/resolv.conf"

// HostAddr is one address of the root namespace, as CheckHostConflicts
// sees it.
type HostAddr struct {
	Link   string       // interface name
	Prefix netip.Prefix // address and prefix length, e.g. 192.0.2.2/24
	Peer   netip.Prefix // peer of a point-to-point address; zero if none
}

// String formats the address like "192.0.2.2/24 on eth0".
func (a HostAddr) String() string {
	s := a.Prefix.String()
	if a.Peer.IsValid() {
		s += " peer " + a.Peer.String()
	}
	return s + " on " + a.Link
}

// HostRoute is one route of the root namespace, from any table.
type HostRoute struct {
	Dst     netip.Prefix // 0.0.0.0/0 or ::/0 for a default route
	Type    int          // unix.RTN_UNICAST, RTN_LOCAL, RTN_BLACKHOLE, ...
	Table   int
	Link    string // output interface; "" for none or several (multipath)
	Gateway netip.Addr
	Metric  int
}

var routeTypeNames = map[int]string{
	unix.RTN_LOCAL: "local", unix.RTN_BROADCAST: "broadcast", unix.RTN_ANYCAST: "anycast",
	unix.RTN_MULTICAST: "multicast", unix.RTN_BLACKHOLE: "blackhole", unix.RTN_UNREACHABLE: "unreachable",
	unix.RTN_PROHIBIT: "prohibit", unix.RTN_THROW: "throw", unix.RTN_NAT: "nat",
}

var tableNames = map[int]string{unix.RT_TABLE_MAIN: "main", unix.RT_TABLE_LOCAL: "local", unix.RT_TABLE_DEFAULT: "default"}

// String formats the route the way `ip route show table all` does.
func (r HostRoute) String() string {
	var b strings.Builder
	if name, ok := routeTypeNames[r.Type]; ok {
		b.WriteString(name + " ")
	}
	b.WriteString(r.Dst.String())
	if r.Gateway.IsValid() {
		b.WriteString(" via " + r.Gateway.String())
	}
	if r.Link != "" {
		b.WriteString(" dev " + r.Link)
	}
	if name, ok := tableNames[r.Table]; ok {
		b.WriteString(" table " + name)
	} else {
		b.WriteString(" table " + strconv.Itoa(r.Table))
	}
	if r.Metric != 0 {
		b.WriteString(" metric " + strconv.Itoa(r.Metric))
	}
	return b.String()
}

// HostSources is where CheckHostConflictsWith reads the root namespace's
// state. KernelHostSources reads the kernel; unit tests pass fakes.
type HostSources struct {
	Addrs      func() ([]HostAddr, error)
	Routes     func() ([]HostRoute, error) // every table, both families
	ResolvConf func() ([]byte, error)      // nil data with no error: no file
}

// KernelHostSources reads the network namespace of the calling thread (the
// root namespace, unless the caller entered another one) and
// /etc/resolv.conf.
func KernelHostSources() HostSources {
	return HostSources{
		Addrs:  kernelAddrs,
		Routes: KernelRoutes,
		ResolvConf: func() ([]byte, error) {
			data, err := os.ReadFile(ResolvConfPath)
			if errors.Is(err, fs.ErrNotExist) {
				return nil, nil
			}
			return data, err
		},
	}
}

// LinkNames maps the index of every link of the calling thread's network
// namespace to its name.
func LinkNames() (map[int]string, error) {
	links, err := nldump.Do(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	return names, nil
}

func kernelAddrs() ([]HostAddr, error) {
	names, err := LinkNames()
	if err != nil {
		return nil, err
	}
	addrs, err := nldump.Do(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var out []HostAddr
	for _, a := range addrs {
		p, ok := prefixOf(a.IPNet)
		if !ok {
			continue
		}
		ha := HostAddr{Link: names[a.LinkIndex], Prefix: p}
		if peer, ok := prefixOf(a.Peer); ok && peer != p {
			ha.Peer = peer
		}
		out = append(out, ha)
	}
	return out, nil
}

// KernelRoutes lists the routes of every table, both families, of the
// calling thread's network namespace.
func KernelRoutes() ([]HostRoute, error) {
	names, err := LinkNames()
	if err != nil {
		return nil, err
	}
	routes, err := nldump.Do(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []HostRoute
	for _, r := range routes {
		var dst netip.Prefix
		switch r.Family {
		case unix.AF_INET:
			dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		case unix.AF_INET6:
			dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		default:
			continue // MPLS and others carry no IP destination
		}
		if p, ok := prefixOf(r.Dst); ok {
			dst = p
		}
		hr := HostRoute{Dst: dst, Type: r.Type, Table: r.Table, Metric: r.Priority}
		if len(r.MultiPath) == 0 {
			hr.Link = names[r.LinkIndex]
			hr.Gateway, _ = netip.AddrFromSlice(r.Gw)
			hr.Gateway = hr.Gateway.Unmap()
		}
		out = append(out, hr)
	}
	return out, nil
}

// prefixOf converts a netlink address to a prefix, keeping the host bits.
func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	if a.Is4() && bits == 128 {
		ones -= 96
	}
	return netip.PrefixFrom(a, ones), true
}

// Conflict is one overlap between a cluster range and the host.
type Conflict struct {
	Range  string       // "pod CIDR", "service CIDR", "node network", ...
	Prefix netip.Prefix // the cluster's range
	With   string       // the host's object, e.g. `route 10.0.0.0/8 via 192.0.2.1 dev eth0 table main`
}

// String formats the conflict like "pod CIDR 10.244.0.0/16 overlaps route ...".
func (c Conflict) String() string {
	return fmt.Sprintf("%s %s overlaps %s", c.Range, c.Prefix, c.With)
}

// ConflictError is CheckHostConflicts' refusal: one line per conflict.
type ConflictError struct {
	Cluster   string
	Conflicts []Conflict
}

// Error returns one line per conflict, each naming the cluster.
// Error is one line: the cluster, then every conflict, then what to do.
func (e *ConflictError) Error() string {
	items := make([]string, len(e.Conflicts))
	for i, c := range e.Conflicts {
		items[i] = c.String()
	}
	return fmt.Sprintf("cluster %q refused, nothing was created: %s (choose other ranges with --pod-cidr, --service-cidr, --node-network or --world-network)",
		e.Cluster, strings.Join(items, "; "))
}

// CheckHostConflicts refuses a cluster whose ranges overlap the root
// namespace's addresses or routes (every table, both families) or a
// nameserver of /etc/resolv.conf. Run it before anything is created.
func CheckHostConflicts(cfg *plan.Config) error {
	return CheckHostConflictsWith(cfg, KernelHostSources())
}

// CheckHostConflictsWith is CheckHostConflicts reading the host from src.
// It returns a validation error for an invalid cfg, the error of a source
// that failed, or a *ConflictError naming every conflict, one per line.
//
// Ignored, so that a cluster can be re-created after a crash: addresses and
// routes on the cluster's own bridge and veths (by their derived names), and
// the cluster's own blackhole routes (its ranges, type blackhole, its
// BlackholeMetric in the main table). Also ignored: default routes (/0),
// which overlap everything; the cluster's blackhole routes are more
// specific and win over them.
func CheckHostConflictsWith(cfg *plan.Config, src HostSources) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("check host conflicts: %w", err)
	}
	addrs, err := src.Addrs()
	if err != nil {
		return fmt.Errorf("check host conflicts: %w", err)
	}
	routes, err := src.Routes()
	if err != nil {
		return fmt.Errorf("check host conflicts: %w", err)
	}
	resolv, err := src.ResolvConf()
	if err != nil {
		return fmt.Errorf("check host conflicts: read %s: %w", ResolvConfPath, err)
	}

	ranges := []struct {
		name string
		p    netip.Prefix
	}{
		{"pod CIDR", cfg.PodCIDR},
		{"service CIDR", cfg.ServiceCIDR},
		{"node network", cfg.NodeNetwork},
		{"world network", cfg.WorldNetwork},
		{"LoadBalancer pool", cfg.LBPool},
	}
	var conflicts []Conflict
	for _, r := range ranges {
		for _, a := range addrs {
			if cfg.OwnsLink(a.Link) {
				continue
			}
			if r.p.Overlaps(a.Prefix.Masked()) || (a.Peer.IsValid() && r.p.Overlaps(a.Peer.Masked())) {
				conflicts = append(conflicts, Conflict{r.name, r.p, "address " + a.String()})
			}
		}
		for _, rt := range routes {
			if rt.Dst.Bits() == 0 || ownsRoute(cfg, rt) {
				continue
			}
			if r.p.Overlaps(rt.Dst) {
				conflicts = append(conflicts, Conflict{r.name, r.p, "route " + rt.String()})
			}
		}
		for _, ns := range parseNameservers(resolv) {
			if r.p.Contains(ns) {
				conflicts = append(conflicts, Conflict{r.name, r.p, "nameserver " + ns.String() + " of " + ResolvConfPath})
			}
		}
	}
	if len(conflicts) > 0 {
		return &ConflictError{Cluster: cfg.Name, Conflicts: conflicts}
	}
	return nil
}

// ownsRoute reports whether a root-namespace route is one this cluster
// made: any route through its own interfaces, or one of its blackholes.
func ownsRoute(c *plan.Config, r HostRoute) bool {
	if r.Link != "" && c.OwnsLink(r.Link) {
		return true
	}
	if r.Type != unix.RTN_BLACKHOLE || r.Table != unix.RT_TABLE_MAIN || r.Metric != c.BlackholeMetric() {
		return false
	}
	for _, p := range c.BlackholePrefixes() {
		if r.Dst == p {
			return true
		}
	}
	return false
}

// parseNameservers returns the nameserver addresses of a resolv.conf.
// Lines it cannot parse are skipped, as the C library does.
func parseNameservers(data []byte) []netip.Addr {
	var out []netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(f[1]); err == nil {
			out = append(out, a.WithZone("").Unmap())
		}
	}
	return out
}
