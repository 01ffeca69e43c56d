package proxy

import (
	"context"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// NetlinkElements is the ElementWriter of the kernel: it sends the changes
// as one nf_tables netlink batch (github.com/google/nftables), which the
// kernel applies atomically, and never loads the table.
type NetlinkElements struct {
	// set at construction, read-only
	conn  *nftables.Conn
	table *nftables.Table
}

var _ ElementWriter = (*NetlinkElements)(nil)

// NewNetlinkElements opens a netlink socket in the calling thread's network
// namespace, for the proxy's table there.
func NewNetlinkElements() (*NetlinkElements, error) {
	conn, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("nftables netlink socket: %w", err)
	}
	return &NetlinkElements{conn: conn, table: &nftables.Table{Name: Table, Family: nftables.TableFamilyINet}}, nil
}

// Close closes the socket.
func (w *NetlinkElements) Close() error { return w.conn.CloseLasting() }

// Supports implements ElementWriter.
func (w *NetlinkElements) Supports(e Element) bool {
	_, _, ok := encodeElement(e)
	return ok
}

// Write implements ElementWriter.
func (w *NetlinkElements) Write(_ context.Context, removed, added []Element, picks []SlotPick) error {
	batch := func(changes []Element, apply func(*nftables.Set, []nftables.SetElement) error) error {
		bySet := map[string][]nftables.SetElement{}
		var order []string
		isMap := map[string]bool{}
		for _, c := range changes {
			k, v, ok := encodeElement(c)
			if !ok {
				return fmt.Errorf("set %s: %T is not supported over netlink", c.Set(), c)
			}
			set := c.Set()
			if bySet[set] == nil {
				order = append(order, set)
			}
			bySet[set] = append(bySet[set], nftables.SetElement{Key: k, Val: v})
			isMap[set] = v != nil
		}
		for _, name := range order {
			if err := apply(&nftables.Set{Table: w.table, Name: name, IsMap: isMap[name]}, bySet[name]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := batch(removed, w.conn.SetDeleteElements); err != nil {
		return err
	}
	if err := batch(added, w.conn.SetAddElements); err != nil {
		return err
	}
	for _, p := range picks {
		if err := w.replacePick(p); err != nil {
			return err
		}
	}
	if err := w.conn.Flush(); err != nil {
		return fmt.Errorf("nftables netlink batch: %w", err)
	}
	return nil
}

// replacePick queues the replacement of a slot-pick rule, found by its
// position in its chain, with the expressions nft itself generates for
// "ct mark set numgen random mod N offset BASE goto TARGET".
func (w *NetlinkElements) replacePick(p SlotPick) error {
	chain := &nftables.Chain{Name: p.Chain, Table: w.table}
	rules, err := w.conn.GetRules(w.table, chain)
	if err != nil {
		return fmt.Errorf("rules of %s: %w", p.Chain, err)
	}
	if p.Index >= len(rules) || !isSlotPick(rules[p.Index]) {
		return fmt.Errorf("chain %s: rule %d is not the slot pick the proxy wrote", p.Chain, p.Index)
	}
	w.conn.ReplaceRule(&nftables.Rule{Table: w.table, Chain: chain, Handle: rules[p.Index].Handle, Exprs: []expr.Any{
		&expr.Numgen{Register: 1, Modulus: p.N, Type: unix.NFT_NG_RANDOM, Offset: p.Base},
		&expr.Ct{Register: 1, SourceRegister: true, Key: expr.CtKeyMARK},
		&expr.Verdict{Kind: expr.VerdictGoto, Chain: p.Target},
	}})
	return nil
}

func isSlotPick(r *nftables.Rule) bool {
	if len(r.Exprs) != 3 {
		return false
	}
	_, ng := r.Exprs[0].(*expr.Numgen)
	ct, isCt := r.Exprs[1].(*expr.Ct)
	// The library does not decode a ct statement's source register; a
	// ct expression without a destination register is a "ct set".
	return ng && isCt && ct.Key == expr.CtKeyMARK && ct.Register == 0
}
