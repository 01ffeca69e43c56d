package proxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

// TestIncrementalSyncEqualsFullSync applies random changes through the
// agent's path (PortCache marks, Syncer.Apply with only the changed Service
// ports) and checks after each sync that the table written incrementally
// is exactly the table a full sync writes from scratch. The changes: Services
// and endpoints coming and going, several Services changed before one sync,
// ports renumbered and protocols switched (one key gone, another new), UDP
// Services (their stale conntrack entries must be those StaleUDP finds
// between the whole lists), policies and affinity switching,
// LoadBalancers with source ranges while the node's addresses change, and
// syncs that fail (the next one is full and catches up, changes kept). On a
// dual-stack node also IPv6 Services and endpoints.
func TestIncrementalSyncEqualsFullSync(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) { testIncremental(t, false) })
	t.Run("dual-stack", func(t *testing.T) { testIncremental(t, true) })
}

// flakyNFT is the fake with transactions that fail on demand.
type flakyNFT struct {
	*knftables.Fake
	fail bool
}

func (f *flakyNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	if f.fail {
		return errors.New("injected failure")
	}
	return f.Fake.Run(ctx, tx)
}

// recordConntrack records the deletions asked for.
type recordConntrack struct{ dels []string }

func (r *recordConntrack) DeleteUDP(dels []ConntrackDeletion) (int, error) {
	for _, d := range dels {
		r.dels = append(r.dels, d.String())
	}
	return len(dels), nil
}

