package ipam

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/big"
	"net/netip"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/podnet/podnet/internal/lb/pool"
)

// Pool is what the allocator reads of one LoadBalancerIPPool.
type Pool struct {
	Name       string
	Ranges     []pool.Range
	AutoAssign bool
	// Services and Namespaces select who may use the pool; nil: anyone.
	Services, Namespaces labels.Selector
}

// Reason says why a Service is pending.
type Reason string

// Why a Service gets no address.
const (
	ReasonExhausted        Reason = "PoolExhausted"
	ReasonRequestedTaken   Reason = "RequestedIPTaken"
	ReasonRequestedOutside Reason = "RequestedIPOutsidePools"
	ReasonNoPool           Reason = "NoEligiblePool"
	ReasonInvalid          Reason = "InvalidRequest"
)

// Pending is why a Service got no address.
type Pending struct {
	Reason  Reason
	Message string
}

// Usage is how many of a pool's addresses are held.
type Usage struct{ Used, Free int64 }

// Result is an allocation: every served Service is either Assigned (its
// addresses, in the order of its families) or Pending.
type Result struct {
	Assigned map[string][]netip.Addr
	Pending  map[string]Pending
	Usage    map[string]Usage // by pool name
}

// Allocate assigns addresses to svcs from pools. It is a pure function of
// its input (the order of pools and svcs does not matter) and is stable:
// a Service keeps the addresses in its status while they are still valid
// for it, so running Allocate again on Services whose status holds the
// result gives the same result. That is what makes a restart or a leader
// change safe: the allocation is rebuilt from the Services' status before
// anything new is handed out. Three passes, each over Services oldest
// first: keep current addresses, claim requested ones, then fill the rest
// from the pools (lowest free address of the first pool by name).
//
// A Service that requires every family and misses one holds nothing; when
// it had to give addresses back, Allocate runs again with it left out from
// the start, so that older Services refused before it gave them back get
// them (each round leaves out at least one more Service).
func Allocate(pools []Pool, svcs []Service) Result {
	doomed := map[string]Pending{}
	for {
		a := newAllocation(pools, svcs)
		a.doomed = doomed
		for _, s := range a.svcs {
			a.keep(s)
		}
		for _, s := range a.svcs {
			a.claimRequested(s)
		}
		for _, s := range a.svcs {
			a.fill(s)
		}
		r := a.result()
		if len(a.gaveBack) == 0 {
			return r
		}
		for _, k := range a.gaveBack {
			doomed[k] = r.Pending[k]
		}
	}
}

// holder is who holds one address: one Service, or Services of one
// sharing key with disjoint ports.
type holder struct {
	sharingKey string
	services   []string
	ports      map[Port]string // the Service that uses it
}

// allocation is the state of one Allocate call.
type allocation struct {
	pools   []Pool     // by name
	svcs    []*Service // oldest first
	held    map[netip.Addr]*holder
	got     map[string][]netip.Addr
	pending map[string]Pending
	// doomed are left out (pending) from the start; gaveBack are the
	// Services that gave addresses back in this round.
	doomed   map[string]Pending
	gaveBack []string
}

func newAllocation(pools []Pool, svcs []Service) *allocation {
	a := &allocation{pools: slices.Clone(pools), held: map[netip.Addr]*holder{},
		got: map[string][]netip.Addr{}, pending: map[string]Pending{}}
	slices.SortFunc(a.pools, func(x, y Pool) int { return strings.Compare(x.Name, y.Name) })
	for i := range svcs {
		a.svcs = append(a.svcs, &svcs[i])
	}
	slices.SortFunc(a.svcs, func(x, y *Service) int {
		return cmp.Or(x.Created.Compare(y.Created), strings.Compare(x.Key, y.Key))
	})
	return a
}

// mayUse reports whether s may take addresses of p; requested is true for
// an address s asked for (any pool that selects s), false for one handed
// out (only auto-assigning pools, or the pools s names).
func (a *allocation) mayUse(p *Pool, s *Service, requested bool) bool {
	if p.Services != nil && !p.Services.Matches(labels.Set(s.Labels)) {
		return false
	}
	if p.Namespaces != nil && !p.Namespaces.Matches(labels.Set(s.NamespaceLabels)) {
		return false
	}
	if len(s.Pools) > 0 {
		return slices.Contains(s.Pools, p.Name)
	}
	return requested || p.AutoAssign
}

