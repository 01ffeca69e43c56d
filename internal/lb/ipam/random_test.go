package ipam

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Random clusters: 1-3 small pools (10.0.0.0/28 and fd00::/124 cut in
// pieces, some without autoAssign, some for team=a only) and up to 16
// Services with random families, requests (in and out of the pools),
// sharing keys, ports and stale statuses, many of them conflicting.

func randomPools(r *rand.Rand) []Pool {
	var pools []Pool
	for i := range 1 + r.IntN(3) {
		p := Pool{Name: fmt.Sprintf("p%d", i), AutoAssign: r.IntN(4) > 0}
		v4 := r.IntN(12)
		p.Ranges = append(p.Ranges, rng(fmt.Sprintf("10.0.0.%d", v4), fmt.Sprintf("10.0.0.%d", v4+r.IntN(4))))
		if r.IntN(2) == 0 {
			v6 := r.IntN(12)
			p.Ranges = append(p.Ranges, rng(fmt.Sprintf("fd00::%x", v6), fmt.Sprintf("fd00::%x", v6+r.IntN(3))))
		}
		if r.IntN(4) == 0 {
			p.Services = labels.SelectorFromSet(labels.Set{"team": "a"})
		}
		pools = append(pools, p)
	}
	return pools
}

func randomAddr(r *rand.Rand, f v1.IPFamily) netip.Addr {
	if f == v1.IPv4Protocol {
		return netip.MustParseAddr(fmt.Sprintf("10.0.0.%d", r.IntN(18)))
	}
	return netip.MustParseAddr(fmt.Sprintf("fd00::%x", r.IntN(18)))
}

func randomService(r *rand.Rand, i int) Service {
	s := Service{Key: fmt.Sprintf("ns/s%02d", i), Created: time.Unix(int64(r.IntN(5)), 0),
		Labels: map[string]string{"team": []string{"a", "b"}[r.IntN(2)]}, RequireAll: true}
	switch r.IntN(4) {
	case 0:
		s.Families = []v1.IPFamily{v1.IPv6Protocol}
	case 1:
		s.Families = []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}
		s.RequireAll = r.IntN(2) == 0
	default:
		s.Families = []v1.IPFamily{v1.IPv4Protocol}
	}
	for _, f := range s.Families {
		if r.IntN(4) == 0 {
			s.Requested = append(s.Requested, randomAddr(r, f))
		}
		if r.IntN(3) == 0 {
			s.Current = append(s.Current, randomAddr(r, f))
		}
	}
	s.SharingKey = []string{"", "", "k1", "k2"}[r.IntN(4)]
	all := []Port{{v1.ProtocolTCP, 80}, {v1.ProtocolUDP, 53}, {v1.ProtocolTCP, 53}, {v1.ProtocolTCP, 443}}
	for _, p := range all {
		if r.IntN(3) == 0 {
			s.Ports = append(s.Ports, p)
		}
	}
	if r.IntN(8) == 0 {
		s.Pools = []string{"p0"}
	}
	return s
}

// TestAllocateRandomClusters checks the allocator's invariants on random
// clusters: nobody shares an address unless allowed, every address is one
// the Service may have, a free request is honoured, a Service pending for
// want of addresses really has none left, the result does not depend on
// the input order, and it is a fixed point (a restart that reads it back
// from the status changes nothing), also when Services come and go.
func TestAllocateRandomClusters(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("PODNET_TEST_SEED"), 10, 64); err == nil {
		seed = s // to repeat a failure
	}
	r := rand.New(rand.NewPCG(seed, 0))
	for run := range 3000 {
		pools := randomPools(r)
		var svcs []Service
		for i := range r.IntN(17) {
			svcs = append(svcs, randomService(r, i))
		}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d run %d: %s\npools %+v\nservices %+v", seed, run, fmt.Sprintf(format, args...), pools, svcs)
		}
		res := Allocate(pools, svcs)
		checkInvariants(pools, svcs, res, fail)
		shuffled := slices.Clone(svcs)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if again := Allocate(pools, shuffled); !reflect.DeepEqual(again, res) {
			fail("another input order gives another result:\n%s\nvs\n%s", render(again), render(res))
		}
		// A pending Service's reason may change once (a request first
		// refused for want of its other family is then held by another).
		// Also a Service refused in the last round may fit on a restart:
		// the rounds only leave Services out, so check it stays assigned.
		restarted := withStatus(svcs, res)
		again := Allocate(pools, restarted)
		for k, had := range res.Assigned {
			if !slices.Equal(again.Assigned[k], had) {
				fail("reading the result back from the status changes %s's addresses:\n%s\nvs\n%s", k, render(again), render(res))
			}
		}
		// Services come and go: those that stay keep their addresses (a
		// PreferDualStack one may gain its missing family).
		next := slices.DeleteFunc(slices.Clone(restarted), func(Service) bool { return r.IntN(4) == 0 })
		for i := range r.IntN(4) {
			s := randomService(r, 100+i) // new: created last, no status yet
			s.Created, s.Current = time.Unix(int64(10+i), 0), nil
			next = append(next, s)
		}
		later := Allocate(pools, next)
		checkInvariants(pools, next, later, fail)
		for _, s := range next {
			if had, ok := res.Assigned[s.Key]; ok && slices.ContainsFunc(had, func(a netip.Addr) bool { return !slices.Contains(later.Assigned[s.Key], a) }) {
				fail("%s had %v and got %v after other Services came and went", s.Key, had, later.Assigned[s.Key])
			}
		}
	}
}