func testIncremental(t *testing.T, dual bool) {
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	cfg := testCfg
	if dual {
		cfg = testCfg6
	}
	baseNodeIPs := slices.Clone(cfg.NodeIPs)
	inc := &flakyNFT{Fake: knftables.NewFake(knftables.InetFamily, Table)}
	elems := &fakeElements{t: t, fake: inc.Fake}
	ct := &recordConntrack{}
	syncer := NewSyncer(inc, ct).WithElementWriter(elems)
	ports := NewPortCache()
	type svcState struct {
		svc *v1.Service
		eps []string
	}
	world := map[string]*svcState{}
	src := func() *mapSource {
		m := &mapSource{svcs: map[string]*v1.Service{}, slices: map[string][]*v1Slice{}}
		for _, name := range sortedKeys(world) {
			st := world[name]
			m.svcs["default/"+name] = st.svc
			var sls []*v1Slice
			for _, p := range st.svc.Spec.Ports {
				sl, sl6 := slice("default", name, p.Name, 8080), slice6("default", name, p.Name, 8080)
				sl.Name, sl6.Name = name+"-"+p.Name, name+"-"+p.Name+"-v6"
				*sl.Ports[0].Protocol, *sl6.Ports[0].Protocol = p.Protocol, p.Protocol
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
			m.slices["default/"+name] = sls
		}
		return m
	}
	// Service i's addresses and ports are its own, as the API server
	// makes them: no two Services share a cluster IP or a NodePort.
	change := func(i int) {
		name := fmt.Sprintf("svc-%d", i)
		switch op := rng.IntN(8); {
		case op == 0 || world[name] == nil:
			np := int32(0)
			if rng.IntN(2) == 0 {
				np = int32(30000 + 50*i + rng.IntN(50))
			}
			s := svc("default", name, fmt.Sprintf("10.96.%d.%d", i, 10+rng.IntN(200)), 80, 8080, np)
			if rng.IntN(3) == 0 {
				s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
			}
			if rng.IntN(4) == 0 {
				s.Spec.Ports[0].Protocol = v1.ProtocolUDP
			}
			if rng.IntN(4) == 0 {
				s.Spec.Ports[0].Name = "a"
				s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: "b", Protocol: v1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(8080)})
			}
			if np != 0 && rng.IntN(2) == 0 {
				s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
				s.Spec.HealthCheckNodePort = int32(32000 + i)
			}
			if rng.IntN(5) == 0 {
				s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
			}
			if np != 0 && rng.IntN(3) == 0 {
				// A LoadBalancer whose source ranges hold a node address
				// that comes and goes: its chain reads the node's addresses.
				s.Spec.Type = v1.ServiceTypeLoadBalancer
				s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: fmt.Sprintf("172.30.0.%d", 200+i)}}
				s.Spec.LoadBalancerSourceRanges = []string{"172.30.0.0/28"}
			}
			if dual && rng.IntN(2) == 0 {
				dualStack(s, fmt.Sprintf("fd00:10:96::%x:%x", i, 10+rng.IntN(200)))
			}
			var eps []string // a Service created again keeps its pods
			if old := world[name]; old != nil {
				eps = old.eps
			}
			world[name] = &svcState{svc: s, eps: eps}
		case op == 1:
			delete(world, name)
		case op == 2:
			// The port renumbered: one Service port key gone, another new.
			s := world[name].svc.DeepCopy()
			s.Spec.Ports[0].Port = int32(80 + rng.IntN(3))
			world[name].svc = s
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
	}
	var lastOK []*ServicePort // the Service ports of the last successful sync
	synced := false
	partial, failed := 0, 0
	const steps = 300
	for step := 0; step < steps; step++ {
		for range 1 + rng.IntN(3) {
			i := rng.IntN(12)
			change(i)
			ports.Mark(fmt.Sprintf("default/svc-%d", i))
		}
		if rng.IntN(10) == 0 {
			// The node's NodePort addresses change (a LoadBalancer's
			// source ranges hold 172.30.0.11 or not).
			if slices.Equal(cfg.NodeIPs, baseNodeIPs) {
				cfg.NodeIPs = append([]netip.Addr{netip.MustParseAddr("172.30.0.21")}, baseNodeIPs[1:]...)
			} else {
				cfg.NodeIPs = slices.Clone(baseNodeIPs)
			}
		}
		s := src()
		changes, err := ports.Update(Topology{Node: "node-1"}, s)
		if err != nil {
			t.Fatal(err)
		}
		all := ports.All()
		var svcs []*v1.Service
		var sls []*v1Slice
		for _, k := range sortedKeys(s.svcs) {
			svcs = append(svcs, s.svcs[k])
			sls = append(sls, s.slices[k]...)
		}
		if want := BuildServicePorts("node-1", svcs, sls); !slices.Equal(keysOf(all), keysOf(want)) {
			t.Fatalf("step %d: cache has %v, want %v", step, keysOf(all), keysOf(want))
		}
		inc.fail = synced && rng.IntN(15) == 0
		elems.fail = inc.fail
		ct.dels = nil
		res, err := syncer.Apply(ctx, cfg, changes)
		if inc.fail {
			if err == nil && res.Operations > 0 {
				t.Fatalf("step %d: a sync whose transaction failed succeeded", step)
			}
			if err != nil {
				failed++
				continue
			}
		}
		if err != nil {
			t.Fatalf("step %d: incremental sync: %v", step, err)
		}
		synced = true
		if !res.Full {
			partial++
		}
		eps := 0
		for _, sp := range all {
			eps += len(sp.Endpoints)
		}
		if res.ServicePorts != len(all) || res.Endpoints != eps {
			t.Errorf("step %d: the sync counts %d ports and %d endpoints, want %d and %d", step, res.ServicePorts, res.Endpoints, len(all), eps)
		}
		var want []string
		for _, d := range StaleUDP(lastOK, all) {
			want = append(want, d.String())
		}
		slices.Sort(want)
		slices.Sort(ct.dels)
		if !slices.Equal(ct.dels, want) {
			t.Errorf("step %d: stale UDP entries deleted %v, want %v", step, ct.dels, want)
		}
		lastOK = all
		full := knftables.NewFake(knftables.InetFamily, Table)
		if _, err := NewSyncer(full, nil).Sync(ctx, cfg, all); err != nil {
			t.Fatalf("step %d: full sync: %v", step, err)
		}
		if got, want := canonicalTable(t, inc.Fake), canonicalTable(t, full); got != want {
			t.Fatalf("step %d: the incremental table differs from a full sync:\n--- incremental\n%s\n--- full\n%s", step, got, want)
		}
	}
	if partial < steps*3/4 {
		t.Errorf("only %d of %d syncs were partial", partial, steps)
	}
	if failed < 5 {
		t.Errorf("only %d syncs failed: the recovery from failures went untested", failed)
	}
	if elems.writes < 10 {
		t.Errorf("only %d of %d syncs went through the element writer (%d partial)", elems.writes, steps, partial)
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
	fail   bool // fail every write
}

func (f *fakeElements) Supports(e Element) bool {
	_, _, ok := encodeElement(e)
	return ok
}

func (f *fakeElements) Write(ctx context.Context, removed, added []Element, picks []SlotPick) error {
	if f.fail {
		return errors.New("injected failure")
	}
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
