package pool

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
)

// Range is an inclusive span of addresses of one family.
type Range struct{ First, Last netip.Addr }

// Contains reports whether a is in r.
func (r Range) Contains(a netip.Addr) bool {
	return a.BitLen() == r.First.BitLen() && r.First.Compare(a) <= 0 && a.Compare(r.Last) <= 0
}

// Size is how many addresses r holds.
func (r Range) Size() *big.Int {
	n := new(big.Int).Sub(new(big.Int).SetBytes(r.Last.AsSlice()), new(big.Int).SetBytes(r.First.AsSlice()))
	return n.Add(n, big.NewInt(1))
}

func (r Range) String() string {
	if r.First == r.Last {
		return r.First.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

// ParseBlock returns b's range, or why b is not usable.
func ParseBlock(b Block) (Range, error) {
	switch {
	case b.CIDR != "" && (b.Start != "" || b.End != ""):
		return Range{}, errors.New("a block is either a cidr or a start and end range")
	case b.CIDR != "":
		p, err := netip.ParsePrefix(b.CIDR)
		if err != nil {
			return Range{}, fmt.Errorf("cidr %q: %w", b.CIDR, err)
		}
		if p.Masked() != p {
			return Range{}, fmt.Errorf("cidr %q has host bits set (write %s)", b.CIDR, p.Masked())
		}
		return Range{First: p.Addr(), Last: lastOf(p)}, nil
	case b.Start == "" || b.End == "":
		return Range{}, errors.New("a range needs both start and end")
	}
	first, err := netip.ParseAddr(b.Start)
	if err != nil {
		return Range{}, fmt.Errorf("start: %w", err)
	}
	last, err := netip.ParseAddr(b.End)
	if err != nil {
		return Range{}, fmt.Errorf("end: %w", err)
	}
	switch {
	case first.Zone() != "" || last.Zone() != "" || first.Is4In6() || last.Is4In6():
		return Range{}, fmt.Errorf("range %s-%s: no zones or IPv4-mapped addresses", first, last)
	case first.BitLen() != last.BitLen():
		return Range{}, fmt.Errorf("range %s-%s: start and end must be of one family", first, last)
	case first.Compare(last) > 0:
		return Range{}, fmt.Errorf("range %s-%s: start must not be after end", first, last)
	}
	return Range{First: first, Last: last}, nil
}

// lastOf is the last address of p (p masked).
func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Ranges returns the usable ranges of p's blocks and the problems of the
// others, one line each.
func (p *Pool) Ranges() ([]Range, []string) {
	var rs []Range
	var problems []string
	for i, b := range p.Spec.Blocks {
		r, err := ParseBlock(b)
		if err != nil {
			problems = append(problems, fmt.Sprintf("blocks[%d]: %v", i, err))
			continue
		}
		rs = append(rs, r)
	}
	if len(p.Spec.Blocks) == 0 {
		problems = append(problems, "no blocks")
	}
	return rs, problems
}
