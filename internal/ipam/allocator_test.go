package ipam

// Fixture conventions: see the top of range_test.go for the subnets. Owners
// are named by a short word ("a", "b", ...) that becomes the container ID,
// with interface eth0 unless a test says otherwise. Expected allocations are
// written as the space-separated addresses of one Allocate call, one per
// range set in set order, or "exhausted" for an *ExhaustedError.

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

const exhausted = "exhausted"

func ownerOf(name string) Owner { return Owner{ContainerID: name, IfName: "eth0"} }

// newTestAllocator returns an allocator over a fresh MemoryStore.
func newTestAllocator(t *testing.T, exclude []string, sets ...RangeSet) (*Allocator, *MemoryStore) {
	t.Helper()
	store := NewMemoryStore()
	return NewAllocator(store, sets, prefixes(t, exclude...)), store
}

func prefixes(t *testing.T, ss ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range ss {
		if !strings.Contains(s, "/") {
			a := netip.MustParseAddr(s)
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// allocate runs Allocate and renders the result as in the fixture
// conventions; any error other than exhaustion fails the test.
func allocate(t *testing.T, a *Allocator, owner Owner) string {
	t.Helper()
	got, err := a.Allocate(owner)
	var ex *ExhaustedError
	if errors.As(err, &ex) {
		if got != nil {
			t.Errorf("Allocate(%s) returned %v with an ExhaustedError, want nil", owner, got)
		}
		return exhausted
	}
	if err != nil {
		t.Fatalf("Allocate(%s): unexpected error: %v", owner, err)
	}
	var s []string
	for i, al := range got {
		if al.Set != i {
			t.Errorf("Allocate(%s): allocation %d has Set %d, want %d", owner, i, al.Set, i)
		}
		if al.Range == nil || !al.Range.Contains(al.IP) {
			t.Errorf("Allocate(%s): allocation %d: range %v does not contain %s", owner, i, al.Range, al.IP)
		}
		s = append(s, al.IP.String())
	}
	return strings.Join(s, " ")
}

// release runs Release and fails the test on error.
func release(t *testing.T, a *Allocator, owner Owner) []netip.Addr {
	t.Helper()
	got, err := a.Release(owner)
	if err != nil {
		t.Fatalf("Release(%s): unexpected error: %v", owner, err)
	}
	return got
}

// reservations returns the store's content.
func reservations(t *testing.T, s Store) map[netip.Addr]Owner {
	t.Helper()
	list, err := s.List()
	if err != nil {
		t.Fatalf("List(): %v", err)
	}
	out := make(map[netip.Addr]Owner, len(list))
	for _, r := range list {
		if prev, dup := out[r.IP]; dup {
			t.Fatalf("List() holds %s twice (%s and %s)", r.IP, prev, r.Owner)
		}
		out[r.IP] = r.Owner
	}
	return out
}

// checkReservations compares the store's content with want.
func checkReservations(t *testing.T, s Store, want map[netip.Addr]Owner) {
	t.Helper()
	got := reservations(t, s)
	if !maps.Equal(got, want) {
		t.Errorf("reservations:\n got %s\nwant %s", formatReservations(got), formatReservations(want))
	}
}

func formatReservations(m map[netip.Addr]Owner) string {
	ips := slices.SortedFunc(maps.Keys(m), netip.Addr.Compare)
	var b strings.Builder
	for _, ip := range ips {
		fmt.Fprintf(&b, "%s=%s ", ip, m[ip])
	}
	return "[" + strings.TrimSpace(b.String()) + "]"
}

func TestFormatReservationsIsSortedAndStable(t *testing.T) {
	m := map[netip.Addr]Owner{
		netip.MustParseAddr("10.244.1.10"): ownerOf("b"),
		netip.MustParseAddr("10.244.1.9"):  ownerOf("a"),
	}
	if got, want := formatReservations(m), "[10.244.1.9=a/eth0 10.244.1.10=b/eth0]"; got != want {
		t.Errorf("formatReservations = %q, want %q", got, want)
	}
}

func TestAllocateOrder(t *testing.T) {
	tests := []struct {
		name    string
		sets    []RangeSet
		exclude []string
		want    []string // one Allocate per entry, each for a new owner
	}{
		{
			name: "a /24 starts at .2 because the gateway .1 is skipped",
			sets: []RangeSet{mustSet(t, "10.244.1.0/24")},
			want: []string{"10.244.1.2", "10.244.1.3", "10.244.1.4"},
		},
		{
			name: "a /29 hands out .2-.6 and then is exhausted",
			sets: []RangeSet{mustSet(t, "10.0.0.0/29")},
			want: []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", exhausted},
		},
		{
			name: "a range spanning the whole subnet never hands out the network or broadcast address",
			sets: []RangeSet{mustSet(t, "10.0.0.0/29 10.0.0.0 10.0.0.7")},
			want: []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", exhausted},
		},
		{
			name: "a custom gateway in the middle of the range is skipped",
			sets: []RangeSet{mustSet(t, "10.0.0.0/29 10.0.0.0 10.0.0.7 10.0.0.4")},
			want: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.5", "10.0.0.6", exhausted},
		},
		{
			name:    "an excluded address and an excluded prefix are skipped",
			sets:    []RangeSet{mustSet(t, "10.244.1.0/24")},
			exclude: []string{"10.244.1.2", "10.244.1.4/30"},
			want:    []string{"10.244.1.3", "10.244.1.8", "10.244.1.9"},
		},
		{
			name:    "exclusions covering every address exhaust the set",
			sets:    []RangeSet{mustSet(t, "10.0.0.0/29")},
			exclude: []string{"10.0.0.0/30", "10.0.0.4/30"},
			want:    []string{exhausted},
		},
		{
			name:    "an exclusion of the other family changes nothing",
			sets:    []RangeSet{mustSet(t, "10.244.1.0/24")},
			exclude: []string{"::/0"},
			want:    []string{"10.244.1.2"},
		},
		{
			name: "a set of several ranges continues into the next range",
			sets: []RangeSet{mustSet(t, "10.244.1.0/24 10.244.1.10 10.244.1.11", "10.244.2.0/24 10.244.2.10 10.244.2.11")},
			want: []string{"10.244.1.10", "10.244.1.11", "10.244.2.10", "10.244.2.11", exhausted},
		},
		{
			name:    "an exclusion covering a whole range moves on to the next range",
			sets:    []RangeSet{mustSet(t, "10.244.1.0/24 10.244.1.10 10.244.1.11", "10.244.2.0/24 10.244.2.10 10.244.2.11")},
			exclude: []string{"10.244.1.0/24"},
			want:    []string{"10.244.2.10", "10.244.2.11", exhausted},
		},
		{
			name: "an IPv6 /64 starts at ::2 because the gateway ::1 is skipped",
			sets: []RangeSet{mustSet(t, "fd00:10:244:1::/64")},
			want: []string{"fd00:10:244:1::2", "fd00:10:244:1::3"},
		},
		{
			name: "an IPv6 /126 hands out its last address too, as IPv6 has no broadcast",
			sets: []RangeSet{mustSet(t, "fd00:10:244:ff::/126")},
			want: []string{"fd00:10:244:ff::2", "fd00:10:244:ff::3", exhausted},
		},
		{
			name: "dual-stack hands out one address of each set",
			sets: []RangeSet{mustSet(t, "10.244.1.0/24"), mustSet(t, "fd00:10:244:1::/64")},
			want: []string{"10.244.1.2 fd00:10:244:1::2", "10.244.1.3 fd00:10:244:1::3"},
		},
		{
			name: "dual-stack with a small IPv6 range is exhausted when the IPv6 set is",
			sets: []RangeSet{mustSet(t, "10.244.1.0/24"), mustSet(t, "fd00:10:244:ff::/126")},
			want: []string{"10.244.1.2 fd00:10:244:ff::2", "10.244.1.3 fd00:10:244:ff::3", exhausted},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := newTestAllocator(t, tt.exclude, tt.sets...)
			for i, want := range tt.want {
				owner := ownerOf(fmt.Sprintf("ctr%d", i))
				if got := allocate(t, a, owner); got != want {
					t.Fatalf("allocation %d for %s = %q, want %q", i, owner, got, want)
				}
			}
		})
	}
}

// step is one call in a round-robin scenario: "+a" allocates for owner a and
// expects want; "-a" releases owner a.
type step struct {
	op   string
	want string
}

func runSteps(t *testing.T, a *Allocator, steps []step) {
	t.Helper()
	for i, s := range steps {
		owner := ownerOf(s.op[1:])
		switch s.op[0] {
		case '+':
			if got := allocate(t, a, owner); got != s.want {
				t.Fatalf("step %d (%s) = %q, want %q", i, s.op, got, s.want)
			}
		case '-':
			if got := release(t, a, owner); len(got) == 0 {
				t.Fatalf("step %d (%s) released nothing", i, s.op)
			}
		default:
			t.Fatalf("step %d: bad op %q", i, s.op)
		}
	}
}

func TestAllocateRoundRobin(t *testing.T) {
	tests := []struct {
		name  string
		sets  []RangeSet
		steps []step
	}{
		{
			name:  "a freed address is not handed out again at once",
			sets:  []RangeSet{mustSet(t, "10.244.1.0/24")},
			steps: []step{{"+a", "10.244.1.2"}, {"+b", "10.244.1.3"}, {"-a", ""}, {"+c", "10.244.1.4"}},
		},
		{
			name: "the search wraps around to freed addresses at the start once the end is used",
			sets: []RangeSet{mustSet(t, "10.0.0.0/29")},
			steps: []step{
				{"+a", "10.0.0.2"}, {"+b", "10.0.0.3"}, {"+c", "10.0.0.4"}, {"+d", "10.0.0.5"}, {"+e", "10.0.0.6"},
				{"-b", ""}, {"-a", ""},
				{"+f", "10.0.0.2"}, {"+g", "10.0.0.3"}, {"+h", exhausted},
			},
		},
		{
			name: "the search wraps around even when the end of the range is still free",
			sets: []RangeSet{mustSet(t, "10.0.0.0/29")},
			steps: []step{
				{"+a", "10.0.0.2"}, {"+b", "10.0.0.3"}, {"+c", "10.0.0.4"}, {"+d", "10.0.0.5"}, {"+e", "10.0.0.6"},
				{"-a", ""}, {"-e", ""},
				{"+f", "10.0.0.2"}, {"+g", "10.0.0.6"}, {"+h", exhausted},
			},
		},
		{
			name: "the last address reserved is handed out again when it is the only free one",
			sets: []RangeSet{mustSet(t, "10.0.0.0/30")},
			steps: []step{
				{"+a", "10.0.0.2"}, {"-a", ""}, {"+b", "10.0.0.2"}, {"+c", exhausted},
			},
		},
		{
			name: "several ranges of one set continue into the next range and wrap to the first",
			sets: []RangeSet{mustSet(t, "10.244.1.0/24 10.244.1.10 10.244.1.11", "10.244.2.0/24 10.244.2.10 10.244.2.11")},
			steps: []step{
				{"+a", "10.244.1.10"}, {"+b", "10.244.1.11"}, {"+c", "10.244.2.10"},
				{"-a", ""},
				{"+d", "10.244.2.11"}, {"+e", "10.244.1.10"}, {"+f", exhausted},
			},
		},
		{
			name: "the wrap from the last range reaches the middle of the first",
			sets: []RangeSet{mustSet(t, "10.244.1.0/24 10.244.1.10 10.244.1.12", "10.244.2.0/24 10.244.2.10 10.244.2.10")},
			steps: []step{
				{"+a", "10.244.1.10"}, {"+b", "10.244.1.11"}, {"+c", "10.244.1.12"}, {"+d", "10.244.2.10"},
				{"-b", ""},
				{"+e", "10.244.1.11"},
			},
		},
		{
			name: "each set of a dual-stack config keeps its own position",
			sets: []RangeSet{mustSet(t, "10.0.0.0/29"), mustSet(t, "fd00:10:244:ff::/126")},
			steps: []step{
				{"+a", "10.0.0.2 fd00:10:244:ff::2"}, {"+b", "10.0.0.3 fd00:10:244:ff::3"},
				{"-a", ""},
				{"+c", "10.0.0.4 fd00:10:244:ff::2"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := newTestAllocator(t, nil, tt.sets...)
			runSteps(t, a, tt.steps)
		})
	}
}

func TestAllocateRestartsWhenLastReservedIsOutsideEveryRange(t *testing.T) {
	// The config changed since the position was recorded: the search
	// starts over at the first range.
	tests := []struct {
		name string
		last string
		want string
	}{
		{"a position in a subnet no longer configured restarts at the first range", "192.0.2.7", "10.244.1.10"},
		{"a position in the subnet but before the range restarts at the first range", "10.244.1.5", "10.244.1.10"},
		{"a position in the subnet but after the last range restarts at the first range", "10.244.2.200", "10.244.1.10"},
		{"a position of the other family restarts at the first range", "fd00:10:244:1::7", "10.244.1.10"},
		{"a position inside the second range continues after it", "10.244.2.10", "10.244.2.11"},
		{"a position at the end of the last range wraps to the first range", "10.244.2.20", "10.244.1.10"},
	}
	set := mustSet(t, "10.244.1.0/24 10.244.1.10 10.244.1.20", "10.244.2.0/24 10.244.2.10 10.244.2.20")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, store := newTestAllocator(t, nil, set)
			if err := store.SetLastReserved(0, netip.MustParseAddr(tt.last)); err != nil {
				t.Fatalf("SetLastReserved: %v", err)
			}
			if got := allocate(t, a, ownerOf("a")); got != tt.want {
				t.Errorf("Allocate after last=%s = %q, want %q", tt.last, got, tt.want)
			}
			last, err := store.LastReserved(0)
			if err != nil {
				t.Fatalf("LastReserved: %v", err)
			}
			if last.String() != tt.want {
				t.Errorf("LastReserved(0) = %s, want %s", last, tt.want)
			}
		})
	}
}

