package proxy

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
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
	// byPtr finds the fragment of an unchanged Service port by pointer.
	byPtr map[*ServicePort]*fragment
	// gen counts builds; a fragment carries the gen of the last build
	// that wanted it.
	gen uint64
	// changes are the fragments the last build replaced, added (old nil)
	// or removed (cur nil).
	changes []fragChange
	// refs counts, per element of a set that fragments may share (an
	// endpoint in two Services puts one hairpin element in both), the
	// fragments that hold it. Endpoint slots are never shared (each block
	// has one owner) and are not counted. It belongs to the syncer's
	// running state: emitDiff updates it, emitFull rebuilds it.
	refs map[string]int32 // set + "\x00" + key
}

// shared says whether more than one fragment may hold the same element of
// set.
func shared(set string) bool { return !strings.HasPrefix(set, "endpoint-slots-") }

type fragChange struct{ old, cur *fragment }

// fragment is what one Service port (or the node) puts in the table.
type fragment struct {
	// sp is the Service port the fragment was rendered from: a caller
	// that passes the same pointer again promises it did not change, and
	// the fragment is reused without computing its fingerprint.
	sp           *ServicePort
	gen          uint64
	fp           string
	chains       map[string]*chainState
	elements     []setElement
	affinitySets map[string]*knftables.Set
	slotUses     []slotUse
}

type slotUse struct {
	slotMap, owner string
	n, base        int
	blk            *slotBlock // the allocator's block, to mark it in use cheaply
}

type chainState struct {
	comment string
	rules   []string
}

// element is kept compact: key and value joined with " . " (no part of a
// key or value contains it), split again only when written.
type element struct {
	key, value string
	isMap      bool
}

type setElement struct {
	set string
	element
}

func (e setElement) id() string { return e.set + "\x00" + e.key }

func (e element) object(set string) *knftables.Element {
	if e.isMap {
		return &knftables.Element{Map: set, Key: strings.Split(e.key, " . "), Value: strings.Split(e.value, " . ")}
	}
	return &knftables.Element{Set: set, Key: strings.Split(e.key, " . ")}
}

func newFragment(fp string) *fragment {
	return &fragment{fp: fp, chains: map[string]*chainState{}, affinitySets: map[string]*knftables.Set{}}
}

// elem records an element of a set (value nil) or a map.
func (f *fragment) elem(set string, key, value []string) {
	f.elements = append(f.elements, setElement{set, element{key: strings.Join(key, " . "), value: strings.Join(value, " . "), isMap: value != nil}})
}

// chain records a Service chain (its rules follow with rule).
func (f *fragment) chain(name, comment string) {
	f.chains[name] = &chainState{comment: comment}
}

func (f *fragment) rule(chain, rule string) {
	f.chains[chain].rules = append(f.chains[chain].rules, rule)
}

// Counts returns how many Service chains and distinct elements the state
// holds.
func (s *State) Counts() (chains, elements int) {
	seen := map[string]bool{}
	for _, f := range s.frags {
		chains += len(f.chains)
		for _, e := range f.elements {
			seen[e.id()] = true
		}
	}
	return chains, len(seen)
}

// all merges the fragments: chains, elements and affinity sets of the whole
// table, and fresh reference counts.
func (s *State) all() (map[string]*chainState, map[string]map[string]element, map[string]*knftables.Set) {
	chains := map[string]*chainState{}
	elements := map[string]map[string]element{}
	sets := map[string]*knftables.Set{}
	s.refs = map[string]int32{}
	for _, f := range s.frags {
		for n, c := range f.chains {
			chains[n] = c
		}
		for n, st := range f.affinitySets {
			sets[n] = st
		}
		for _, e := range f.elements {
			if elements[e.set] == nil {
				elements[e.set] = map[string]element{}
			}
			elements[e.set][e.key] = e.element
			if shared(e.set) {
				s.refs[e.id()]++
			}
		}
	}
	return chains, elements, sets
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

// ElementChange is one element added to or removed from a set or map.
type ElementChange struct {
	Set string
	element
}

// Key returns the element's key fields.
func (c ElementChange) Key() []string { return strings.Split(c.key, " . ") }

// Value returns a map element's value fields (nil for a set element).
func (c ElementChange) Value() []string {
	if !c.isMap {
		return nil
	}
	return strings.Split(c.value, " . ")
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
	removed, added           []ElementChange
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
			if r == nc.old.rules[i] {
				continue
			}
			p, ok := parseSlotPick(r)
			if _, wasPick := parseSlotPick(nc.old.rules[i]); !ok || !wasPick {
				return nil, false
			}
			p.Chain, p.Index = nc.name, i
			picks = append(picks, p)
		}
	}
	return picks, true
}

// SlotPick is the rule that picks one of a Service's endpoint slots:
// "ct mark set numgen random mod N offset BASE goto TARGET", the Index-th
// rule of Chain.
type SlotPick struct {
	Chain   string
	Index   int
	N, Base uint32
	Target  string
}

func (p SlotPick) rule() string {
	return fmt.Sprintf("ct mark set numgen random mod %d offset %#x goto %s", p.N, p.Base, p.Target)
}

var reSlotPickRule = regexp.MustCompile(`^ct mark set numgen random mod (\d+) offset (0x[0-9a-f]+) goto (\S+)$`)

