package ipam

import (
	"errors"
	"fmt"
	"iter"
	"net/netip"
)

// Range is one contiguous block of allocatable addresses inside a subnet.
type Range struct {
	Subnet netip.Prefix
	// Start and End bound the addresses handed out, both inclusive.
	Start, End netip.Addr
	// Gateway is never handed out. It defaults to the subnet's first address
	// (as host-local does), which a node may use for itself.
	Gateway netip.Addr
}

// RangeSet is a list of ranges of one address family; a pod gets one address
// from each set.
type RangeSet []Range

// Canonicalize fills defaults (Start, End, Gateway) and checks that the range
// is usable. The subnet must have no host bits set.
func (r *Range) Canonicalize() error {
	if !r.Subnet.IsValid() {
		return errors.New("subnet is missing or invalid")
	}
	if r.Subnet.Masked() != r.Subnet {
		return fmt.Errorf("subnet %s has host bits set (did you mean %s?)", r.Subnet, r.Subnet.Masked())
	}
	if r.Subnet.Addr().Is4In6() {
		return fmt.Errorf("subnet %s: use the plain IPv4 form", r.Subnet)
	}
	network := r.Subnet.Addr()
	last := lastAddr(r.Subnet)
	is4 := network.Is4()
	if is4 && r.Subnet.Bits() > 30 {
		return fmt.Errorf("subnet %s is too small: an IPv4 pod range needs at least a /30", r.Subnet)
	}
	if !is4 && r.Subnet.Bits() > 126 {
		return fmt.Errorf("subnet %s is too small: an IPv6 pod range needs at least a /126", r.Subnet)
	}
	in := func(what string, a netip.Addr) error {
		if a.Is4() != is4 || !r.Subnet.Contains(a) {
			return fmt.Errorf("%s %s is not in subnet %s", what, a, r.Subnet)
		}
		return nil
	}
	if !r.Start.IsValid() {
		r.Start = network.Next()
	} else if err := in("rangeStart", r.Start); err != nil {
		return err
	}
	if !r.End.IsValid() {
		r.End = last
		if is4 {
			r.End = last.Prev()
		}
	} else if err := in("rangeEnd", r.End); err != nil {
		return err
	}
	if r.End.Less(r.Start) {
		return fmt.Errorf("rangeStart %s is after rangeEnd %s", r.Start, r.End)
	}
	if !r.Gateway.IsValid() {
		r.Gateway = network.Next()
	} else if err := in("gateway", r.Gateway); err != nil {
		return err
	}
	for range r.addrs(r.Start) {
		return nil
	}
	return fmt.Errorf("range %s-%s of %s has no usable address", r.Start, r.End, r.Subnet)
}

// Contains reports whether ip lies between Start and End.
func (r *Range) Contains(ip netip.Addr) bool {
	return ip.BitLen() == r.Start.BitLen() && !ip.Less(r.Start) && !r.End.Less(ip)
}

// usable reports whether ip may be handed out: not the gateway, and for IPv4
// not the network or broadcast address.
func (r *Range) usable(ip netip.Addr) bool {
	if ip == r.Gateway {
		return false
	}
	if ip.Is4() && (ip == r.Subnet.Addr() || ip == lastAddr(r.Subnet)) {
		return false
	}
	return true
}

// addrs yields the usable addresses from 'from' to End.
func (r *Range) addrs(from netip.Addr) iter.Seq[netip.Addr] {
	return func(yield func(netip.Addr) bool) {
		for a := from; a.IsValid() && !r.End.Less(a); a = a.Next() {
			if r.usable(a) && !yield(a) {
				return
			}
		}
	}
}

// String prints the range as "start-end (subnet)".
func (r *Range) String() string {
	return fmt.Sprintf("%s-%s (%s)", r.Start, r.End, r.Subnet)
}

// Validate canonicalizes every range of the set and checks that the set
// holds one address family and that its ranges do not overlap.
func (s RangeSet) Validate() error {
	if len(s) == 0 {
		return errors.New("range set is empty")
	}
	var errs []error
	for i := range s {
		if err := s[i].Canonicalize(); err != nil {
			errs = append(errs, fmt.Errorf("range %d: %w", i, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for i := range s {
		if s[i].Start.Is4() != s[0].Start.Is4() {
			errs = append(errs, fmt.Errorf("range %d (%s) mixes address families with range 0 (%s)", i, s[i].Subnet, s[0].Subnet))
		}
		for j := range i {
			if s[i].overlaps(&s[j]) {
				errs = append(errs, fmt.Errorf("range %d (%s) overlaps range %d (%s)", i, &s[i], j, &s[j]))
			}
		}
	}
	return errors.Join(errs...)
}

func (r *Range) overlaps(o *Range) bool {
	return r.Start.BitLen() == o.Start.BitLen() && !r.End.Less(o.Start) && !o.End.Less(r.Start)
}

// Family returns 4 or 6.
func (s RangeSet) Family() int {
	if len(s) > 0 && s[0].Start.Is6() {
		return 6
	}
	return 4
}

// Contains reports whether any range of the set contains ip.
func (s RangeSet) Contains(ip netip.Addr) bool {
	return s.find(ip) >= 0
}

func (s RangeSet) find(ip netip.Addr) int {
	for i := range s {
		if s[i].Contains(ip) {
			return i
		}
	}
	return -1
}

// candidates yields every usable address of the set once, starting right
// after last and wrapping around (round robin), ending with last itself.
func (s RangeSet) candidates(last netip.Addr) iter.Seq2[int, netip.Addr] {
	return func(yield func(int, netip.Addr) bool) {
		start := s.find(last)
		if start < 0 {
			for i := range s {
				for a := range s[i].addrs(s[i].Start) {
					if !yield(i, a) {
						return
					}
				}
			}
			return
		}
		// The tail of the range holding last, then the other ranges in
		// order, then the head of the first range up to last itself.
		if next := last.Next(); next.IsValid() {
			for a := range s[start].addrs(next) {
				if !yield(start, a) {
					return
				}
			}
		}
		for k := 1; k <= len(s); k++ {
			i := (start + k) % len(s)
			for a := range s[i].addrs(s[i].Start) {
				if i == start && last.Less(a) {
					break
				}
				if !yield(i, a) {
					return
				}
			}
		}
	}
}

// lastAddr returns the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for bit := 7; bit >= 0; bit-- {
			if i*8+(7-bit) >= bits {
				b[i] |= 1 << bit
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
