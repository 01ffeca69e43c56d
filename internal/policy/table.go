package policy

import (
	"fmt"

	"sigs.k8s.io/knftables"

	"github.com/podnet/podnet/internal/flow/logrule"
)

type setDef struct {
	name, typ string
	interval  bool
}

// allSets declares every set of the table.
func allSets() []setDef {
	var out []setDef
	for _, v4 := range []bool{true, false} {
		addr := "ipv6_addr"
		if v4 {
			addr = "ipv4_addr"
		}
		for _, d := range []Direction{Ingress, Egress} {
			out = append(out,
				setDef{setName("isolated", d, v4), addr, false},
				setDef{setName("any-exact", d, v4), addr + " . " + addr, false},
				setDef{setName("any", d, v4), addr + " . " + addr, true},
				setDef{setName("ports-exact", d, v4), addr + " . " + addr + " . inet_proto . inet_service", false},
				setDef{setName("ports", d, v4), addr + " . " + addr + " . inet_proto . inet_service", true})
		}
	}
	return out
}

// Chains: the base chains run at filter priority 0, after the service
// proxy's filter chains (-10) and on the DNATed packet.
const (
	chainForward = "forward"
	chainInput   = "input"
)

func dirChain(d Direction, v4 bool) string {
	if v4 {
		return d.String() + "-v4"
	}
	return d.String() + "-v6"
}

// declare writes the table's fixed part: the table, its chains with their
// rules, and the sets, all emptied. Run with the elements in the same
// transaction, it replaces the table's content atomically; the rules never
// leave an isolated pod open in between.
func declare(tx *knftables.Transaction) {
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("podnet NetworkPolicy; owned by the podnet agent")})
	// Adding an existing counter keeps its values.
	tx.Add(&knftables.Counter{Name: logrule.ExcessCounter})
	for _, s := range allSets() {
		set := &knftables.Set{Name: s.name, Type: s.typ}
		if s.interval {
			set.Flags = []knftables.SetFlag{knftables.IntervalFlag}
		}
		tx.Add(set)
		tx.Flush(set)
	}
	base := []struct{ name, hook string }{{chainForward, "forward"}, {chainInput, "input"}}
	for _, b := range base {
		tx.Add(&knftables.Chain{Name: b.name, Type: knftables.PtrTo(knftables.FilterType),
			Hook: knftables.PtrTo(knftables.BaseChainHook(b.hook)), Priority: knftables.PtrTo(knftables.FilterPriority)})
		tx.Flush(&knftables.Chain{Name: b.name})
	}
	for _, d := range []Direction{Ingress, Egress} {
		for _, v4 := range []bool{true, false} {
			tx.Add(&knftables.Chain{Name: dirChain(d, v4)})
			tx.Flush(&knftables.Chain{Name: dirChain(d, v4)})
		}
	}
	rule := func(chain string, parts ...any) {
		tx.Add(&knftables.Rule{Chain: chain, Rule: knftables.Concat(parts...)})
	}
	for _, b := range base {
		rule(b.name, "ct state established,related accept")
		rule(b.name, "ip saddr", "@"+setName("isolated", Egress, true), "jump", dirChain(Egress, true))
		rule(b.name, "ip6 saddr", "@"+setName("isolated", Egress, false), "jump", dirChain(Egress, false))
		if b.name == chainForward {
			rule(b.name, "ip daddr", "@"+setName("isolated", Ingress, true), "jump", dirChain(Ingress, true))
			rule(b.name, "ip6 daddr", "@"+setName("isolated", Ingress, false), "jump", dirChain(Ingress, false))
		}
	}
	for _, d := range []Direction{Ingress, Egress} {
		for _, v4 := range []bool{true, false} {
			ip := "ip6"
			if v4 {
				ip = "ip"
			}
			// The pod's own address first: daddr for ingress, saddr
			// for egress.
			pod, peer := ip+" daddr", ip+" saddr"
			if d == Egress {
				pod, peer = peer, pod
			}
			c := dirChain(d, v4)
			for _, kind := range []string{"any-exact", "any"} {
				rule(c, fmt.Sprintf("%s . %s @%s return", pod, peer, setName(kind, d, v4)))
			}
			for _, kind := range []string{"ports-exact", "ports"} {
				rule(c, fmt.Sprintf("%s . %s . meta l4proto . th dport @%s return", pod, peer, setName(kind, d, v4)))
			}
			// The drop, logged for flow records (rate-limited, the
			// excess counted): package flow/logrule.
			for _, r := range logrule.Rules(logrule.PolicyDrop(d.String()), "drop") {
				rule(c, r)
			}
		}
	}
}
