package ipam

// Fixture conventions for the tests of this package:
//
//	10.244.1.0/24          the node's IPv4 pod subnet (gateway 10.244.1.1)
//	10.244.2.0/24          a second IPv4 pod subnet, for sets of several ranges
//	10.0.0.0/29            a tiny IPv4 subnet: usable .2-.6 with the default gateway
//	fd00:10:244:1::/64     the node's IPv6 pod subnet
//	fd00:10:244:ff::/126   a tiny IPv6 subnet: usable ::2 and ::3
//	192.0.2.0/24           TEST-NET-1: outside every range
//
// Ranges and sets are always built through Canonicalize and Validate, the
// same path the CNI config takes, never by filling Start/End by hand.

import (
	"net/netip"
	"strings"
	"testing"
)

// rangeOf returns an uncanonicalized Range; empty strings leave a field unset.
func rangeOf(t *testing.T, subnet, start, end, gateway string) Range {
	t.Helper()
	var r Range
	if subnet != "" {
		r.Subnet = netip.MustParsePrefix(subnet)
	}
	addr := func(s string) netip.Addr {
		if s == "" {
			return netip.Addr{}
		}
		return netip.MustParseAddr(s)
	}
	r.Start, r.End, r.Gateway = addr(start), addr(end), addr(gateway)
	return r
}

// mustSet builds a validated RangeSet from subnets with default bounds, or
// from "subnet start end" triples.
func mustSet(t *testing.T, specs ...string) RangeSet {
	t.Helper()
	var set RangeSet
	for _, spec := range specs {
		f := strings.Fields(spec)
		switch len(f) {
		case 1:
			set = append(set, rangeOf(t, f[0], "", "", ""))
		case 3:
			set = append(set, rangeOf(t, f[0], f[1], f[2], ""))
		case 4:
			set = append(set, rangeOf(t, f[0], f[1], f[2], f[3]))
		default:
			t.Fatalf("bad range spec %q", spec)
		}
	}
	if err := set.Validate(); err != nil {
		t.Fatalf("Validate(%v): %v", specs, err)
	}
	return set
}

func TestCanonicalizeFillsDefaults(t *testing.T) {
	tests := []struct {
		name                       string
		in                         Range
		wantStart, wantEnd, wantGW string
	}{
		{
			name:      "an IPv4 /24 starts after the network address and ends before the broadcast",
			in:        rangeOf(t, "10.244.1.0/24", "", "", ""),
			wantStart: "10.244.1.1", wantEnd: "10.244.1.254", wantGW: "10.244.1.1",
		},
		{
			name:      "an IPv4 /30 keeps its two host addresses",
			in:        rangeOf(t, "10.0.0.0/30", "", "", ""),
			wantStart: "10.0.0.1", wantEnd: "10.0.0.2", wantGW: "10.0.0.1",
		},
		{
			name:      "an IPv6 /64 ends at its last address (IPv6 has no broadcast)",
			in:        rangeOf(t, "fd00:10:244:1::/64", "", "", ""),
			wantStart: "fd00:10:244:1::1", wantEnd: "fd00:10:244:1:ffff:ffff:ffff:ffff", wantGW: "fd00:10:244:1::1",
		},
		{
			name:      "an IPv6 /126 is the smallest accepted",
			in:        rangeOf(t, "fd00:10:244:ff::/126", "", "", ""),
			wantStart: "fd00:10:244:ff::1", wantEnd: "fd00:10:244:ff::3", wantGW: "fd00:10:244:ff::1",
		},
		{
			name:      "explicit bounds and gateway are kept",
			in:        rangeOf(t, "10.244.1.0/24", "10.244.1.100", "10.244.1.200", "10.244.1.254"),
			wantStart: "10.244.1.100", wantEnd: "10.244.1.200", wantGW: "10.244.1.254",
		},
		{
			name:      "the gateway defaults to network+1 even when the range starts later",
			in:        rangeOf(t, "10.244.1.0/24", "10.244.1.100", "", ""),
			wantStart: "10.244.1.100", wantEnd: "10.244.1.254", wantGW: "10.244.1.1",
		},
		{
			name:      "a range of one address is accepted",
			in:        rangeOf(t, "10.244.1.0/24", "10.244.1.7", "10.244.1.7", ""),
			wantStart: "10.244.1.7", wantEnd: "10.244.1.7", wantGW: "10.244.1.1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.in
			if err := r.Canonicalize(); err != nil {
				t.Fatalf("Canonicalize(%v): unexpected error: %v", tt.in.Subnet, err)
			}
			want := Range{
				Subnet:  tt.in.Subnet,
				Start:   netip.MustParseAddr(tt.wantStart),
				End:     netip.MustParseAddr(tt.wantEnd),
				Gateway: netip.MustParseAddr(tt.wantGW),
			}
			if r != want {
				t.Errorf("Canonicalize(%v):\n got %s gateway %s\nwant %s gateway %s", tt.in.Subnet, &r, r.Gateway, &want, want.Gateway)
			}
			// Canonicalize must be idempotent: the CNI plugin may
			// validate a set that was validated before.
			again := r
			if err := again.Canonicalize(); err != nil || again != r {
				t.Errorf("second Canonicalize = %v, %s; want nil, %s", err, &again, &r)
			}
		})
	}
}