// poolOf returns the first pool s may use that holds addr, or nil.
func (a *allocation) poolOf(addr netip.Addr, s *Service, requested bool) *Pool {
	for i := range a.pools {
		p := &a.pools[i]
		if a.mayUse(p, s, requested) && slices.ContainsFunc(p.Ranges, func(r pool.Range) bool { return r.Contains(addr) }) {
			return p
		}
	}
	return nil
}

// free reports whether s may hold addr now, and who holds it otherwise.
func (a *allocation) free(addr netip.Addr, s *Service) (bool, string) {
	h := a.held[addr]
	if h == nil {
		return true, ""
	}
	if h.sharingKey == "" || h.sharingKey != s.SharingKey || slices.Contains(h.services, s.Key) {
		return false, strings.Join(h.services, ", ")
	}
	for _, p := range s.Ports {
		if _, used := h.ports[p]; used {
			return false, fmt.Sprintf("%s (port %d/%s is already used on it)", strings.Join(h.services, ", "), p.Port, p.Protocol)
		}
	}
	return true, ""
}

func (a *allocation) claim(addr netip.Addr, s *Service) {
	h := a.held[addr]
	if h == nil {
		h = &holder{sharingKey: s.SharingKey, ports: map[Port]string{}}
		a.held[addr] = h
	}
	h.services = append(h.services, s.Key)
	for _, p := range s.Ports {
		h.ports[p] = s.Key
	}
	a.got[s.Key] = append(a.got[s.Key], addr)
}

// has returns s's address of family f, if it has one yet.
func (a *allocation) has(s *Service, f v1.IPFamily) bool {
	return slices.ContainsFunc(a.got[s.Key], func(x netip.Addr) bool { return family(x) == f })
}

// request returns s's requested address of family f.
func request(s *Service, f v1.IPFamily) (netip.Addr, bool) {
	i := slices.IndexFunc(s.Requested, func(x netip.Addr) bool { return family(x) == f })
	if i < 0 {
		return netip.Addr{}, false
	}
	return s.Requested[i], true
}

// keep keeps each address of s's status that is still valid for it.
func (a *allocation) keep(s *Service) {
	if s.Invalid != "" || a.isDoomed(s) {
		return
	}
	for _, addr := range s.Current {
		f := family(addr)
		if !slices.Contains(s.Families, f) || a.has(s, f) {
			continue
		}
		req, requested := request(s, f)
		if requested && req != addr {
			continue
		}
		if a.poolOf(addr, s, requested) == nil {
			continue
		}
		if ok, _ := a.free(addr, s); ok {
			a.claim(addr, s)
		}
	}
}

// claimRequested claims the requested addresses s does not hold yet.
func (a *allocation) claimRequested(s *Service) {
	if s.Invalid != "" {
		a.pend(s, ReasonInvalid, s.Invalid)
		return
	}
	if p, ok := a.doomed[s.Key]; ok {
		a.pend(s, p.Reason, p.Message)
		return
	}
	for _, addr := range s.Requested {
		if a.has(s, family(addr)) {
			continue
		}
		if a.poolOf(addr, s, true) == nil {
			a.pend(s, ReasonRequestedOutside, fmt.Sprintf("requested %s is in no pool this Service may use", addr))
			continue
		}
		if ok, by := a.free(addr, s); !ok {
			a.pend(s, ReasonRequestedTaken, fmt.Sprintf("requested %s is held by %s", addr, by))
			continue
		}
		a.claim(addr, s)
	}
}

// pend records the first reason s misses an address.
func (a *allocation) pend(s *Service, r Reason, msg string) {
	if _, ok := a.pending[s.Key]; !ok {
		a.pending[s.Key] = Pending{Reason: r, Message: msg}
	}
}