func TestAllocateExhausted(t *testing.T) {
	t.Run("a full set returns an ExhaustedError naming the set and changes nothing", func(t *testing.T) {
		a, store := newTestAllocator(t, nil, mustSet(t, "fd00:10:244:ff::/126"))
		allocate(t, a, ownerOf("a"))
		allocate(t, a, ownerOf("b"))
		before := reservations(t, store)

		got, err := a.Allocate(ownerOf("c"))
		var ex *ExhaustedError
		if !errors.As(err, &ex) {
			t.Fatalf("Allocate = %v, %v; want an *ExhaustedError", got, err)
		}
		if got != nil {
			t.Errorf("Allocate returned %v with the error, want nil", got)
		}
		want := ExhaustedError{Set: 0, Range: "fd00:10:244:ff::1-fd00:10:244:ff::3 (fd00:10:244:ff::/126)", InUse: 2}
		if *ex != want {
			t.Errorf("ExhaustedError = %+v, want %+v", *ex, want)
		}
		if msg := ex.Error(); !strings.Contains(msg, "no free address in range set 0 (fd00:10:244:ff::1-fd00:10:244:ff::3 (fd00:10:244:ff::/126)): 2 addresses in use") {
			t.Errorf("Error() = %q, want it to name the set, its range and the addresses in use", msg)
		}
		checkReservations(t, store, before)
	})

	t.Run("when the second set is full the address reserved from the first is released again", func(t *testing.T) {
		a, store := newTestAllocator(t, nil, mustSet(t, "10.244.1.0/24"), mustSet(t, "fd00:10:244:ff::/126"))
		allocate(t, a, ownerOf("a"))
		allocate(t, a, ownerOf("b"))
		before := reservations(t, store)

		got, err := a.Allocate(ownerOf("c"))
		var ex *ExhaustedError
		if !errors.As(err, &ex) {
			t.Fatalf("Allocate = %v, %v; want an *ExhaustedError", got, err)
		}
		if got != nil {
			t.Errorf("Allocate returned %v with the error, want nil", got)
		}
		if ex.Set != 1 || ex.InUse != 2 || !strings.Contains(ex.Range, "fd00:10:244:ff::/126") {
			t.Errorf("ExhaustedError = %+v, want set 1 (fd00:10:244:ff::/126) with 2 in use", *ex)
		}
		// 10.244.1.4 was reserved for c in this call and must be free again.
		checkReservations(t, store, before)
		owned, err := a.Owned(ownerOf("c"))
		if err != nil || len(owned) != 0 {
			t.Errorf("Owned(c) = %v, %v; want nothing", owned, err)
		}
	})

	t.Run("the addresses counted in use are those of the exhausted set only", func(t *testing.T) {
		a, store := newTestAllocator(t, nil, mustSet(t, "10.0.0.0/30"))
		if ok, err := store.Reserve(netip.MustParseAddr("192.0.2.1"), ownerOf("stale")); !ok || err != nil {
			t.Fatalf("Reserve(192.0.2.1) = %v, %v", ok, err)
		}
		allocate(t, a, ownerOf("a"))
		_, err := a.Allocate(ownerOf("b"))
		var ex *ExhaustedError
		if !errors.As(err, &ex) {
			t.Fatalf("Allocate = %v, want an *ExhaustedError", err)
		}
		if ex.InUse != 1 {
			t.Errorf("InUse = %d, want 1 (192.0.2.1 is outside the set)", ex.InUse)
		}
	})
}

