package guard

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"sigs.k8s.io/knftables"
)

// The table's objects (README.md has the contract).
const (
	chainOutput   = "output"
	chainConfined = "confined"
	chainRefuse   = "refuse"
	setAllowedV4  = "allowed-v4"
	setAllowedV6  = "allowed-v6"
	// CounterDropped counts the confined packets the guard dropped.
	CounterDropped = "dropped"
	// LogRate bounds the kernel log lines of dropped packets; the counter
	// counts every one.
	LogRate = "10/minute burst 5 packets"
)

// NewNFT returns the real nftables interface for the model's table, in the
// calling thread's network namespace.
func NewNFT(table string) (knftables.Interface, error) {
	nft, err := knftables.New(knftables.InetFamily, table, knftables.EmulateDestroy)
	if err != nil {
		return nil, fmt.Errorf("guard: nftables: %w", err)
	}
	return nft, nil
}

// Install writes the whole table of m in one transaction: the table, its
// sets with m's destinations, its chains and rules, and the counter (which
// an existing table keeps: reinstalling never resets it). nft must be for
// m.Table.
func Install(ctx context.Context, nft knftables.Interface, m Model) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("guard: %w", err)
	}
	tx := nft.NewTransaction()
	render(tx, m)
	if err := nft.Run(ctx, tx); err != nil {
		return fmt.Errorf("guard: install table inet %s: %w", m.Table, err)
	}
	return nil
}

// render adds every object of m's table to tx, emptying what an earlier
// version of the table held, so that the transaction replaces it.
func render(tx *knftables.Transaction, m Model) {
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("podnet local cluster: what its root-namespace processes may send; owned by podnet up/down")})
	tx.Add(&knftables.Counter{Name: CounterDropped, Comment: knftables.PtrTo("confined packets dropped")})
	v4, v6 := splitAllowed(m.Allowed)
	for _, s := range []struct {
		name, typ string
		elems     []netip.Prefix
	}{{setAllowedV4, "ipv4_addr", v4}, {setAllowedV6, "ipv6_addr", v6}} {
		set := &knftables.Set{Name: s.name, Type: s.typ, Flags: []knftables.SetFlag{knftables.IntervalFlag},
			Comment: knftables.PtrTo("destinations confined packets may reach")}
		tx.Add(set)
		tx.Flush(set)
		for _, p := range s.elems {
			tx.Add(&knftables.Element{Set: s.name, Key: []string{p.String()}})
		}
	}
	tx.Add(&knftables.Chain{Name: chainOutput, Type: knftables.PtrTo(knftables.FilterType),
		Hook: knftables.PtrTo(knftables.OutputHook), Priority: knftables.PtrTo(knftables.FilterPriority)})
	for _, c := range []string{chainOutput, chainConfined, chainRefuse} {
		tx.Add(&knftables.Chain{Name: c})
		tx.Flush(&knftables.Chain{Name: c})
	}
	rule := func(chain string, parts ...any) {
		tx.Add(&knftables.Rule{Chain: chain, Rule: knftables.Concat(parts...)})
	}
	rule(chainOutput, "meta cgroup", fmt.Sprintf("%#x", m.ClassID), "jump", chainConfined)
	// No name lookups, not even on loopback: a stub resolver there
	// (systemd-resolved at 127.0.0.53) would forward them off the machine.
	rule(chainConfined, "ip daddr 127.0.0.0/8 meta l4proto { tcp, udp } th dport 53 goto", chainRefuse)
	rule(chainConfined, "ip6 daddr ::1 meta l4proto { tcp, udp } th dport 53 goto", chainRefuse)
	rule(chainConfined, "ip daddr", "@"+setAllowedV4, "return")
	rule(chainConfined, "ip6 daddr", "@"+setAllowedV6, "return")
	rule(chainConfined, "goto", chainRefuse)
	rule(chainRefuse, "counter name", CounterDropped)
	rule(chainRefuse, "limit rate", LogRate, "log prefix", fmt.Sprintf("%q", m.LogPrefix), "level warn")
	rule(chainRefuse, "drop")
}

// splitAllowed sorts the prefixes by family and drops those inside
// another, since an interval set refuses overlapping elements.
func splitAllowed(ps []netip.Prefix) (v4, v6 []netip.Prefix) {
	sorted := slices.Clone(ps)
	slices.SortFunc(sorted, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	var last netip.Prefix
	for _, p := range sorted {
		p = p.Masked()
		if last.IsValid() && last.Addr().Is4() == p.Addr().Is4() && last.Bits() <= p.Bits() && last.Contains(p.Addr()) {
			continue
		}
		last = p
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	return v4, v6
}

// Remove deletes the table (a missing one is success). nft must be for
// the table to remove, made with knftables.EmulateDestroy (NewNFT).
func Remove(ctx context.Context, nft knftables.Interface) error {
	tx := nft.NewTransaction()
	tx.Destroy(&knftables.Table{})
	if err := nft.Run(ctx, tx); err != nil {
		return fmt.Errorf("guard: remove table: %w", err)
	}
	return nil
}

// Dropped reads the table's counter: the packets and bytes dropped since
// the table was made. installed is false when the table does not exist.
func Dropped(ctx context.Context, nft knftables.Interface) (packets, bytes uint64, installed bool, err error) {
	counters, err := nft.ListCounters(ctx)
	if knftables.IsNotFound(err) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("guard: read counter %s: %w", CounterDropped, err)
	}
	for _, c := range counters {
		if c != nil && c.Name == CounterDropped {
			return deref(c.Packets), deref(c.Bytes), true, nil
		}
	}
	return 0, 0, true, fmt.Errorf("guard: the table has no counter %s", CounterDropped)
}

func deref(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}