func TestCanonicalizeRejects(t *testing.T) {
	tests := []struct {
		name    string
		in      Range
		wantErr string
	}{
		{
			name:    "a missing subnet is rejected",
			in:      rangeOf(t, "", "", "", ""),
			wantErr: "subnet is missing or invalid",
		},
		{
			name:    "a subnet with host bits set is rejected with the masked prefix as suggestion",
			in:      rangeOf(t, "10.244.1.5/24", "", "", ""),
			wantErr: "subnet 10.244.1.5/24 has host bits set (did you mean 10.244.1.0/24?)",
		},
		{
			name:    "an IPv6 subnet with host bits set is rejected with the suggestion",
			in:      rangeOf(t, "fd00:10:244:1::5/64", "", "", ""),
			wantErr: "(did you mean fd00:10:244:1::/64?)",
		},
		{
			name:    "an IPv4-mapped IPv6 subnet is rejected",
			in:      rangeOf(t, "::ffff:10.244.1.0/120", "", "", ""),
			wantErr: "use the plain IPv4 form",
		},
		{
			name:    "rangeStart outside the subnet is rejected",
			in:      rangeOf(t, "10.244.1.0/24", "10.244.2.1", "", ""),
			wantErr: "rangeStart 10.244.2.1 is not in subnet 10.244.1.0/24",
		},
		{
			name:    "rangeEnd outside the subnet is rejected",
			in:      rangeOf(t, "10.244.1.0/24", "", "192.0.2.1", ""),
			wantErr: "rangeEnd 192.0.2.1 is not in subnet 10.244.1.0/24",
		},
		{
			name:    "a gateway outside the subnet is rejected",
			in:      rangeOf(t, "10.244.1.0/24", "", "", "10.244.2.1"),
			wantErr: "gateway 10.244.2.1 is not in subnet 10.244.1.0/24",
		},
		{
			name:    "an IPv6 rangeStart in an IPv4 subnet is rejected",
			in:      rangeOf(t, "10.244.1.0/24", "fd00:10:244:1::2", "", ""),
			wantErr: "rangeStart fd00:10:244:1::2 is not in subnet 10.244.1.0/24",
		},
		{
			name:    "an IPv4 gateway in an IPv6 subnet is rejected",
			in:      rangeOf(t, "fd00:10:244:1::/64", "", "", "10.244.1.1"),
			wantErr: "gateway 10.244.1.1 is not in subnet fd00:10:244:1::/64",
		},
		{
			name:    "rangeStart after rangeEnd is rejected",
			in:      rangeOf(t, "10.244.1.0/24", "10.244.1.200", "10.244.1.100", ""),
			wantErr: "rangeStart 10.244.1.200 is after rangeEnd 10.244.1.100",
		},
		{
			name:    "rangeStart at the broadcast address leaves the default end before it",
			in:      rangeOf(t, "10.244.1.0/24", "10.244.1.255", "", ""),
			wantErr: "rangeStart 10.244.1.255 is after rangeEnd 10.244.1.254",
		},
		{
			name:    "an IPv4 /31 is too small",
			in:      rangeOf(t, "10.0.0.0/31", "", "", ""),
			wantErr: "subnet 10.0.0.0/31 is too small: an IPv4 pod range needs at least a /30",
		},
		{
			name:    "an IPv4 /32 is too small",
			in:      rangeOf(t, "10.0.0.7/32", "", "", ""),
			wantErr: "subnet 10.0.0.7/32 is too small",
		},
		{
			name:    "an IPv6 /127 is too small",
			in:      rangeOf(t, "fd00::/127", "", "", ""),
			wantErr: "subnet fd00::/127 is too small: an IPv6 pod range needs at least a /126",
		},
		{
			name:    "an IPv6 /128 is too small",
			in:      rangeOf(t, "fd00::1/128", "", "", ""),
			wantErr: "subnet fd00::1/128 is too small",
		},
		{
			name:    "a range holding only the gateway has no usable address",
			in:      rangeOf(t, "10.0.0.0/30", "10.0.0.1", "10.0.0.1", ""),
			wantErr: "range 10.0.0.1-10.0.0.1 of 10.0.0.0/30 has no usable address",
		},
		{
			name:    "a range holding only the broadcast address has no usable address",
			in:      rangeOf(t, "10.0.0.0/30", "10.0.0.3", "10.0.0.3", "10.0.0.2"),
			wantErr: "has no usable address",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.in
			err := r.Canonicalize()
			if err == nil {
				t.Fatalf("Canonicalize(%v) = nil, want an error containing %q (range %s)", tt.in.Subnet, tt.wantErr, &r)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Canonicalize(%v) = %q, want it to contain %q", tt.in.Subnet, err, tt.wantErr)
			}
		})
	}
}