func TestAllocateDuplicate(t *testing.T) {
	a, store := newTestAllocator(t, nil, mustSet(t, "10.244.1.0/24"), mustSet(t, "fd00:10:244:1::/64"))
	if got := allocate(t, a, ownerOf("a")); got != "10.244.1.2 fd00:10:244:1::2" {
		t.Fatalf("first Allocate = %q", got)
	}
	before := reservations(t, store)

	got, err := a.Allocate(ownerOf("a"))
	var dup *DuplicateError
	if !errors.As(err, &dup) {
		t.Fatalf("second Allocate = %v, %v; want a *DuplicateError", got, err)
	}
	if got != nil {
		t.Errorf("second Allocate returned %v with the error, want nil", got)
	}
	if dup.Owner != ownerOf("a") {
		t.Errorf("DuplicateError.Owner = %s, want a/eth0", dup.Owner)
	}
	if want := addrs("10.244.1.2", "fd00:10:244:1::2"); !slices.Equal(dup.IPs, want) {
		t.Errorf("DuplicateError.IPs = %v, want %v (sorted)", dup.IPs, want)
	}
	if msg := dup.Error(); !strings.Contains(msg, `container "a" interface "eth0" already holds`) || !strings.Contains(msg, "DEL it first") {
		t.Errorf("Error() = %q, want it to name the owner and say to DEL first", msg)
	}
	checkReservations(t, store, before)

	t.Run("the same container with another interface is a different owner", func(t *testing.T) {
		if got := allocate(t, a, Owner{ContainerID: "a", IfName: "net1"}); got != "10.244.1.3 fd00:10:244:1::3" {
			t.Errorf("Allocate(a/net1) = %q, want the next addresses", got)
		}
	})
}

