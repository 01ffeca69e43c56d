package cni

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/nldump"
)

// attachment is what ADD wires up.
type attachment struct {
	network     string
	containerID string
	ifName      string
	mtu         int
	addrs       []netip.Addr
}

// wired describes both ends of a veth pair after setup.
type wired struct {
	hostName string
	hostMAC  net.HardwareAddr
	podMAC   net.HardwareAddr
	// defaultVia lists the gateways of the default routes ADD installed; a
	// family whose default route another interface of the pod already
	// holds is left alone and not listed.
	defaultVia []netip.Addr
}

func hostPrefix(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

func gatewayFor(a netip.Addr) netip.Addr {
	if a.Is4() {
		return GatewayV4
	}
	return GatewayV6
}

func family(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// openPodNS opens the pod's network namespace and a route-netlink handle
// inside it. The handle's socket lives in the pod namespace, so no thread of
// this process ever has to switch namespace for the calls made through it.
func openPodNS(path string) (netns.NsHandle, *netlink.Handle, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return netns.None(), nil, err
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return netns.None(), nil, fmt.Errorf("open netlink socket in %s: %w", path, err)
	}
	return ns, h, nil
}

// setupVeth creates the veth pair with its pod end directly inside the pod
// namespace and configures both ends. On error it removes what it made.
func setupVeth(podNS netns.NsHandle, pod *netlink.Handle, a attachment) (w wired, err error) {
	w.hostName = HostIfName(a.containerID, a.ifName)
	if w.hostMAC, err = randomMAC(); err != nil {
		return w, err
	}
	if w.podMAC, err = randomMAC(); err != nil {
		return w, err
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = w.hostName
	attrs.MTU = a.mtu
	attrs.HardwareAddr = w.hostMAC
	attrs.Flags = net.FlagUp
	veth := netlink.NewVeth(attrs)
	veth.PeerName = a.ifName
	veth.PeerHardwareAddr = w.podMAC
	veth.PeerNamespace = netlink.NsFd(podNS)

	err = netlink.LinkAdd(veth)
	if errors.Is(err, unix.EEXIST) {
		// The host name is derived from this attachment, and IPAM just
		// gave it fresh addresses: an interface of that name is debris
		// of an earlier ADD that was killed. Replace it.
		if old, lerr := netlink.LinkByName(w.hostName); lerr == nil {
			_ = netlink.LinkDel(old)
		}
		err = netlink.LinkAdd(veth)
	}
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return w, fmt.Errorf("create veth %s: interface %q already exists in the pod", w.hostName, a.ifName)
		}
		return w, fmt.Errorf("create veth %s <-> %s: %w", w.hostName, a.ifName, err)
	}
	defer func() {
		if err != nil {
			_ = deleteHostLink(w.hostName)
		}
	}()
	if err = configureHost(w, a); err != nil {
		return w, fmt.Errorf("configure host side %s: %w", w.hostName, err)
	}
	if w.defaultVia, err = configurePod(pod, w, a); err != nil {
		return w, fmt.Errorf("configure %s in pod: %w", a.ifName, err)
	}
	return w, nil
}

func configureHost(w wired, a attachment) error {
	host, err := netlink.LinkByName(w.hostName)
	if err != nil {
		return err
	}
	// The kernel ignores IFLA_IFALIAS when it creates a link, so the alias
	// that GC reads is set here.
	if err := netlink.LinkSetAlias(host, hostAlias(a.network, a.containerID, a.ifName)); err != nil {
		return fmt.Errorf("set alias: %w", err)
	}
	idx := host.Attrs().Index
	has6 := false
	for _, ip := range a.addrs {
		if ip.Is6() {
			has6 = true
		}
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: hostPrefix(ip), Scope: netlink.SCOPE_LINK}); err != nil {
			return fmt.Errorf("add route %s: %w", ip, err)
		}
		if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: family(ip), State: netlink.NUD_PERMANENT,
			IP: ip.AsSlice(), HardwareAddr: w.podMAC}); err != nil {
			return fmt.Errorf("add neighbor %s: %w", ip, err)
		}
	}
	if has6 {
		gw := &netlink.Addr{IPNet: &net.IPNet{IP: GatewayV6.AsSlice(), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
		if err := netlink.AddrAdd(host, gw); err != nil {
			return fmt.Errorf("add gateway address %s: %w", GatewayV6, err)
		}
		if err := ensureSysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1"); err != nil {
			return err
		}
	}
	if len(a.addrs) > 0 && slices.ContainsFunc(a.addrs, netip.Addr.Is4) {
		if err := writeSysctl("/proc/sys/net/ipv4/conf/"+w.hostName+"/proxy_arp", "1"); err != nil {
			return err
		}
		if err := ensureSysctl("/proc/sys/net/ipv4/ip_forward", "1"); err != nil {
			return err
		}
	}
	return nil
}

// configurePod brings the pod end up with its addresses, gateway neighbors
// and default routes; it returns the gateways it routed through.
func configurePod(h *netlink.Handle, w wired, a attachment) ([]netip.Addr, error) {
	link, err := h.LinkByName(a.ifName)
	if err != nil {
		return nil, err
	}
	idx := link.Attrs().Index
	if err := h.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("set up: %w", err)
	}
	for _, ip := range a.addrs {
		addr := &netlink.Addr{IPNet: hostPrefix(ip)}
		if ip.Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(link, addr); err != nil {
			return nil, fmt.Errorf("add address %s: %w", ip, err)
		}
	}
	var routed []netip.Addr
	for _, gw := range gateways(a.addrs) {
		if err := h.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: family(gw), State: netlink.NUD_PERMANENT,
			IP: gw.AsSlice(), HardwareAddr: w.hostMAC}); err != nil {
			return nil, fmt.Errorf("add gateway neighbor %s: %w", gw, err)
		}
		err := h.RouteAdd(defaultRoute(idx, gw))
		if errors.Is(err, unix.EEXIST) {
			continue // a second interface: the first one keeps the default route
		}
		if err != nil {
			return nil, fmt.Errorf("add default route via %s: %w", gw, err)
		}
		routed = append(routed, gw)
	}
	return routed, nil
}

