package wireguard

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"sigs.k8s.io/knftables"
)

// The strict-mode table.
const (
	Table = "podnet-wireguard"
	// StrictCounter counts the packets strict mode dropped.
	StrictCounter = "strict-drops"
	// StrictPriority runs the check after NAT has chosen the destination
	// (DNAT happens before routing) and before masquerade (srcnat, 100).
	StrictPriority = knftables.BaseChainPriority("50")
	strictChain    = "postrouting"
)

// RenderStrict fills tx with the whole strict-mode table: traffic to the
// cluster's pod CIDRs (clusterCIDRs), other than to this node's own
// (local), that does not leave through the WireGuard device is counted and
// dropped. The table is flushed first, so tx replaces whatever was there.
func RenderStrict(tx *knftables.Transaction, clusterCIDRs, local []netip.Prefix) {
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("podnet: WireGuard strict mode (package wireguard)")})
	tx.Flush(&knftables.Table{})
	tx.Add(&knftables.Counter{Name: StrictCounter,
		Comment: knftables.PtrTo("packets to remote pods that would have left unencrypted")})
	tx.Add(&knftables.Chain{Name: strictChain, Type: knftables.PtrTo(knftables.FilterType),
		Hook: knftables.PtrTo(knftables.PostroutingHook), Priority: knftables.PtrTo(StrictPriority)})
	tx.Add(&knftables.Rule{Chain: strictChain, Rule: knftables.Concat("oifname", Device, "accept")})
	for _, c := range clusterCIDRs {
		fam := "ip"
		if c.Addr().Is6() {
			fam = "ip6"
		}
		var mine []string
		for _, l := range local {
			if l.Addr().Is6() == c.Addr().Is6() {
				mine = append(mine, l.String())
			}
		}
		rule := []any{fam, "daddr", c}
		if len(mine) > 0 {
			rule = append(rule, fam, "daddr", "!=", "{", strings.Join(mine, ", "), "}")
		}
		rule = append(rule, "counter", "name", fmt.Sprintf("%q", StrictCounter), "drop")
		tx.Add(&knftables.Rule{Chain: strictChain, Rule: knftables.Concat(rule...)})
	}
}

// NewNFT returns the real nftables interface for the strict-mode table.
func NewNFT() (knftables.Interface, error) {
	return knftables.New(knftables.InetFamily, Table)
}

// StrictDrops reads the strict-mode drop counter: packets and bytes, and
// false when the table does not exist (strict mode off). Nil entries in
// the list are skipped (knftables' Fake returns some).
func StrictDrops(ctx context.Context, nft knftables.Interface) (packets, bytes uint64, ok bool) {
	counters, err := nft.ListCounters(ctx)
	if err != nil {
		return 0, 0, false
	}
	for _, c := range counters {
		if c != nil && c.Name == StrictCounter && c.Packets != nil && c.Bytes != nil {
			return *c.Packets, *c.Bytes, true
		}
	}
	return 0, 0, false
}

// DeleteStrict removes the strict-mode table if it exists.
func DeleteStrict(ctx context.Context, nft knftables.Interface) error {
	tx := nft.NewTransaction()
	tx.Delete(&knftables.Table{})
	err := nft.Run(ctx, tx)
	if err != nil && knftables.IsNotFound(err) {
		return nil
	}
	return err
}
