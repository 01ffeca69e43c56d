package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// ExhaustedError says that a range set has no free address.
type ExhaustedError struct {
	Set   int
	Range string
	InUse int
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("no free address in range set %d (%s): %d addresses in use", e.Set, e.Range, e.InUse)
}

// DuplicateError says that the owner already holds addresses.
type DuplicateError struct {
	Owner Owner
	IPs   []netip.Addr
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("container %q interface %q already holds %v; DEL it first", e.Owner.ContainerID, e.Owner.IfName, e.IPs)
}

// Allocation is one address handed out, with the range it came from.
type Allocation struct {
	IP    netip.Addr
	Set   int
	Range *Range
}

// Allocator hands out addresses from range sets over a Store.
type Allocator struct {
	// set at construction, read-only
	store   Store
	sets    []RangeSet
	exclude []netip.Prefix
}

// NewAllocator returns an allocator. The sets must have been validated
// (RangeSet.Validate); exclude lists prefixes never to hand out.
func NewAllocator(store Store, sets []RangeSet, exclude []netip.Prefix) *Allocator {
	return &Allocator{store: store, sets: sets, exclude: exclude}
}

func (a *Allocator) excluded(ip netip.Addr) bool {
	for _, p := range a.exclude {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// locked runs fn with the store's lock held.
func (a *Allocator) locked(fn func() error) (err error) {
	if err := a.store.Lock(); err != nil {
		return fmt.Errorf("ipam: lock store: %w", err)
	}
	defer func() {
		if uerr := a.store.Unlock(); uerr != nil {
			err = errors.Join(err, fmt.Errorf("ipam: unlock store: %w", uerr))
		}
	}()
	return fn()
}

// Allocate reserves one address from every range set for owner. It is all or
// nothing: on any error no reservation made by this call remains.
func (a *Allocator) Allocate(owner Owner) ([]Allocation, error) {
	var out []Allocation
	err := a.locked(func() error {
		list, err := a.store.List()
		if err != nil {
			return fmt.Errorf("ipam: list reservations: %w", err)
		}
		used := make(map[netip.Addr]bool, len(list))
		var mine []netip.Addr
		for _, r := range list {
			used[r.IP] = true
			if r.Owner == owner {
				mine = append(mine, r.IP)
			}
		}
		if len(mine) > 0 {
			slices.SortFunc(mine, netip.Addr.Compare)
			return &DuplicateError{Owner: owner, IPs: mine}
		}
		var lastBefore []netip.Addr
		for i, set := range a.sets {
			prev, _ := a.store.LastReserved(i)
			lastBefore = append(lastBefore, prev)
			al, err := a.allocateFrom(i, set, owner, used)
			if err != nil {
				// All or nothing: give back the addresses and the
				// round-robin positions of the sets already served.
				for _, done := range out {
					err = errors.Join(err, a.store.Release(done.IP))
					if lastBefore[done.Set].IsValid() {
						err = errors.Join(err, a.store.SetLastReserved(done.Set, lastBefore[done.Set]))
					}
				}
				out = nil
				return err
			}
			out = append(out, al)
		}
		return nil
	})
	return out, err
}

func (a *Allocator) allocateFrom(i int, set RangeSet, owner Owner, used map[netip.Addr]bool) (Allocation, error) {
	last, err := a.store.LastReserved(i)
	if err != nil {
		return Allocation{}, fmt.Errorf("ipam: read last reserved address of set %d: %w", i, err)
	}
	for ri, ip := range set.candidates(last) {
		if used[ip] || a.excluded(ip) {
			continue
		}
		ok, err := a.store.Reserve(ip, owner)
		if err != nil {
			return Allocation{}, fmt.Errorf("ipam: reserve %s: %w", ip, err)
		}
		if !ok {
			continue
		}
		if err := a.store.SetLastReserved(i, ip); err != nil {
			return Allocation{}, errors.Join(fmt.Errorf("ipam: record last reserved address: %w", err), a.store.Release(ip))
		}
		return Allocation{IP: ip, Set: i, Range: &set[ri]}, nil
	}
	return Allocation{}, &ExhaustedError{Set: i, Range: describe(set), InUse: countIn(set, used)}
}

func describe(set RangeSet) string {
	s := ""
	for i := range set {
		if i > 0 {
			s += ", "
		}
		s += set[i].String()
	}
	return s
}

// Owned returns the addresses owner holds, sorted.
func (a *Allocator) Owned(owner Owner) ([]netip.Addr, error) {
	var out []netip.Addr
	err := a.locked(func() error {
		list, err := a.store.List()
		if err != nil {
			return err
		}
		for _, r := range list {
			if r.Owner == owner {
				out = append(out, r.IP)
			}
		}
		return nil
	})
	slices.SortFunc(out, netip.Addr.Compare)
	return out, err
}

// Release frees every address owner holds and returns them. Releasing an
// owner with no address is not an error.
func (a *Allocator) Release(owner Owner) ([]netip.Addr, error) {
	released, err := a.releaseWhere(func(r Reservation) bool { return r.Owner == owner })
	out := make([]netip.Addr, len(released))
	for i, r := range released {
		out[i] = r.IP
	}
	return out, err
}

// GC frees every reservation whose owner is not in valid and returns what it
// freed.
func (a *Allocator) GC(valid []Owner) ([]Reservation, error) {
	keep := make(map[Owner]bool, len(valid))
	for _, o := range valid {
		keep[o] = true
	}
	return a.releaseWhere(func(r Reservation) bool { return !keep[r.Owner] })
}

// releaseWhere frees, under the lock, every reservation drop selects and
// returns them sorted by address; it keeps going past errors and joins them.
func (a *Allocator) releaseWhere(drop func(Reservation) bool) ([]Reservation, error) {
	var out []Reservation
	err := a.locked(func() error {
		list, err := a.store.List()
		if err != nil {
			return fmt.Errorf("ipam: list reservations: %w", err)
		}
		var errs []error
		for _, r := range list {
			if !drop(r) {
				continue
			}
			if err := a.store.Release(r.IP); err != nil {
				errs = append(errs, fmt.Errorf("ipam: release %s: %w", r.IP, err))
				continue
			}
			out = append(out, r)
		}
		return errors.Join(errs...)
	})
	slices.SortFunc(out, func(x, y Reservation) int { return x.IP.Compare(y.IP) })
	return out, err
}

// CheckFree returns an ExhaustedError for the first range set with no free
// address, or nil when every set could serve one more pod.
func (a *Allocator) CheckFree() error {
	return a.locked(func() error {
		list, err := a.store.List()
		if err != nil {
			return fmt.Errorf("ipam: list reservations: %w", err)
		}
		used := make(map[netip.Addr]bool, len(list))
		for _, r := range list {
			used[r.IP] = true
		}
		for i, set := range a.sets {
			free := false
			for _, ip := range set.candidates(netip.Addr{}) {
				if !used[ip] && !a.excluded(ip) {
					free = true
					break
				}
			}
			if !free {
				return &ExhaustedError{Set: i, Range: describe(set), InUse: countIn(set, used)}
			}
		}
		return nil
	})
}

// countIn counts the used addresses that lie in set.
func countIn(set RangeSet, used map[netip.Addr]bool) int {
	n := 0
	for ip := range used {
		if set.Contains(ip) {
			n++
		}
	}
	return n
}
