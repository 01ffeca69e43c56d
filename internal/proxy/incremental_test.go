package proxy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"
)

// TestIncrementalSyncEqualsFullSync applies random changes (Services and
// endpoints coming and going, policies and affinity switching; on a
// dual-stack node also IPv6 Services and endpoints, and the node's IPv6
// NodePort addresses changing) and checks after each one that the table
// written incrementally is exactly the table a full sync writes from
// scratch.
func TestIncrementalSyncEqualsFullSync(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) { testIncremental(t, false) })
	t.Run("dual-stack", func(t *testing.T) { testIncremental(t, true) })
}

func testIncremental(t *testing.T, dual bool) {
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	cfg := testCfg
	if dual {
		cfg = testCfg6
	}
	inc := knftables.NewFake(knftables.InetFamily, Table)
	elems := &fakeElements{t: t, fake: inc}
	syncer := NewSyncer(inc, nil).WithElementWriter(elems)
	ports := NewPortCache()
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
			sl, sl6 := slice("default", name, "", 8080), slice6("default", name, "", 8080)
			for i, ip := range st.eps {
				e := ep(ip, fmt.Sprintf("node-%d", 1+i%2), true, false)
				if strings.Contains(ip, ":") {
					sl6.Endpoints = append(sl6.Endpoints, e)
				} else {
					sl.Endpoints = append(sl.Endpoints, e)
				}
			}
			sls = append(sls, sl)
			if dual {
				sls = append(sls, sl6)
			}
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
			if dual && rng.IntN(2) == 0 {
				dualStack(s, fmt.Sprintf("fd00:10:96::%x", 10+rng.IntN(200)))
			}
			world[name] = &svcState{svc: s}
		case dual && op == 2 && rng.IntN(4) == 0:
			// The node's IPv6 NodePort addresses change.
			if len(cfg.NodeIPs) == 2 {
				cfg.NodeIPs = append(slices.Clone(cfg.NodeIPs), netip.MustParseAddr("fd00:172:31::11"))
			} else {
				cfg.NodeIPs = cfg.NodeIPs[:2]
			}
		case op == 1:
			delete(world, name)
		default:
			st := world[name]
			if len(st.eps) > 0 && rng.IntN(2) == 0 {
				st.eps = st.eps[1:]
			} else if len(st.svc.Spec.ClusterIPs) == 2 && rng.IntN(2) == 0 {
				st.eps = append(st.eps, fmt.Sprintf("fd00:10:244:%d::%x", 1+rng.IntN(2), 2+rng.IntN(250)))
			} else {
				st.eps = append(st.eps, fmt.Sprintf("10.244.%d.%d", 1+rng.IntN(2), 2+rng.IntN(250)))
			}
		}
		svcs, sls := render()
		// Through the cache, as the agent does: unchanged Services keep
		// their pointers, and the syncer reuses their fragments unseen.
		src := &mapSource{svcs: map[string]*v1.Service{}, slices: map[string][]*v1Slice{}}
		for _, s := range svcs {
			src.svcs[s.Namespace+"/"+s.Name] = s
		}
		for _, sl := range sls {
			k := SliceServiceKey(sl)
			src.slices[k] = append(src.slices[k], sl)
		}
		ports.Mark("default/" + name)
		sps, err := ports.Update(Topology{Node: "node-1"}, src)
		if err != nil {
			t.Fatal(err)
		}
		if want := BuildServicePorts("node-1", svcs, sls); !slices.Equal(keysOf(sps), keysOf(want)) {
			t.Fatalf("step %d: cache has %v, want %v", step, keysOf(sps), keysOf(want))
		}
		res, err := syncer.Sync(ctx, cfg, sps)
		if err != nil {
			t.Fatalf("step %d: incremental sync: %v", step, err)
		}
		if !res.Full {
			partial++
		}
		full := knftables.NewFake(knftables.InetFamily, Table)
		if _, err := NewSyncer(full, nil).Sync(ctx, cfg, sps); err != nil {
			t.Fatalf("step %d: full sync: %v", step, err)
		}
		if got, want := canonicalTable(t, inc), canonicalTable(t, full); got != want {
			t.Fatalf("step %d: the incremental table differs from a full sync:\n--- incremental\n%s\n--- full\n%s", step, got, want)
		}
	}
	if partial < 140 {
		t.Errorf("only %d of 150 syncs were partial", partial)
	}
	// Dual-stack splits endpoints across two families: a family's first
	// or last endpoint (a chain added or removed, written by nft) comes
	// about twice as often.
	minWrites := 20
	if dual {
		minWrites = 10
	}
	if elems.writes < minWrites {
		t.Errorf("only %d of 150 syncs went through the element writer (%d partial)", elems.writes, partial)
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

// TestNodeAddressChangeRendersSourceRangesAgain: whether a
// loadBalancerSourceRanges chain allows the LoadBalancer IPs depends on the
// node's addresses, so a sync after they change renders that Service port
// again although its pointer (and so its promise of being unchanged) is the
// same.
func TestNodeAddressChangeRendersSourceRangesAgain(t *testing.T) {
	lb := svc("default", "lb", "10.96.0.8", 443, 8443, 0)
	lb.Spec.Type = v1.ServiceTypeLoadBalancer
	lb.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "172.30.0.200"}}
	lb.Spec.LoadBalancerSourceRanges = []string{"172.30.0.11/32"}
	sps := BuildServicePorts("node-1", []*v1.Service{lb}, []*v1Slice{slice("default", "lb", "", 8443, ep("10.244.2.4", "node-2", true, false))})
	moved := testCfg
	moved.NodeIPs = []netip.Addr{netip.MustParseAddr("172.30.0.21")}
	ctx := context.Background()
	inc := knftables.NewFake(knftables.InetFamily, Table)
	syncer := NewSyncer(inc, nil)
	for i, cfg := range []Config{testCfg, moved, testCfg} {
		if _, err := syncer.Sync(ctx, cfg, sps); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
		full := knftables.NewFake(knftables.InetFamily, Table)
		if _, err := NewSyncer(full, nil).Sync(ctx, cfg, sps); err != nil {
			t.Fatal(err)
		}
		if got, want := canonicalTable(t, inc), canonicalTable(t, full); got != want {
			t.Errorf("sync %d (node %v): the incremental table differs from a full sync:\n--- incremental\n%s\n--- full\n%s", i, cfg.NodeIPs, got, want)
		}
	}
}

