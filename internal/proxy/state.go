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
	for _, name := range sortedKeys(cur.affinitySets) {
		if old.affinitySets[name] == nil {
			tx.Add(cur.affinitySets[name])
		}
	}
	for _, name := range sortedKeys(cur.chains) {
		if old.chains[name] == nil {
			tx.Add(&knftables.Chain{Name: name, Comment: knftables.PtrTo(cur.chains[name].comment)})
		}
	}
	for _, set := range sortedKeys(old.elements) {
		for _, k := range sortedKeys(old.elements[set]) {
			e := old.elements[set][k]
			if n, ok := cur.elements[set][k]; !ok || !slices.Equal(n.value, e.value) {
				tx.Delete(e.object(set))
			}
		}
	}
	for _, set := range sortedKeys(cur.elements) {
		for _, k := range sortedKeys(cur.elements[set]) {
			e := cur.elements[set][k]
			if o, ok := old.elements[set][k]; !ok || !slices.Equal(o.value, e.value) {
				tx.Add(e.object(set))
			}
		}
	}
	for _, name := range sortedKeys(cur.chains) {
		c, o := cur.chains[name], old.chains[name]
		if o != nil && slices.Equal(o.rules, c.rules) {
			continue
		}
		if o != nil {
			tx.Flush(&knftables.Chain{Name: name})
		}
		for _, r := range c.rules {
			tx.Add(&knftables.Rule{Chain: name, Rule: r})
		}
	}
	var gone []string
	for _, name := range sortedKeys(old.chains) {
		if cur.chains[name] == nil {
			gone = append(gone, name)
			tx.Flush(&knftables.Chain{Name: name})
		}
	}
	for _, name := range gone {
		tx.Delete(&knftables.Chain{Name: name})
	}
	for _, name := range sortedKeys(old.affinitySets) {
		if cur.affinitySets[name] == nil {
			tx.Delete(&knftables.Set{Name: name})
		}
	}
}