func TestRelease(t *testing.T) {
	a, store := newTestAllocator(t, nil, mustSet(t, "10.244.1.0/24"), mustSet(t, "fd00:10:244:1::/64"))
	aEth0, aNet1, b := ownerOf("a"), Owner{ContainerID: "a", IfName: "net1"}, ownerOf("b")
	allocate(t, a, aEth0) // .2 ::2
	allocate(t, a, aNet1) // .3 ::3
	allocate(t, a, b)     // .4 ::4

	got := release(t, a, aEth0)
	if want := addrs("10.244.1.2", "fd00:10:244:1::2"); !slices.Equal(got, want) {
		t.Errorf("Release(a/eth0) = %v, want %v", got, want)
	}
	checkReservations(t, store, map[netip.Addr]Owner{
		netip.MustParseAddr("10.244.1.3"):       aNet1,
		netip.MustParseAddr("fd00:10:244:1::3"): aNet1,
		netip.MustParseAddr("10.244.1.4"):       b,
		netip.MustParseAddr("fd00:10:244:1::4"): b,
	})

	tests := []struct {
		name  string
		owner Owner
	}{
		{"releasing an owner again is a no-op success", aEth0},
		{"releasing an unknown container is a no-op success", ownerOf("unknown")},
		{"releasing a known container with an unknown interface is a no-op success", Owner{ContainerID: "b", IfName: "net1"}},
		{"releasing the zero owner is a no-op success", Owner{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := reservations(t, store)
			if got := release(t, a, tt.owner); len(got) != 0 {
				t.Errorf("Release(%s) = %v, want nothing", tt.owner, got)
			}
			checkReservations(t, store, before)
		})
	}
}

