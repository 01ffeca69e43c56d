package proxy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"
)

// TestIncrementalSyncEqualsFullSync applies random changes (Services and
// endpoints coming and going, policies and affinity switching) and checks
// after each one that the table written incrementally is exactly the table
// a full sync writes from scratch.
func TestIncrementalSyncEqualsFullSync(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	inc := knftables.NewFake(knftables.InetFamily, Table)
	syncer := NewSyncer(inc, nil)
	type svcState struct {
		svc *v1.Service
		eps []string
	}
	world := map[string]*svcState{}
	render := func() ([]*v1.Service, []*v1Slice) {
		var svcs []*v1.Service
		var sls []*v1Slice
		for _, name := range sortedKeys(world) {
			st := world[name]
			svcs = append(svcs, st.svc)
			sl := slice("default", name, "", 8080)
			for i, ip := range st.eps {
				sl.Endpoints = append(sl.Endpoints, ep(ip, fmt.Sprintf("node-%d", 1+i%2), true, false))
			}
			sls = append(sls, sl)
		}
		return svcs, sls
	}
	partial := 0
	for step := 0; step < 150; step++ {
		name := fmt.Sprintf("svc-%d", rng.IntN(12))
		switch op := rng.IntN(6); {
		case op == 0 || world[name] == nil:
			np := int32(0)
			if rng.IntN(2) == 0 {
				np = int32(30000 + rng.IntN(1000))
			}
			s := svc("default", name, fmt.Sprintf("10.96.0.%d", 10+len(name)+rng.IntN(200)), 80, 8080, np)
			if rng.IntN(3) == 0 {
				s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
			}
			if np != 0 && rng.IntN(2) == 0 {
				s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
			}
			world[name] = &svcState{svc: s}
		case op == 1:
			delete(world, name)
		default:
			st := world[name]
			if len(st.eps) > 0 && rng.IntN(2) == 0 {
				st.eps = st.eps[1:]
			} else {
				st.eps = append(st.eps, fmt.Sprintf("10.244.%d.%d", 1+rng.IntN(2), 2+rng.IntN(250)))
			}
		}
		svcs, sls := render()
		sps := BuildServicePorts("node-1", svcs, sls)
		res, err := syncer.Sync(ctx, testCfg, sps)
		if err != nil {
			t.Fatalf("step %d: incremental sync: %v", step, err)
		}
		if !res.Full {
			partial++
		}
		full := knftables.NewFake(knftables.InetFamily, Table)
		if _, err := NewSyncer(full, nil).Sync(ctx, testCfg, sps); err != nil {
			t.Fatalf("step %d: full sync: %v", step, err)
		}
		if got, want := normalizeDump(inc.Dump()), normalizeDump(full.Dump()); got != want {
			t.Fatalf("step %d: the incremental table differs from a full sync:\n--- incremental\n%s\n--- full\n%s", step, got, want)
		}
	}
	if partial < 140 {
		t.Errorf("only %d of 150 syncs were partial", partial)
	}
}

func TestAFailedSyncMakesTheNextOneFull(t *testing.T) {
	fake := knftables.NewFake(knftables.InetFamily, Table)
	s := NewSyncer(fake, nil)
	sps := BuildServicePorts("node-1", []*v1.Service{svc("default", "web", "10.96.0.5", 80, 8080, 0)},
		[]*v1Slice{slice("default", "web", "", 8080, ep("10.244.1.2", "node-1", true, false))})
	if res, err := s.Sync(context.Background(), testCfg, sps); err != nil || !res.Full {
		t.Fatalf("first sync: %+v %v, want a full sync", res, err)
	}
	if res, err := s.Sync(context.Background(), testCfg, sps); err != nil || res.Full || res.Operations != 0 {
		t.Errorf("unchanged sync: %+v %v, want a partial sync with nothing to do", res, err)
	}
	// Someone deletes our table behind our back: the partial sync fails,
	// and the next one rewrites everything.
	tx := fake.NewTransaction()
	tx.Delete(&knftables.Table{})
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	sps2 := BuildServicePorts("node-1", []*v1.Service{svc("default", "web", "10.96.0.5", 80, 8080, 0)},
		[]*v1Slice{slice("default", "web", "", 8080, ep("10.244.1.3", "node-1", true, false))})
	if _, err := s.Sync(context.Background(), testCfg, sps2); err == nil {
		t.Fatal("a partial sync against a deleted table succeeded")
	}
	if res, err := s.Sync(context.Background(), testCfg, sps2); err != nil || !res.Full {
		t.Errorf("sync after a failure: %+v %v, want a full sync", res, err)
	}
}

// normalizeDump orders a dump's lines so that two equal tables compare
// equal: elements and objects sorted, rules kept in their chain's order (the
// fake dumps elements in insertion order, which differs between a full and
// an incremental sync without meaning anything).
func normalizeDump(d string) string {
	lines := strings.Split(strings.TrimSpace(d), "\n")
	key := func(l string) string {
		if rest, ok := strings.CutPrefix(l, "add rule "); ok {
			f := strings.Fields(rest)
			return "rule " + f[0] + " " + f[1] + " " + f[2]
		}
		return l
	}
	slices.SortStableFunc(lines, func(a, b string) int { return strings.Compare(key(a), key(b)) })
	return strings.Join(lines, "\n")
}
