package routing

import (
	"net/netip"

	"sigs.k8s.io/knftables"
)

// Table is the nftables table this package owns (family inet).
const Table = "podnet-routing"

// MasqConfig says which traffic is the cluster's own.
type MasqConfig struct {
	// PodCIDRs are the cluster's pod ranges (all nodes).
	PodCIDRs []netip.Prefix
	// ServiceCIDRs are the cluster's service ranges.
	ServiceCIDRs []netip.Prefix
}

// Set names, one per family.
const (
	setPods4      = "pod-cidrs-v4"
	setPods6      = "pod-cidrs-v6"
	setNoMasq4    = "no-masquerade-v4"
	setNoMasq6    = "no-masquerade-v6"
	chainPostNAT  = "postrouting"
	postNATPrio   = knftables.SNATPriority
	postNATHook   = knftables.PostroutingHook
	masqComment   = "pod traffic leaving the cluster's pod and service ranges"
	tableComment  = "podnet routing: masquerade of traffic leaving the cluster; owned by the podnet agent"
	elementsNoted = "cluster ranges"
)

// RenderMasquerade adds to tx the whole table: it is declared, its chain and
// sets are flushed and refilled, so running the transaction replaces the
// previous contents atomically.
func RenderMasquerade(tx *knftables.Transaction, c MasqConfig) {
	tx.Add(&knftables.Table{Comment: knftables.PtrTo(tableComment)})
	tx.Add(&knftables.Chain{
		Name: chainPostNAT, Type: knftables.PtrTo(knftables.NATType),
		Hook: knftables.PtrTo(postNATHook), Priority: knftables.PtrTo(postNATPrio),
	})
	tx.Flush(&knftables.Chain{Name: chainPostNAT})
	for _, fam := range []struct {
		v4            bool
		pods, nomasq  string
		typ, selector string
	}{
		{true, setPods4, setNoMasq4, "ipv4_addr", "ip"},
		{false, setPods6, setNoMasq6, "ipv6_addr", "ip6"},
	} {
		for _, set := range []string{fam.pods, fam.nomasq} {
			tx.Add(&knftables.Set{Name: set, Type: fam.typ, Flags: []knftables.SetFlag{knftables.IntervalFlag}, Comment: knftables.PtrTo(elementsNoted)})
			tx.Flush(&knftables.Set{Name: set})
		}
		pods := filterFamily(c.PodCIDRs, fam.v4)
		if len(pods) == 0 {
			continue
		}
		for _, p := range pods {
			tx.Add(&knftables.Element{Set: fam.pods, Key: []string{p.String()}})
		}
		for _, p := range append(pods, filterFamily(c.ServiceCIDRs, fam.v4)...) {
			tx.Add(&knftables.Element{Set: fam.nomasq, Key: []string{p.String()}})
		}
		tx.Add(&knftables.Rule{
			Chain:   chainPostNAT,
			Rule:    knftables.Concat(fam.selector, "saddr", "@"+fam.pods, fam.selector, "daddr", "!=", "@"+fam.nomasq, "masquerade fully-random"),
			Comment: knftables.PtrTo(masqComment),
		})
	}
}

func filterFamily(ps []netip.Prefix, v4 bool) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is4() == v4 {
			out = append(out, p.Masked())
		}
	}
	return out
}