func TestOwnedIsSorted(t *testing.T) {
	a, store := newTestAllocator(t, nil, mustSet(t, "10.244.1.0/24"))
	for _, ip := range []string{"fd00::9", "10.244.1.9", "10.244.1.10", "10.244.1.8"} {
		if ok, err := store.Reserve(netip.MustParseAddr(ip), ownerOf("a")); !ok || err != nil {
			t.Fatalf("Reserve(%s) = %v, %v", ip, ok, err)
		}
	}
	got, err := a.Owned(ownerOf("a"))
	if err != nil {
		t.Fatalf("Owned: %v", err)
	}
	if want := addrs("10.244.1.8", "10.244.1.9", "10.244.1.10", "fd00::9"); !slices.Equal(got, want) {
		t.Errorf("Owned(a) = %v, want %v", got, want)
	}
}

func TestGC(t *testing.T) {
	tests := []struct {
		name      string
		valid     []Owner
		wantFreed []string // "ip=owner", sorted by IP
	}{
		{
			name:      "reservations of owners not in the valid list are released",
			valid:     []Owner{ownerOf("b")},
			wantFreed: []string{"10.244.1.2=a/eth0", "10.244.1.4=c/eth0", "fd00:10:244:1::2=a/eth0", "fd00:10:244:1::4=c/eth0"},
		},
		{
			name:  "nothing is released when every owner is valid",
			valid: []Owner{ownerOf("a"), ownerOf("b"), ownerOf("c")},
		},
		{
			name:      "everything is released when the valid list is empty",
			wantFreed: []string{"10.244.1.2=a/eth0", "10.244.1.3=b/eth0", "10.244.1.4=c/eth0", "fd00:10:244:1::2=a/eth0", "fd00:10:244:1::3=b/eth0", "fd00:10:244:1::4=c/eth0"},
		},
		{
			name:      "a valid container with another interface does not keep the reservation",
			valid:     []Owner{ownerOf("a"), ownerOf("b"), {ContainerID: "c", IfName: "net1"}},
			wantFreed: []string{"10.244.1.4=c/eth0", "fd00:10:244:1::4=c/eth0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, store := newTestAllocator(t, nil, mustSet(t, "10.244.1.0/24"), mustSet(t, "fd00:10:244:1::/64"))
			for _, o := range []string{"a", "b", "c"} {
				allocate(t, a, ownerOf(o))
			}
			before := reservations(t, store)

			freed, err := a.GC(tt.valid)
			if err != nil {
				t.Fatalf("GC: %v", err)
			}
			var got []string
			for _, r := range freed {
				got = append(got, fmt.Sprintf("%s=%s", r.IP, r.Owner))
			}
			if !slices.Equal(got, tt.wantFreed) {
				t.Errorf("GC freed\n %v\nwant\n %v", got, tt.wantFreed)
			}
			want := maps.Clone(before)
			for _, r := range freed {
				delete(want, r.IP)
			}
			checkReservations(t, store, want)
		})
	}
}