func TestRangeSetValidate(t *testing.T) {
	tests := []struct {
		name    string
		set     RangeSet
		wantErr []string // substrings; nil means valid
	}{
		{
			name: "two disjoint ranges of one subnet are valid",
			set: RangeSet{
				rangeOf(t, "10.244.1.0/24", "10.244.1.2", "10.244.1.100", ""),
				rangeOf(t, "10.244.1.0/24", "10.244.1.101", "10.244.1.200", ""),
			},
		},
		{
			name: "ranges listed in descending address order are valid",
			set:  RangeSet{rangeOf(t, "10.244.2.0/24", "", "", ""), rangeOf(t, "10.244.1.0/24", "", "", "")},
		},
		{
			name: "ranges of two IPv6 subnets are valid",
			set:  RangeSet{rangeOf(t, "fd00:10:244:1::/64", "", "", ""), rangeOf(t, "fd00:10:244:ff::/126", "", "", "")},
		},
		{
			name:    "an empty set is rejected",
			set:     RangeSet{},
			wantErr: []string{"range set is empty"},
		},
		{
			name:    "an IPv6 range after an IPv4 range mixes families",
			set:     RangeSet{rangeOf(t, "10.244.1.0/24", "", "", ""), rangeOf(t, "fd00:10:244:1::/64", "", "", "")},
			wantErr: []string{"range 1 (fd00:10:244:1::/64) mixes address families with range 0 (10.244.1.0/24)"},
		},
		{
			name:    "an IPv4 range after an IPv6 range mixes families",
			set:     RangeSet{rangeOf(t, "fd00:10:244:1::/64", "", "", ""), rangeOf(t, "10.244.1.0/24", "", "", "")},
			wantErr: []string{"range 1 (10.244.1.0/24) mixes address families"},
		},
		{
			name:    "the same subnet twice overlaps",
			set:     RangeSet{rangeOf(t, "10.244.1.0/24", "", "", ""), rangeOf(t, "10.244.1.0/24", "", "", "")},
			wantErr: []string{"range 1 (10.244.1.1-10.244.1.254 (10.244.1.0/24)) overlaps range 0 (10.244.1.1-10.244.1.254 (10.244.1.0/24))"},
		},
		{
			name: "ranges sharing one address overlap",
			set: RangeSet{
				rangeOf(t, "10.244.1.0/24", "10.244.1.2", "10.244.1.100", ""),
				rangeOf(t, "10.244.1.0/24", "10.244.1.100", "10.244.1.200", ""),
			},
			wantErr: []string{"range 1 (10.244.1.100-10.244.1.200 (10.244.1.0/24)) overlaps range 0"},
		},
		{
			name:    "a subnet inside another overlaps",
			set:     RangeSet{rangeOf(t, "10.244.0.0/16", "", "", ""), rangeOf(t, "10.244.1.0/24", "", "", "")},
			wantErr: []string{"range 1 (10.244.1.1-10.244.1.254 (10.244.1.0/24)) overlaps range 0"},
		},
		{
			name: "every overlapping pair is reported",
			set: RangeSet{
				rangeOf(t, "10.244.0.0/16", "", "", ""),
				rangeOf(t, "10.244.1.0/24", "", "", ""),
				rangeOf(t, "10.244.2.0/24", "", "", ""),
			},
			wantErr: []string{"range 1 (10.244.1.1-10.244.1.254 (10.244.1.0/24)) overlaps range 0", "range 2 (10.244.2.1-10.244.2.254 (10.244.2.0/24)) overlaps range 0"},
		},
		{
			name:    "an invalid range is reported with its index",
			set:     RangeSet{rangeOf(t, "10.244.1.0/24", "", "", ""), rangeOf(t, "10.244.2.5/24", "", "", "")},
			wantErr: []string{"range 1: subnet 10.244.2.5/24 has host bits set"},
		},
		{
			name:    "every invalid range is reported",
			set:     RangeSet{rangeOf(t, "10.0.0.0/31", "", "", ""), rangeOf(t, "10.244.2.5/24", "", "", "")},
			wantErr: []string{"range 0: subnet 10.0.0.0/31 is too small", "range 1: subnet 10.244.2.5/24 has host bits set"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.set.Validate()
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

func TestRangeSetContains(t *testing.T) {
	set := mustSet(t, "10.244.1.0/24 10.244.1.10 10.244.1.20", "10.244.2.0/24 10.244.2.10 10.244.2.20")
	v6 := mustSet(t, "fd00:10:244:1::/64")
	tests := []struct {
		name string
		set  RangeSet
		ip   string
		want bool
	}{
		{"the start of the first range is contained", set, "10.244.1.10", true},
		{"the end of the first range is contained", set, "10.244.1.20", true},
		{"an address inside the second range is contained", set, "10.244.2.15", true},
		{"an address of the subnet before the first range is not contained", set, "10.244.1.9", false},
		{"an address of the subnet after the first range is not contained", set, "10.244.1.21", false},
		{"an address between the two ranges is not contained", set, "10.244.1.200", false},
		{"an address outside every subnet is not contained", set, "192.0.2.15", false},
		{"an IPv6 address is not contained in an IPv4 set", set, "fd00:10:244:1::15", false},
		{"the IPv4-mapped form of a contained address is not contained", set, "::ffff:10.244.1.15", false},
		{"an address of an IPv6 /64 is contained", v6, "fd00:10:244:1:ffff:ffff:ffff:ffff", true},
		{"an IPv4 address is not contained in an IPv6 set", v6, "10.244.1.15", false},
		{"the zero address is never contained", v6, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ip netip.Addr
			if tt.ip != "" {
				ip = netip.MustParseAddr(tt.ip)
			}
			if got := tt.set.Contains(ip); got != tt.want {
				t.Errorf("Contains(%s) = %v, want %v", tt.ip, got, tt.want)
			}
		})
	}
}

func TestRangeSetFamily(t *testing.T) {
	tests := []struct {
		name string
		set  RangeSet
		want int
	}{
		{"an IPv4 set is family 4", mustSet(t, "10.244.1.0/24"), 4},
		{"an IPv6 set is family 6", mustSet(t, "fd00:10:244:1::/64", "fd00:10:244:ff::/126"), 6},
		{"an empty set is family 4", RangeSet{}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.set.Family(); got != tt.want {
				t.Errorf("Family() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestLastAddr(t *testing.T) {
	tests := []struct{ prefix, want string }{
		{"10.244.1.0/24", "10.244.1.255"},
		{"10.0.0.0/29", "10.0.0.7"},
		{"10.244.0.0/15", "10.245.255.255"},
		{"0.0.0.0/0", "255.255.255.255"},
		{"fd00:10:244:1::/64", "fd00:10:244:1:ffff:ffff:ffff:ffff"},
		{"fd00::/126", "fd00::3"},
		{"fd00::/7", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
	}
	for _, tt := range tests {
		t.Run("the last address of "+tt.prefix+" is "+tt.want, func(t *testing.T) {
			if got := lastAddr(netip.MustParsePrefix(tt.prefix)); got != netip.MustParseAddr(tt.want) {
				t.Errorf("lastAddr(%s) = %s, want %s", tt.prefix, got, tt.want)
			}
		})
	}
}
