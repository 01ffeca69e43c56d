package proxy

import (
	"errors"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// KernelConntrack deletes entries through netlink in the caller's network
// namespace.
type KernelConntrack struct{}

var _ Conntrack = KernelConntrack{}

// DeleteUDP deletes the selected entries and returns how many it removed.
func (KernelConntrack) DeleteUDP(dels []ConntrackDeletion) (int, error) {
	if len(dels) == 0 {
		return 0, nil
	}
	var v4, v6 []netlink.CustomConntrackFilter
	var errs []error
	for _, d := range dels {
		f := &netlink.ConntrackFilter{}
		if err := f.AddProtocol(unix.IPPROTO_UDP); err != nil {
			errs = append(errs, err)
			continue
		}
		if d.Dst.IsValid() {
			errs = append(errs, f.AddIP(netlink.ConntrackOrigDstIP, d.Dst.AsSlice()))
		}
		errs = append(errs, f.AddPort(netlink.ConntrackOrigDstPort, d.Port))
		if d.Endpoint.IsValid() {
			errs = append(errs, f.AddIP(netlink.ConntrackReplySrcIP, d.Endpoint.AsSlice()))
		}
		switch {
		case !d.Dst.IsValid() && !d.Endpoint.IsValid():
			// A NodePort that gained its first endpoint: entries to any
			// node address, of either family.
			v4, v6 = append(v4, f), append(v6, f)
		case d.Dst.Is6() || (!d.Dst.IsValid() && d.Endpoint.Is6()):
			v6 = append(v6, f)
		default:
			v4 = append(v4, f)
		}
	}
	n := uint(0)
	for fam, fs := range map[netlink.InetFamily][]netlink.CustomConntrackFilter{unix.AF_INET: v4, unix.AF_INET6: v6} {
		if len(fs) == 0 {
			continue
		}
		c, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, fam, fs...)
		n += c
		errs = append(errs, err)
	}
	return int(n), errors.Join(errs...)
}
