package proxy

import (
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
	// refs counts, per element, the fragments that hold it (an endpoint
	// in two Services puts one hairpin element in both). It belongs to the
	// syncer's running state: emitDiff updates it, emitFull rebuilds it.
	refs map[string]*elementRef // set + "\x00" + key
}

type elementRef struct {
	n   int
	set string
	e   element
}

// fragment is what one Service port (or the node) puts in the table.
type fragment struct {
	// sp is the Service port the fragment was rendered from: a caller
	// that passes the same pointer again promises it did not change, and
	// the fragment is reused without computing its fingerprint.
	sp           *ServicePort
	fp           string
	chains       map[string]*chainState
	elements     []setElement
	affinitySets map[string]*knftables.Set
	slotUses     []slotUse
}

type slotUse struct {
	slotMap, owner string
	n, base        int
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
	s.refs = map[string]*elementRef{}
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
			if r := s.refs[e.id()]; r != nil {
				r.n++
			} else {
				s.refs[e.id()] = &elementRef{n: 1, set: e.set, e: e.element}
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

// emitDiff writes into tx what turns the table from old into cur, looking
// only at fragments that changed, in an order the kernel accepts: new chains
// and sets first (so elements and rules may refer to them), then element
// removals, element additions, the rules of new and changed chains, and last
// the removal of chains and sets nothing refers to any more. It moves old's
// reference counts into cur.
func emitDiff(tx *knftables.Transaction, old, cur *State) {
	refs := old.refs
	cur.refs = refs
	type change struct {
		set string
		e   element
	}
	type namedChain struct {
		name string
		c    *chainState
	}
	var newChains, changedChains []namedChain
	var newSets []*knftables.Set
	var goneChains, goneSets []string
	var removed, added []change
	empty := newFragment("")
	diffFragment := func(o, n *fragment) {
		for name, st := range n.affinitySets {
			if o.affinitySets[name] == nil {
				newSets = append(newSets, st)
			}
		}
		for name := range o.affinitySets {
			if n.affinitySets[name] == nil {
				goneSets = append(goneSets, name)
			}
		}
		for name, c := range n.chains {
			if oc := o.chains[name]; oc == nil {
				newChains = append(newChains, namedChain{name, c})
			} else if !slices.Equal(oc.rules, c.rules) {
				changedChains = append(changedChains, namedChain{name, c})
			}
		}
		for name := range o.chains {
			if n.chains[name] == nil {
				goneChains = append(goneChains, name)
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
			r := refs[e.id()]
			if r == nil {
				continue
			}
			if r.n--; r.n == 0 {
				delete(refs, e.id())
				removed = append(removed, change{e.set, e.element})
			}
		}
		for _, e := range n.elements {
			if oe, ok := oi[e.id()]; ok && oe.value == e.value {
				continue
			}
			if r := refs[e.id()]; r != nil {
				r.n++
				continue
			}
			refs[e.id()] = &elementRef{n: 1, set: e.set, e: e.element}
			added = append(added, change{e.set, e.element})
		}
	}
	for key, n := range cur.frags {
		o := old.frags[key]
		if o == n {
			continue // reused as it was
		}
		if o == nil {
			o = empty
		}
		diffFragment(o, n)
	}
	for key, o := range old.frags {
		if cur.frags[key] == nil {
			diffFragment(o, empty)
		}
	}
	// An element removed by one fragment and added by another in the
	// same sync (a value change, or moving between Services) is written
	// as a delete then an add.
	for _, l := range [][]namedChain{newChains, changedChains} {
		slices.SortFunc(l, func(a, b namedChain) int { return strings.Compare(a.name, b.name) })
	}
	slices.SortFunc(newSets, func(a, b *knftables.Set) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(goneChains)
	slices.Sort(goneSets)
	byKey := func(a, b change) int {
		if c := strings.Compare(a.set, b.set); c != 0 {
			return c
		}
		return strings.Compare(a.e.key, b.e.key)
	}
	slices.SortFunc(removed, byKey)
	slices.SortFunc(added, byKey)

	for _, st := range newSets {
		tx.Add(st)
	}
	for _, nc := range newChains {
		tx.Add(&knftables.Chain{Name: nc.name, Comment: knftables.PtrTo(nc.c.comment)})
	}
	for _, c := range removed {
		tx.Delete(c.e.object(c.set))
	}
	for _, c := range added {
		tx.Add(c.e.object(c.set))
	}
	for _, nc := range changedChains {
		tx.Flush(&knftables.Chain{Name: nc.name})
	}
	for _, nc := range append(newChains, changedChains...) {
		for _, r := range nc.c.rules {
			tx.Add(&knftables.Rule{Chain: nc.name, Rule: r})
		}
	}
	for _, name := range goneChains {
		tx.Flush(&knftables.Chain{Name: name})
	}
	for _, name := range goneChains {
		tx.Delete(&knftables.Chain{Name: name})
	}
	for _, name := range goneSets {
		tx.Delete(&knftables.Set{Name: name})
	}
}

// SlotAllocator gives each Service port a block of endpoint slots that stays
// where it is across syncs: a block holds a power of two of slots (at least
// 4) and moves only when the endpoints outgrow it. Blocks of Service ports
// that are gone return to a free list. One Syncer owns one allocator.
type SlotAllocator struct {
	blocks  map[string]map[string]slotBlock // slot map -> owner -> block
	free    map[string][]slotBlock
	next    map[string]int
	touched map[string]map[string]bool // owners seen in the current build
}

type slotBlock struct{ base, size int }

// NewSlotAllocator returns an empty allocator.
func NewSlotAllocator() *SlotAllocator {
	return &SlotAllocator{blocks: map[string]map[string]slotBlock{}, free: map[string][]slotBlock{}, next: map[string]int{}}
}

func (a *SlotAllocator) begin() { a.touched = map[string]map[string]bool{} }

// end frees the blocks of owners the build did not ask for.
func (a *SlotAllocator) end() {
	for m, owners := range a.blocks {
		for owner, b := range owners {
			if !a.touched[m][owner] {
				delete(owners, owner)
				a.free[m] = append(a.free[m], b)
			}
		}
	}
	a.touched = nil
}

// get returns the first slot of owner's block in slot map m, with room for n.
func (a *SlotAllocator) get(m, owner string, n int) int {
	if a.touched[m] == nil {
		a.touched[m] = map[string]bool{}
	}
	a.touched[m][owner] = true
	if a.blocks[m] == nil {
		a.blocks[m] = map[string]slotBlock{}
	}
	if b, ok := a.blocks[m][owner]; ok {
		if b.size >= n {
			return b.base
		}
		a.free[m] = append(a.free[m], b)
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
	a.blocks[m][owner] = b
	return b.base
}
