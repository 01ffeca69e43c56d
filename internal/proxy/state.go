package proxy

import (
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/knftables"
)

// State is the desired dynamic content of the proxy's table, in fragments:
// one per Service port (its chains, elements and affinity sets) and one for
// the node-wide elements. The syncer keeps the State of its last successful
// sync; a fragment whose inputs did not change is reused as it is, and only
// changed fragments are compared, so the cost of a sync follows the change,
// not the cluster.
type State struct {
	frags map[string]*fragment
	// nodeReaders are the keys of the fragments whose Service ports read
	// the node's addresses (readsNodeIPs): a change of those renders them
	// again.
	nodeReaders map[string]bool
	// changes are the fragments the last update replaced, added (old nil)
	// or removed (cur nil).
	changes []fragChange
	// refs counts, per element that fragments may share (see shared), the
	// fragments that hold it. Endpoint slots are not counted. It belongs
	// to the syncer's running state: emitDiff updates it, emitFull
	// rebuilds it.
	refs map[elemID]int32
}

type fragChange struct{ old, cur *fragment }

// fragment is what one Service port (or the node) puts in the table.
type fragment struct {
	// sp is the Service port the fragment was rendered from (nil for the
	// node's fragment), to compare a changed Service port with.
	sp *ServicePort
	// fp is the node fragment's Config fingerprint.
	fp           string
	chains       []*chainState // few: a list costs less than a map
	elements     []Element
	affinitySets map[string]*knftables.Set // nil until the first
	slotUses     []slotUse
}

type slotUse struct {
	slotMap, owner string
}

type chainState struct {
	name, comment string
	rules         []rule
}

// rule is one rule of a Service chain: its nft text, or for the rule that
// picks an endpoint slot, the pick (N > 0, text empty), which the netlink
// writer replaces without reading text.
type rule struct {
	text string
	pick SlotPick
}

func (r rule) String() string {
	if r.pick.N > 0 {
		return r.pick.text()
	}
	return r.text
}

// newFragment returns an empty fragment (affinity sets, which few Service
// ports have, are made on first use).
func newFragment() *fragment {
	return &fragment{}
}

// add records an element of a set or map.
func (f *fragment) add(e Element) { f.elements = append(f.elements, e) }

// chain records a Service chain (its rules follow with rule and pick).
func (f *fragment) chain(name, comment string) {
	f.chains = append(f.chains, &chainState{name: name, comment: comment})
}

func (f *fragment) rule(chain, text string) {
	c := f.chain1(chain)
	c.rules = append(c.rules, rule{text: text})
}

// pick adds the rule that picks one of p.N endpoint slots.
func (f *fragment) pick(chain string, p SlotPick) {
	c := f.chain1(chain)
	c.rules = append(c.rules, rule{pick: p})
}

// chain1 returns the chain called name (nil when f has none); rules
// mostly go to the chain made last.
func (f *fragment) chain1(name string) *chainState {
	for i := len(f.chains) - 1; i >= 0; i-- {
		if f.chains[i].name == name {
			return f.chains[i]
		}
	}
	return nil
}

// Counts returns how many Service chains and distinct elements the state
// holds.
func (s *State) Counts() (chains, elements int) {
	seen := map[elemID]bool{}
	for _, f := range s.frags {
		chains += len(f.chains)
		for _, e := range f.elements {
			seen[e.id()] = true
		}
	}
	return chains, len(seen)
}

// all merges the fragments: chains, elements (one per id, sorted) and
// affinity sets of the whole table, and fresh reference counts.
func (s *State) all() (map[string]*chainState, []Element, map[string]*knftables.Set) {
	chains := map[string]*chainState{}
	byID := map[elemID]Element{}
	sets := map[string]*knftables.Set{}
	s.refs = map[elemID]int32{}
	for _, f := range s.frags {
		for _, c := range f.chains {
			chains[c.name] = c
		}
		for n, st := range f.affinitySets {
			sets[n] = st
		}
		for _, e := range f.elements {
			id := e.id()
			byID[id] = e
			if shared(e) {
				s.refs[id]++
			}
		}
	}
	elements := make([]Element, 0, len(byID))
	for _, e := range byID {
		elements = append(elements, e)
	}
	sortElements(elements)
	return chains, elements, sets
}