// withStatus returns svcs with the addresses of res in their status.
func withStatus(svcs []Service, res Result) []Service {
	out := slices.Clone(svcs)
	for i := range out {
		out[i].Current = slices.Clone(res.Assigned[out[i].Key])
	}
	return out
}

func checkInvariants(pools []Pool, svcs []Service, res Result, fail func(string, ...any)) {
	a := newAllocation(pools, svcs)
	users := map[netip.Addr][]*Service{}
	for _, s := range a.svcs {
		got, assigned := res.Assigned[s.Key]
		if _, pending := res.Pending[s.Key]; assigned == pending {
			fail("%s is assigned %v and pending %v", s.Key, assigned, pending)
		}
		for _, addr := range got {
			users[addr] = append(users[addr], s)
			req, requested := request(s, family(addr))
			if requested && req != addr {
				fail("%s requested %s and got %s", s.Key, req, addr)
			}
			if !slices.Contains(s.Families, family(addr)) || a.poolOf(addr, s, requested) == nil {
				fail("%s got %s, which it may not have", s.Key, addr)
			}
		}
		if s.RequireAll && assigned && len(got) != len(s.Families) {
			fail("%s requires %v and got %v", s.Key, s.Families, got)
		}
	}
	for addr, us := range users {
		ports := map[Port]bool{}
		for _, u := range us {
			if len(us) > 1 && (u.SharingKey == "" || u.SharingKey != us[0].SharingKey) {
				fail("%s is held by Services that may not share it", addr)
			}
			for _, p := range u.Ports {
				if ports[p] {
					fail("%s is shared by Services that both use %v", addr, p)
				}
				ports[p] = true
			}
		}
	}
	checkRequestsAndExhaustion(a, res, users, fail)
}

// checkRequestsAndExhaustion checks that a request nobody else wants is
// honoured, and that a Service pending for want of addresses has none
// left in a pool it may use.
func checkRequestsAndExhaustion(a *allocation, res Result, users map[netip.Addr][]*Service, fail func(string, ...any)) {
	for _, s := range a.svcs {
		p, pending := res.Pending[s.Key]
		if !pending {
			continue
		}
		for _, req := range s.Requested {
			contested := slices.ContainsFunc(a.svcs, func(o *Service) bool {
				return o != s && (slices.Contains(o.Current, req) || slices.Contains(o.Requested, req))
			})
			if !contested && a.poolOf(req, s, true) != nil && s.Invalid == "" &&
				strings.HasPrefix(p.Message, "requested "+req.String()+" ") {
				fail("%s requested the uncontested %s and is pending: %v", s.Key, req, p)
			}
		}
		// A dual-stack Service left out in an early round may fit only
		// on the next sync (Allocate's rounds only leave Services out).
		if p.Reason != ReasonExhausted || s.SharingKey != "" || (s.RequireAll && len(s.Families) > 1) {
			continue
		}
		full := slices.ContainsFunc(s.Families, func(f v1.IPFamily) bool {
			for i := range a.pools {
				if _, ok := request(s, f); !ok && a.mayUse(&a.pools[i], s, false) && hasFree(&a.pools[i], f, users) {
					return false
				}
			}
			return true
		})
		if !full {
			fail("%s is pending (%s) while a pool it may use has a free address of each family", s.Key, p.Message)
		}
	}
}

func hasFree(p *Pool, f v1.IPFamily, users map[netip.Addr][]*Service) bool {
	for _, r := range p.Ranges {
		for addr := r.First; family(r.First) == f && addr.Compare(r.Last) <= 0; addr = addr.Next() {
			if len(users[addr]) == 0 {
				return true
			}
		}
	}
	return false
}