func parseSlotPick(rule string) (SlotPick, bool) {
	m := reSlotPickRule.FindStringSubmatch(rule)
	if m == nil {
		return SlotPick{}, false
	}
	n, err1 := strconv.ParseUint(m[1], 10, 32)
	base, err2 := strconv.ParseUint(m[2], 0, 32)
	if err1 != nil || err2 != nil || n == 0 {
		return SlotPick{}, false
	}
	return SlotPick{N: uint32(n), Base: uint32(base), Target: m[3]}, true
}

// diffStates compares only the fragments that changed: cur was built from
// old by BuildWith (usually in place, so old == cur) and lists them. It
// moves old's reference counts into cur.
func diffStates(old, cur *State) *diff {
	refs := old.refs
	cur.refs = refs
	d := &diff{}
	empty := newFragment("")
	diffFragment := func(o, n *fragment) {
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
		for name, c := range n.chains {
			if oc := o.chains[name]; oc == nil {
				d.newChains = append(d.newChains, namedChain{name: name, c: c})
			} else if !slices.Equal(oc.rules, c.rules) {
				d.changedChains = append(d.changedChains, namedChain{name: name, c: c, old: oc})
			}
		}
		for name := range o.chains {
			if n.chains[name] == nil {
				d.goneChains = append(d.goneChains, name)
			}
		}
		index := func(es []setElement) map[string]element {
			m := make(map[string]element, len(es))
			for _, e := range es {
				m[e.id()] = e.element
			}
			return m
		}
		oi, ni := index(o.elements), index(n.elements)
		for _, e := range o.elements {
			if ne, ok := ni[e.id()]; ok && ne.value == e.value {
				continue
			}
			if !shared(e.set) {
				d.removed = append(d.removed, ElementChange{e.set, e.element})
				continue
			}
			id := e.id()
			n, ok := refs[id]
			if !ok {
				continue
			}
			if n <= 1 {
				delete(refs, id)
				d.removed = append(d.removed, ElementChange{e.set, e.element})
			} else {
				refs[id] = n - 1
			}
		}
		for _, e := range n.elements {
			if oe, ok := oi[e.id()]; ok && oe.value == e.value {
				continue
			}
			if !shared(e.set) {
				d.added = append(d.added, ElementChange{e.set, e.element})
				continue
			}
			id := e.id()
			refs[id]++
			if refs[id] == 1 {
				d.added = append(d.added, ElementChange{e.set, e.element})
			}
		}
	}
	for _, c := range cur.changes {
		o, n := c.old, c.cur
		if o == nil {
			o = empty
		}
		if n == nil {
			n = empty
		}
		diffFragment(o, n)
	}
	for _, l := range [][]namedChain{d.newChains, d.changedChains} {
		slices.SortFunc(l, func(a, b namedChain) int { return strings.Compare(a.name, b.name) })
	}
	slices.SortFunc(d.newSets, func(a, b *knftables.Set) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(d.goneChains)
	slices.Sort(d.goneSets)
	byKey := func(a, b ElementChange) int {
		if c := strings.Compare(a.Set, b.Set); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	}
	slices.SortFunc(d.removed, byKey)
	slices.SortFunc(d.added, byKey)
	return d
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
	for _, c := range d.removed {
		tx.Delete(c.object(c.Set))
	}
	for _, c := range d.added {
		tx.Add(c.object(c.Set))
	}
	for _, nc := range d.changedChains {
		tx.Flush(&knftables.Chain{Name: nc.name})
	}
	for _, nc := range append(d.newChains, d.changedChains...) {
		for _, r := range nc.c.rules {
			tx.Add(&knftables.Rule{Chain: nc.name, Rule: r})
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
// that are gone return to a free list. One Syncer owns one allocator.
type SlotAllocator struct {
	blocks map[string]map[string]*slotBlock // slot map -> owner -> block
	free   map[string][]slotBlock
	next   map[string]int
	gen    uint64 // counts builds; a block carries the gen of the last build that asked for it
}

type slotBlock struct {
	base, size int
	gen        uint64
}

// NewSlotAllocator returns an empty allocator.
func NewSlotAllocator() *SlotAllocator {
	return &SlotAllocator{blocks: map[string]map[string]*slotBlock{}, free: map[string][]slotBlock{}, next: map[string]int{}}
}

func (a *SlotAllocator) begin() { a.gen++ }

// end frees the blocks of owners the build did not ask for.
func (a *SlotAllocator) end() {
	for m, owners := range a.blocks {
		for owner, b := range owners {
			if b.gen != a.gen {
				delete(owners, owner)
				a.free[m] = append(a.free[m], slotBlock{base: b.base, size: b.size})
			}
		}
	}
}

// keep marks the blocks of an unchanged fragment in use by this build.
func (a *SlotAllocator) keep(uses []slotUse) {
	for _, u := range uses {
		u.blk.gen = a.gen
	}
}

// get returns owner's block in slot map m, with room for n.
func (a *SlotAllocator) get(m, owner string, n int) *slotBlock {
	if a.blocks[m] == nil {
		a.blocks[m] = map[string]*slotBlock{}
	}
	if b, ok := a.blocks[m][owner]; ok {
		if b.size >= n {
			b.gen = a.gen
			return b
		}
		a.free[m] = append(a.free[m], slotBlock{base: b.base, size: b.size})
	}
	size := 4
	for size < n {
		size *= 2
	}
	var b slotBlock
	found := false
	for i, f := range a.free[m] {
		if f.size == size {
			b, found = f, true
			a.free[m] = append(a.free[m][:i], a.free[m][i+1:]...)
			break
		}
	}
	if !found {
		b = slotBlock{base: a.next[m], size: size}
		a.next[m] += size
	}
	b.gen = a.gen
	a.blocks[m][owner] = &b
	return &b
}
