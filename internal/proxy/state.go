package proxy

import (
	"slices"
	"strings"

	"sigs.k8s.io/knftables"
)

// State is the desired dynamic content of the proxy's table: what Build
// computes and what the syncer remembers between syncs, so that a sync can
// write only the difference.
type State struct {
	chains       map[string]*chainState
	elements     map[string]map[string]element // set or map -> key -> element
	affinitySets map[string]*knftables.Set
}

type chainState struct {
	comment string
	rules   []string
}

type element struct {
	key, value []string
	isMap      bool
}

func (e element) object(set string) *knftables.Element {
	if e.isMap {
		return &knftables.Element{Map: set, Key: e.key, Value: e.value}
	}
	return &knftables.Element{Set: set, Key: e.key}
}

func newState() *State {
	return &State{chains: map[string]*chainState{}, elements: map[string]map[string]element{}, affinitySets: map[string]*knftables.Set{}}
}

// elem records an element of a set (value nil) or a map.
func (s *State) elem(set string, key, value []string) {
	if s.elements[set] == nil {
		s.elements[set] = map[string]element{}
	}
	s.elements[set][strings.Join(key, " . ")] = element{key: key, value: value, isMap: value != nil}
}

// chain records a Service chain (its rules follow with rule).
func (s *State) chain(name, comment string) {
	s.chains[name] = &chainState{comment: comment}
}

func (s *State) rule(chain, rule string) {
	s.chains[chain].rules = append(s.chains[chain].rules, rule)
}

// Counts returns how many chains and elements the state holds.
func (s *State) Counts() (chains, elements int) {
	for _, m := range s.elements {
		elements += len(m)
	}
	return len(s.chains), elements
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// emitDiff writes into tx what turns the table from old into cur, in an
// order the kernel accepts: new chains and sets first (so elements and rules
// may refer to them), then element removals, element additions, the rules
// of new and changed chains, and last the removal of chains and sets
// nothing refers to any more.
func emitDiff(tx *knftables.Transaction, old, cur *State) {
	type change struct {
		set string
		e   element
	}
	sortChanges := func(cs []change) {
		slices.SortFunc(cs, func(a, b change) int {
			if c := strings.Compare(a.set, b.set); c != 0 {
				return c
			}
			return strings.Compare(strings.Join(a.e.key, " . "), strings.Join(b.e.key, " . "))
		})
	}
	var newSets, newChains, changedChains, goneChains, goneSets []string
	for name := range cur.affinitySets {
		if old.affinitySets[name] == nil {
			newSets = append(newSets, name)
		}
	}
	for name, c := range cur.chains {
		if o := old.chains[name]; o == nil {
			newChains = append(newChains, name)
		} else if !slices.Equal(o.rules, c.rules) {
			changedChains = append(changedChains, name)
		}
	}
	for name := range old.chains {
		if cur.chains[name] == nil {
			goneChains = append(goneChains, name)
		}
	}
	for name := range old.affinitySets {
		if cur.affinitySets[name] == nil {
			goneSets = append(goneSets, name)
		}
	}
	var removed, added []change
	for set, elems := range old.elements {
		for k, e := range elems {
			if n, ok := cur.elements[set][k]; !ok || !slices.Equal(n.value, e.value) {
				removed = append(removed, change{set, e})
			}
		}
	}
	for set, elems := range cur.elements {
		for k, e := range elems {
			if o, ok := old.elements[set][k]; !ok || !slices.Equal(o.value, e.value) {
				added = append(added, change{set, e})
			}
		}
	}
	for _, l := range [][]string{newSets, newChains, changedChains, goneChains, goneSets} {
		slices.Sort(l)
	}
	sortChanges(removed)
	sortChanges(added)

	for _, name := range newSets {
		tx.Add(cur.affinitySets[name])
	}
	for _, name := range newChains {
		tx.Add(&knftables.Chain{Name: name, Comment: knftables.PtrTo(cur.chains[name].comment)})
	}
	for _, c := range removed {
		tx.Delete(c.e.object(c.set))
	}
	for _, c := range added {
		tx.Add(c.e.object(c.set))
	}
	for _, name := range changedChains {
		tx.Flush(&knftables.Chain{Name: name})
	}
	for _, name := range append(newChains, changedChains...) {
		for _, r := range cur.chains[name].rules {
			tx.Add(&knftables.Rule{Chain: name, Rule: r})
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