func TestCheckFree(t *testing.T) {
	tests := []struct {
		name    string
		sets    []RangeSet
		exclude []string
		taken   []string
		wantSet int // -1 means no error
	}{
		{
			name:    "an empty store has room",
			sets:    []RangeSet{mustSet(t, "10.244.1.0/24"), mustSet(t, "fd00:10:244:ff::/126")},
			wantSet: -1,
		},
		{
			name:    "one free address is enough",
			sets:    []RangeSet{mustSet(t, "10.0.0.0/29")},
			taken:   []string{"10.0.0.2", "10.0.0.3", "10.0.0.5", "10.0.0.6"},
			wantSet: -1,
		},
		{
			name:    "a full second set is reported as set 1",
			sets:    []RangeSet{mustSet(t, "10.244.1.0/24"), mustSet(t, "fd00:10:244:ff::/126")},
			taken:   []string{"fd00:10:244:ff::2", "fd00:10:244:ff::3"},
			wantSet: 1,
		},
		{
			name:    "a set whose only free addresses are excluded is full",
			sets:    []RangeSet{mustSet(t, "10.0.0.0/29")},
			exclude: []string{"10.0.0.4/31"},
			taken:   []string{"10.0.0.2", "10.0.0.3", "10.0.0.6"},
			wantSet: 0,
		},
		{
			name:    "reservations outside the sets do not count",
			sets:    []RangeSet{mustSet(t, "10.0.0.0/30")},
			taken:   []string{"192.0.2.2", "10.0.0.1", "10.0.0.3"},
			wantSet: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, store := newTestAllocator(t, tt.exclude, tt.sets...)
			for i, ip := range tt.taken {
				if ok, err := store.Reserve(netip.MustParseAddr(ip), ownerOf(fmt.Sprint(i))); !ok || err != nil {
					t.Fatalf("Reserve(%s) = %v, %v", ip, ok, err)
				}
			}
			err := a.CheckFree()
			if tt.wantSet < 0 {
				if err != nil {
					t.Errorf("CheckFree() = %v, want nil", err)
				}
				return
			}
			var ex *ExhaustedError
			if !errors.As(err, &ex) {
				t.Fatalf("CheckFree() = %v, want an *ExhaustedError", err)
			}
			if ex.Set != tt.wantSet {
				t.Errorf("ExhaustedError.Set = %d, want %d", ex.Set, tt.wantSet)
			}
			// CheckFree and Allocate must agree.
			if got := allocate(t, a, ownerOf("probe")); got != exhausted {
				t.Errorf("Allocate after CheckFree reported a full set = %q, want exhausted", got)
			}
		})
	}
}