// fill hands s an address of each family it still misses and did not
// request. A Service that requires every family and misses one gives back
// what it holds at once, so that newer Services can have it.
func (a *allocation) fill(s *Service) {
	if s.Invalid != "" || a.isDoomed(s) {
		return
	}
	defer func() {
		if _, pending := a.pending[s.Key]; pending && s.RequireAll {
			a.release(s, a.got[s.Key])
			a.got[s.Key] = nil
		}
	}()
	for _, f := range s.Families {
		if _, requested := request(s, f); requested || a.has(s, f) {
			continue
		}
		if s.SharingKey != "" && a.share(s, f) {
			continue
		}
		eligible := false
		for i := range a.pools {
			p := &a.pools[i]
			if !a.mayUse(p, s, false) {
				continue
			}
			if addr, ok := a.lowestFree(p, f); ok {
				a.claim(addr, s)
				break
			}
			eligible = eligible || slices.ContainsFunc(p.Ranges, func(r pool.Range) bool { return family(r.First) == f })
		}
		switch {
		case a.has(s, f):
		case eligible:
			a.pend(s, ReasonExhausted, fmt.Sprintf("no free %s address in the pools this Service may use", f))
		default:
			a.pend(s, ReasonNoPool, fmt.Sprintf("no pool with %s addresses serves this Service", f))
		}
	}
}

// share claims for s an address of family f already held under its
// sharing key, when one is free for it; the lowest such address wins.
func (a *allocation) share(s *Service, f v1.IPFamily) bool {
	var cands []netip.Addr
	for addr, h := range a.held {
		if h.sharingKey == s.SharingKey && family(addr) == f {
			cands = append(cands, addr)
		}
	}
	slices.SortFunc(cands, netip.Addr.Compare)
	for _, addr := range cands {
		if ok, _ := a.free(addr, s); ok && a.poolOf(addr, s, false) != nil {
			a.claim(addr, s)
			return true
		}
	}
	return false
}

// lowestFree returns p's lowest address of family f that nobody holds.
func (a *allocation) lowestFree(p *Pool, f v1.IPFamily) (netip.Addr, bool) {
	for _, r := range p.Ranges {
		if family(r.First) != f {
			continue
		}
		for addr := r.First; addr.IsValid() && addr.Compare(r.Last) <= 0; addr = addr.Next() {
			if a.held[addr] == nil {
				return addr, true
			}
		}
	}
	return netip.Addr{}, false
}

// result settles each Service (a Service that requires every family and
// misses one holds none) and counts the pools' usage.
func (a *allocation) result() Result {
	r := Result{Assigned: map[string][]netip.Addr{}, Pending: map[string]Pending{}, Usage: map[string]Usage{}}
	for _, s := range a.svcs {
		got := a.got[s.Key]
		missing := len(got) < len(s.Families)
		if len(got) == 0 || (missing && s.RequireAll) {
			p, ok := a.pending[s.Key]
			if !ok {
				p = Pending{Reason: ReasonExhausted, Message: "no address"}
			}
			r.Pending[s.Key] = p
			a.release(s, got)
			continue
		}
		slices.SortFunc(got, func(x, y netip.Addr) int {
			return slices.Index(s.Families, family(x)) - slices.Index(s.Families, family(y))
		})
		r.Assigned[s.Key] = got
	}
	for _, p := range a.pools {
		r.Usage[p.Name] = a.usage(p)
	}
	return r
}

// isDoomed reports whether s is left out from the start.
func (a *allocation) isDoomed(s *Service) bool {
	_, ok := a.doomed[s.Key]
	return ok
}

// release gives back s's addresses.
func (a *allocation) release(s *Service, got []netip.Addr) {
	if len(got) > 0 {
		a.gaveBack = append(a.gaveBack, s.Key)
	}
	for _, addr := range got {
		h := a.held[addr]
		h.services = slices.DeleteFunc(h.services, func(k string) bool { return k == s.Key })
		maps.DeleteFunc(h.ports, func(_ Port, k string) bool { return k == s.Key })
		if len(h.services) == 0 {
			delete(a.held, addr)
		}
	}
}

// usage counts p's held and free addresses (free saturates at MaxInt64).
func (a *allocation) usage(p Pool) Usage {
	var u Usage
	size := new(big.Int)
	for _, r := range p.Ranges {
		size.Add(size, r.Size())
	}
	for addr := range a.held {
		if slices.ContainsFunc(p.Ranges, func(r pool.Range) bool { return r.Contains(addr) }) {
			u.Used++
		}
	}
	free := size.Sub(size, big.NewInt(u.Used))
	if free.IsInt64() {
		u.Free = free.Int64()
	} else {
		u.Free = math.MaxInt64
	}
	return u
}