// sortElements sorts by set, then key.
func sortElements(es []Element) {
	slices.SortFunc(es, func(a, b Element) int { return a.id().compare(b.id()) })
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// emitDiff writes into tx what turns the table from old into cur (see
// diffStates and diff.emit). It moves old's reference counts into cur.
func emitDiff(tx *knftables.Transaction, old, cur *State) {
	diffStates(old, cur).emit(tx)
}

type namedChain struct {
	name string
	c    *chainState
	old  *chainState // the chain before, for a changed chain
}

// diff is what turns one State into another.
type diff struct {
	newChains, changedChains []namedChain
	newSets                  []*knftables.Set
	goneChains, goneSets     []string
	removed, added           []Element
}

// elementsOnly says whether the diff changes nothing but elements and, in
// changed chains, the endpoint-slot picks (the count and offset of a
// Service's slots), which it returns.
func (d *diff) elementsOnly() ([]SlotPick, bool) {
	if len(d.newChains)+len(d.newSets)+len(d.goneChains)+len(d.goneSets) != 0 {
		return nil, false
	}
	var picks []SlotPick
	for _, nc := range d.changedChains {
		if len(nc.old.rules) != len(nc.c.rules) {
			return nil, false
		}
		for i, r := range nc.c.rules {
			old := nc.old.rules[i]
			if r == old {
				continue
			}
			if r.pick.N == 0 || old.pick.N == 0 {
				return nil, false
			}
			p := r.pick
			p.Chain, p.Index = nc.name, i
			picks = append(picks, p)
		}
	}
	return picks, true
}

// SlotPick is the rule that picks one of a Service's endpoint slots:
// "ct mark set numgen random mod N offset BASE goto TARGET", the Index-th
// rule of Chain (Chain and Index are set only where a pick is replaced).
type SlotPick struct {
	Chain   string
	Index   int
	N, Base uint32
	Target  string
}

func (p SlotPick) text() string {
	return fmt.Sprintf("ct mark set numgen random mod %d offset %#x goto %s", p.N, p.Base, p.Target)
}

// diffStates compares only the fragments that changed: cur was updated
// from old (in place, so old == cur) and lists them. It moves old's
// reference counts into cur.
func diffStates(old, cur *State) *diff {
	cur.refs = old.refs
	d := &diff{}
	empty := newFragment()
	for _, c := range cur.changes {
		o, n := c.old, c.cur
		if o == nil {
			o = empty
		}
		if n == nil {
			n = empty
		}
		d.sets(o, n)
		d.chains(o, n)
		d.elements(o, n, cur.refs)
	}
	d.sort()
	return d
}

// sets records the affinity sets n adds to o and those it drops.
func (d *diff) sets(o, n *fragment) {
	for name, st := range n.affinitySets {
		if o.affinitySets[name] == nil {
			d.newSets = append(d.newSets, st)
		}
	}
	for name := range o.affinitySets {
		if n.affinitySets[name] == nil {
			d.goneSets = append(d.goneSets, name)
		}
	}
}

// chains records the chains n adds to o, changes and drops.
func (d *diff) chains(o, n *fragment) {
	for _, c := range n.chains {
		name := c.name
		if oc := o.chain1(name); oc == nil {
			d.newChains = append(d.newChains, namedChain{name: name, c: c})
		} else if !slices.Equal(oc.rules, c.rules) {
			d.changedChains = append(d.changedChains, namedChain{name: name, c: c, old: oc})
		}
	}
	for _, c := range o.chains {
		if name := c.name; n.chain1(name) == nil {
			d.goneChains = append(d.goneChains, name)
		}
	}
}

// elements records the elements n removes from o and adds (a changed value
// is both). A shared element leaves the table with the last fragment that
// holds it and enters with the first, counted in refs.
func (d *diff) elements(o, n *fragment, refs map[elemID]int32) {
	oi, ni := indexElements(o.elements), indexElements(n.elements)
	for _, e := range o.elements {
		id := e.id()
		if ne, ok := ni[id]; ok && ne == e {
			continue
		}
		if !shared(e) {
			d.removed = append(d.removed, e)
			continue
		}
		count, ok := refs[id]
		if !ok {
			continue
		}
		if count <= 1 {
			delete(refs, id)
			d.removed = append(d.removed, e)
		} else {
			refs[id] = count - 1
		}
	}
	for _, e := range n.elements {
		id := e.id()
		if oe, ok := oi[id]; ok && oe == e {
			continue
		}
		if !shared(e) {
			d.added = append(d.added, e)
			continue
		}
		refs[id]++
		if refs[id] == 1 {
			d.added = append(d.added, e)
		}
	}
}

func indexElements(es []Element) map[elemID]Element {
	m := make(map[elemID]Element, len(es))
	for _, e := range es {
		m[e.id()] = e
	}
	return m
}

// sort puts every list of the diff in a stable order, so a transaction is
// the same for the same change.
func (d *diff) sort() {
	for _, l := range [][]namedChain{d.newChains, d.changedChains} {
		slices.SortFunc(l, func(a, b namedChain) int { return strings.Compare(a.name, b.name) })
	}
	slices.SortFunc(d.newSets, func(a, b *knftables.Set) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(d.goneChains)
	slices.Sort(d.goneSets)
	sortElements(d.removed)
	sortElements(d.added)
}

// emit writes the diff into tx in an order the kernel accepts: new chains
// and sets first (so elements and rules may refer to them), then element
// removals, element additions (an element removed by one fragment and added
// by another, a value change or a move between Services, is a delete then
// an add), the rules of new and changed chains, and last the removal of
// chains and sets nothing refers to any more.
func (d *diff) emit(tx *knftables.Transaction) {
	for _, st := range d.newSets {
		tx.Add(st)
	}
	for _, nc := range d.newChains {
		tx.Add(&knftables.Chain{Name: nc.name, Comment: knftables.PtrTo(nc.c.comment)})
	}
	for _, e := range d.removed {
		tx.Delete(e.object())
	}
	for _, e := range d.added {
		tx.Add(e.object())
	}
	for _, nc := range d.changedChains {
		tx.Flush(&knftables.Chain{Name: nc.name})
	}
	for _, nc := range append(d.newChains, d.changedChains...) {
		for _, r := range nc.c.rules {
			tx.Add(&knftables.Rule{Chain: nc.name, Rule: r.String()})
		}
	}
	for _, name := range d.goneChains {
		tx.Flush(&knftables.Chain{Name: name})
	}
	for _, name := range d.goneChains {
		tx.Delete(&knftables.Chain{Name: name})
	}
	for _, name := range d.goneSets {
		tx.Delete(&knftables.Set{Name: name})
	}
}

// SlotAllocator gives each Service port a block of endpoint slots that stays
// where it is across syncs: a block holds a power of two of slots (at least
// 4) and moves only when the endpoints outgrow it. Blocks of Service ports
// that are gone (or of lists a Service port no longer has) are released
// by the builder and go to a free list per size. One Syncer owns one
// allocator.
type SlotAllocator struct {
	blocks map[string]map[string]*slotBlock // slot map -> owner -> block
	free   map[string]map[int][]int         // slot map -> size -> bases of free blocks
	next   map[string]int
}

type slotBlock struct {
	base, size int
}

// NewSlotAllocator returns an empty allocator.
func NewSlotAllocator() *SlotAllocator {
	return &SlotAllocator{blocks: map[string]map[string]*slotBlock{}, free: map[string]map[int][]int{}, next: map[string]int{}}
}

// release frees owner's block in slot map m.
func (a *SlotAllocator) release(m, owner string) {
	if b, ok := a.blocks[m][owner]; ok {
		delete(a.blocks[m], owner)
		a.putFree(m, *b)
	}
}

func (a *SlotAllocator) putFree(m string, b slotBlock) {
	if a.free[m] == nil {
		a.free[m] = map[int][]int{}
	}
	a.free[m][b.size] = append(a.free[m][b.size], b.base)
}

// get returns owner's block in slot map m, with room for n.
func (a *SlotAllocator) get(m, owner string, n int) *slotBlock {
	if a.blocks[m] == nil {
		a.blocks[m] = map[string]*slotBlock{}
	}
	if b, ok := a.blocks[m][owner]; ok {
		if b.size >= n {
			return b
		}
		a.putFree(m, *b)
	}
	size := 4
	for size < n {
		size *= 2
	}
	b := slotBlock{size: size}
	if free := a.free[m][size]; len(free) > 0 {
		b.base = free[len(free)-1]
		a.free[m][size] = free[:len(free)-1]
	} else {
		b.base = a.next[m]
		a.next[m] += size
	}
	a.blocks[m][owner] = &b
	return &b
}