// faultyStore wraps a MemoryStore and fails chosen calls.
type faultyStore struct {
	*MemoryStore
	failReserve func(netip.Addr) error // nil: never fail
	failSetLast error
	failLock    error
}

func (f *faultyStore) Lock() error {
	if f.failLock != nil {
		return f.failLock
	}
	return f.MemoryStore.Lock()
}

func (f *faultyStore) Reserve(ip netip.Addr, o Owner) (bool, error) {
	if f.failReserve != nil {
		if err := f.failReserve(ip); err != nil {
			return false, err
		}
	}
	return f.MemoryStore.Reserve(ip, o)
}

func (f *faultyStore) SetLastReserved(set int, ip netip.Addr) error {
	if f.failSetLast != nil {
		return f.failSetLast
	}
	return f.MemoryStore.SetLastReserved(set, ip)
}

var errDiskFull = errors.New("disk full")

func TestAllocateStoreErrors(t *testing.T) {
	t.Run("a Reserve error propagates and leaves nothing reserved", func(t *testing.T) {
		a, store := newTestAllocator(t, nil, mustSet(t, "10.244.1.0/24"), mustSet(t, "fd00:10:244:1::/64"))
		store.FailReserve = errDiskFull
		got, err := a.Allocate(ownerOf("a"))
		if !errors.Is(err, errDiskFull) {
			t.Fatalf("Allocate = %v, %v; want an error wrapping %v", got, err, errDiskFull)
		}
		var ex *ExhaustedError
		if errors.As(err, &ex) {
			t.Errorf("Allocate = %v, a store error must not look like exhaustion", err)
		}
		if got != nil {
			t.Errorf("Allocate returned %v with the error, want nil", got)
		}
		checkReservations(t, store, map[netip.Addr]Owner{})

		store.FailReserve = nil
		if got := allocate(t, a, ownerOf("a")); got != "10.244.1.2 fd00:10:244:1::2" {
			t.Errorf("Allocate after the store recovered = %q, want the first addresses", got)
		}
	})

	t.Run("a Reserve error in the second set releases the address of the first", func(t *testing.T) {
		store := &faultyStore{MemoryStore: NewMemoryStore(), failReserve: func(ip netip.Addr) error {
			if ip.Is6() {
				return errDiskFull
			}
			return nil
		}}
		a := NewAllocator(store, []RangeSet{mustSet(t, "10.244.1.0/24"), mustSet(t, "fd00:10:244:1::/64")}, nil)
		got, err := a.Allocate(ownerOf("a"))
		if !errors.Is(err, errDiskFull) {
			t.Fatalf("Allocate = %v, %v; want an error wrapping %v", got, err, errDiskFull)
		}
		if !strings.Contains(err.Error(), "reserve fd00:10:244:1::2") {
			t.Errorf("Allocate error %q does not name the address it failed to reserve", err)
		}
		checkReservations(t, store, map[netip.Addr]Owner{})
	})

	t.Run("a SetLastReserved error releases the address just reserved", func(t *testing.T) {
		store := &faultyStore{MemoryStore: NewMemoryStore(), failSetLast: errDiskFull}
		a := NewAllocator(store, []RangeSet{mustSet(t, "10.244.1.0/24")}, nil)
		_, err := a.Allocate(ownerOf("a"))
		if !errors.Is(err, errDiskFull) {
			t.Fatalf("Allocate = %v; want an error wrapping %v", err, errDiskFull)
		}
		checkReservations(t, store, map[netip.Addr]Owner{})
	})

	t.Run("a Lock error propagates from every method", func(t *testing.T) {
		store := &faultyStore{MemoryStore: NewMemoryStore(), failLock: errDiskFull}
		a := NewAllocator(store, []RangeSet{mustSet(t, "10.244.1.0/24")}, nil)
		calls := map[string]func() error{
			"Allocate":  func() error { _, err := a.Allocate(ownerOf("a")); return err },
			"Release":   func() error { _, err := a.Release(ownerOf("a")); return err },
			"Owned":     func() error { _, err := a.Owned(ownerOf("a")); return err },
			"GC":        func() error { _, err := a.GC(nil); return err },
			"CheckFree": a.CheckFree,
		}
		for _, name := range slices.Sorted(maps.Keys(calls)) {
			if err := calls[name](); !errors.Is(err, errDiskFull) || !strings.Contains(err.Error(), "lock store") {
				t.Errorf("%s() = %v, want a lock store error wrapping %v", name, err, errDiskFull)
			}
		}
	})
}

func TestFailedAllocateRestoresTheRoundRobinPosition(t *testing.T) {
	v4 := RangeSet{{Subnet: netip.MustParsePrefix("10.244.1.0/24")}}
	v6 := RangeSet{{Subnet: netip.MustParsePrefix("fd00::/64"), End: netip.MustParseAddr("fd00::2")}}
	for _, s := range []RangeSet{v4, v6} {
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	a, store := newTestAllocator(t, nil, v4, v6)
	if got := allocate(t, a, ownerOf("a")); got == "" {
		t.Fatal("first allocation failed")
	}
	before, _ := store.LastReserved(0)
	if _, err := a.Allocate(ownerOf("b")); err == nil {
		t.Fatal("second allocation succeeded with the IPv6 set exhausted")
	}
	after, _ := store.LastReserved(0)
	if after != before {
		t.Errorf("round-robin position of set 0 moved from %s to %s by a failed allocation", before, after)
	}
}