// gateways returns the gateway of each address family present in addrs.
func gateways(addrs []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, ip := range addrs {
		if gw := gatewayFor(ip); !slices.Contains(out, gw) {
			out = append(out, gw)
		}
	}
	return out
}

func defaultRoute(idx int, gw netip.Addr) *netlink.Route {
	bits := gw.BitLen()
	return &netlink.Route{
		LinkIndex: idx,
		Dst:       &net.IPNet{IP: make(net.IP, bits/8), Mask: net.CIDRMask(0, bits)},
		Gw:        gw.AsSlice(),
		Flags:     int(netlink.FLAG_ONLINK),
		Family:    family(gw),
	}
}

// deleteHostLink removes a host-side interface (and so its pod end); a
// missing one is success.
func deleteHostLink(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// hostLinksOf lists the host-side interfaces of network, with the attachment
// each names in its alias.
func hostLinksOf(network string) (map[string][2]string, error) {
	links, err := nldump.Do(netlink.LinkList)
	if err != nil {
		return nil, err
	}
	out := map[string][2]string{}
	for _, l := range links {
		at := l.Attrs()
		if !strings.HasPrefix(at.Name, HostIfPrefix) {
			continue
		}
		if id, ifn, ok := parseAlias(network, at.Alias); ok {
			out[at.Name] = [2]string{id, ifn}
		}
	}
	return out, nil
}

func writeSysctl(path, value string) error {
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("set %s: %w", strings.TrimPrefix(path, "/proc/sys/"), err)
	}
	return nil
}

// ensureSysctl writes value only when the current value differs.
func ensureSysctl(path, value string) error {
	cur, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(cur)) == value {
		return nil
	}
	return writeSysctl(path, value)
}

// checkDatapath compares the kernel's state with what prevResult says.
func checkDatapath(netnsPath, ifName string, want expected) []error {
	var problems []error
	host, err := netlink.LinkByName(want.hostName)
	if err != nil {
		problems = append(problems, fmt.Errorf("host interface %s is missing", want.hostName))
	} else {
		if _, ok := host.(*netlink.Veth); !ok {
			problems = append(problems, fmt.Errorf("host interface %s is a %s, not a veth", want.hostName, host.Type()))
		}
		if host.Attrs().Flags&net.FlagUp == 0 {
			problems = append(problems, fmt.Errorf("host interface %s is down", want.hostName))
		}
		routes, err := nldump.Do(func() ([]netlink.Route, error) { return netlink.RouteList(host, netlink.FAMILY_ALL) })
		if err != nil {
			problems = append(problems, fmt.Errorf("list routes of %s: %w", want.hostName, err))
		}
		for _, ip := range want.addrs {
			if err == nil && !slices.ContainsFunc(routes, func(r netlink.Route) bool { return r.Dst != nil && r.Dst.String() == hostPrefix(ip).String() }) {
				problems = append(problems, fmt.Errorf("host route to %s via %s is missing", ip, want.hostName))
			}
		}
	}
	podNS, pod, err := openPodNS(netnsPath)
	if err != nil {
		return append(problems, fmt.Errorf("cannot open network namespace %s: %w", netnsPath, err))
	}
	defer podNS.Close()
	defer pod.Close()
	link, err := pod.LinkByName(ifName)
	if err != nil {
		return append(problems, fmt.Errorf("interface %s is missing from %s", ifName, netnsPath))
	}
	if want.podMAC != "" && !strings.EqualFold(link.Attrs().HardwareAddr.String(), want.podMAC) {
		problems = append(problems, fmt.Errorf("%s has MAC %s, prevResult says %s", ifName, link.Attrs().HardwareAddr, want.podMAC))
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		problems = append(problems, fmt.Errorf("%s is down", ifName))
	}
	addrs, err := nldump.Do(func() ([]netlink.Addr, error) { return pod.AddrList(link, netlink.FAMILY_ALL) })
	if err != nil {
		return append(problems, fmt.Errorf("list addresses of %s: %w", ifName, err))
	}
	for _, ip := range want.addrs {
		if !slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return a.IP.Equal(ip.AsSlice()) }) {
			problems = append(problems, fmt.Errorf("address %s is missing from %s", ip, ifName))
		}
	}
	routes, err := nldump.Do(func() ([]netlink.Route, error) { return pod.RouteList(link, netlink.FAMILY_ALL) })
	if err != nil {
		return append(problems, fmt.Errorf("list routes of %s: %w", ifName, err))
	}
	for _, gw := range want.defaultVia {
		if !slices.ContainsFunc(routes, func(r netlink.Route) bool {
			return (r.Dst == nil || isDefault(r.Dst)) && r.Gw.Equal(gw.AsSlice())
		}) {
			problems = append(problems, fmt.Errorf("default route via %s is missing from %s", gw, ifName))
		}
	}
	return problems
}

func isDefault(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0
}