// canonicalTable describes a table so that two tables that behave the same
// compare equal: sets, maps and chains sorted, rules in their order, and the
// endpoint slots a rule picks from resolved to the endpoints (slot numbers
// depend on history: the incremental syncer keeps Services' slots where they
// were).
func canonicalTable(t *testing.T, f *knftables.Fake) string {
	t.Helper()
	tbl := f.Table
	var out []string
	referenced := 0
	for _, name := range sortedKeys(tbl.Chains) {
		out = append(out, "chain "+name)
		for _, r := range tbl.Chains[name].Rules {
			rule := r.Rule
			var m []string
			if match(reSlotPick, rule, &m) {
				n, base := atoi(t, m[1]), hex(t, m[2])
				proto := strings.TrimPrefix(m[3], "dnat-v4-")
				proto = strings.TrimPrefix(proto, "dnat-v6-")
				fam := "v4"
				if strings.HasPrefix(m[3], "dnat-v6-") {
					fam = "v6"
				}
				var eps []string
				for i := uint32(0); i < uint32(n); i++ {
					e := tbl.Maps["endpoint-slots-"+fam+"-"+proto].FindElement(fmt.Sprintf("%#x", base+i))
					if e == nil {
						t.Fatalf("slot %#x of %s missing", base+i, name)
					}
					eps = append(eps, strings.Join(e.Value, " . "))
				}
				referenced += n
				rule = fmt.Sprintf("pick one of %v goto %s", eps, m[3])
			}
			out = append(out, "  "+rule)
		}
	}
	for _, name := range sortedKeys(tbl.Sets) {
		out = append(out, "set "+name)
		var els []string
		for _, e := range tbl.Sets[name].Elements {
			els = append(els, strings.Join(e.Key, " . "))
		}
		slices.Sort(els)
		out = append(out, els...)
	}
	slotElements := 0
	for name, m := range tbl.Maps {
		if strings.HasPrefix(name, "endpoint-slots-") {
			slotElements += len(m.Elements)
		}
	}
	// Garbage slots (elements no rule picks) would not show above.
	out = append(out, fmt.Sprintf("unreferenced slots: %d", slotElements-referenced))
	for _, name := range sortedKeys(tbl.Maps) {
		if strings.HasPrefix(name, "endpoint-slots-") {
			continue // resolved into the rules above
		}
		out = append(out, "map "+name)
		var els []string
		for _, e := range tbl.Maps[name].Elements {
			els = append(els, strings.Join(e.Key, " . ")+" : "+strings.Join(e.Value, " "))
		}
		slices.Sort(els)
		out = append(out, els...)
	}
	return strings.Join(out, "\n")
}

// fakeElements is an ElementWriter over the fake: it checks that every
// change encodes as the netlink writer would encode it, and applies it
// through a transaction (slot picks as rule replacements by handle).
type fakeElements struct {
	t      *testing.T
	fake   *knftables.Fake
	writes int
}

func (f *fakeElements) Supports(e Element) bool {
	_, _, ok := encodeElement(e)
	return ok
}

func (f *fakeElements) Write(ctx context.Context, removed, added []Element, picks []SlotPick) error {
	f.writes++
	tx := f.fake.NewTransaction()
	for _, l := range []struct {
		changes []Element
		op      func(knftables.Object)
	}{{removed, tx.Delete}, {added, tx.Add}} {
		for _, e := range l.changes {
			if _, _, ok := encodeElement(e); !ok {
				f.t.Errorf("element %+v does not encode", e)
			}
			l.op(e.object())
		}
	}
	for _, p := range picks {
		rules, err := f.fake.ListRules(ctx, p.Chain)
		if err != nil {
			return err
		}
		var m []string
		if !match(reSlotPick, rules[p.Index].Rule, &m) {
			f.t.Errorf("rule %d of %s is %q, not a slot pick", p.Index, p.Chain, rules[p.Index].Rule)
		}
		tx.Replace(&knftables.Rule{Chain: p.Chain, Handle: rules[p.Index].Handle, Rule: p.text()})
	}
	return f.fake.Run(ctx, tx)
}
