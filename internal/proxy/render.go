package proxy

import (
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"

	"github.com/podnet/podnet/internal/flow/logrule"
)

// Table is the nftables table the proxy owns (family inet).
const Table = "podnet-proxy"

// MasqueradeMark is the packet-mark bit that asks postrouting to masquerade.
// Other tables must not use it.
const MasqueradeMark = 0x4000

// Endpoint slots live in the conntrack mark while the first packet of a
// Service connection is translated: a Service port's chain sets
// "ct mark = SlotBase + random slot of its own range" and jumps to one
// shared chain per family and protocol whose single rule translates with
// "dnat to ct mark map @endpoint-slots-…". One rule bound to each slot map
// keeps loading linear: the kernel checks every element of a map against
// every rule bound to it, so 10,000 per-Service rules bound to one map of
// 100,000 slots took over a minute to load. Postrouting resets the mark.
const (
	SlotBase = 0x5a000000
	slotMask = 0xff000000
)

// Config is what the renderer needs besides the Services.
type Config struct {
	// PodCIDRs are the cluster's pod ranges: traffic from them keeps its
	// source address; traffic from elsewhere to a cluster IP is
	// masqueraded so replies come back through this node.
	PodCIDRs []netip.Prefix
	// NodeIPs are the addresses NodePorts answer on, of both families
	// (the agent's --nodeport-addresses, see NodePortAddresses.Select).
	// A Service's NodePort answers on the addresses of the families of its
	// cluster IPs, as with kube-proxy.
	NodeIPs []netip.Addr
}

// fingerprint changes whenever anything the renderer reads from the Config
// changes; it is compared at every sync (Service ports are compared with
// sameRender).
func (c Config) fingerprint() string { return fmt.Sprint(c.PodCIDRs, c.NodeIPs) }

// NodePortAddresses is the agent's --nodeport-addresses: which of the
// node's addresses NodePorts answer on. The zero value is the default: the
// node's InternalIPs (kube-proxy's nftables default, "primary").
type NodePortAddresses struct {
	// CIDRs select the addresses configured on the node's interfaces that
	// fall in them. A family without a CIDR gets no such address (unlike
	// kube-proxy, which then opens every address of that family).
	CIDRs []netip.Prefix
	// Primary adds the node's InternalIPs (keyword "primary"; implied
	// when CIDRs is empty).
	Primary bool
}

// ParseNodePortAddresses reads --nodeport-addresses values: CIDRs and the
// keywords "primary" (the node's InternalIPs) and "all" (0.0.0.0/0 and
// ::/0). Loopback NodePorts are not supported: "localhost" and CIDRs
// inside the loopback ranges are errors.
func ParseNodePortAddresses(values []string) (NodePortAddresses, error) {
	var n NodePortAddresses
	var errs []error
	for _, v := range values {
		switch v = strings.TrimSpace(v); v {
		case "":
		case "primary":
			n.Primary = true
		case "all":
			n.CIDRs = append(n.CIDRs, netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
		case "localhost":
			errs = append(errs, errors.New(`"localhost": NodePorts on loopback addresses are not supported`))
		default:
			p, err := netip.ParsePrefix(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%q is neither a CIDR nor one of primary, all", v))
				continue
			}
			if p.Addr().Is4In6() {
				errs = append(errs, fmt.Errorf("%s: write IPv4 CIDRs as IPv4", p))
				continue
			}
			p = p.Masked()
			if a := p.Addr(); a.IsLoopback() && (a.Is6() || p.Bits() >= 8) {
				errs = append(errs, fmt.Errorf("%s: NodePorts on loopback addresses are not supported", p))
				continue
			}
			n.CIDRs = append(n.CIDRs, p)
		}
	}
	return n, errors.Join(errs...)
}

// NeedsLocal says whether Select reads the node's local addresses.
func (n NodePortAddresses) NeedsLocal() bool { return len(n.CIDRs) > 0 }

// Select returns the addresses NodePorts answer on, sorted and without
// duplicates: primary (the node's InternalIPs) when n is the default or
// asks for them, and the addresses in local (those configured on the
// node's interfaces) that fall in n's CIDRs. Loopback addresses never
// answer NodePorts (packets to them are not routed after DNAT).
func (n NodePortAddresses) Select(primary, local []netip.Addr) []netip.Addr {
	var out []netip.Addr
	if n.Primary || len(n.CIDRs) == 0 {
		for _, a := range primary {
			out = append(out, a.Unmap())
		}
	}
	for _, a := range local {
		a = a.Unmap()
		for _, p := range n.CIDRs {
			if p.Contains(a) {
				out = append(out, a)
				break
			}
		}
	}
	out = slices.DeleteFunc(out, func(a netip.Addr) bool { return !a.IsValid() || a.IsLoopback() || a.IsUnspecified() })
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out)
}

// Fixed chains, sets and maps.
const (
	chainNATPrerouting  = "nat-prerouting"
	chainNATOutput      = "nat-output"
	chainNATPostrouting = "nat-postrouting"
	chainFilterInput    = "filter-input"
	chainFilterForward  = "filter-forward"
	chainFilterOutput   = "filter-output"
	chainServices       = "services"
	chainEndpointsCheck = "endpoints-check"
	chainMarkMasq       = "mark-for-masquerade"
	chainMasquerading   = "masquerading"
	chainReject         = "reject-no-endpoints"
	chainRejectPacket   = "reject-packet"
	chainDrop           = "drop-no-local-endpoints"

	mapServiceIPs4      = "service-ips-v4"
	mapServiceIPs6      = "service-ips-v6"
	mapNodePorts4       = "service-nodeports-v4"
	mapNodePorts6       = "service-nodeports-v6"
	mapNoEndpoints4     = "no-endpoint-services-v4"
	mapNoEndpoints6     = "no-endpoint-services-v6"
	mapNoEndpointPorts4 = "no-endpoint-nodeports-v4"
	mapNoEndpointPorts6 = "no-endpoint-nodeports-v6"
	setPodCIDRs4        = "pod-cidrs-v4"
	setPodCIDRs6        = "pod-cidrs-v6"
	setNodePortIPs4     = "nodeport-ips-v4"
	setNodePortIPs6     = "nodeport-ips-v6"
	setHairpin4         = "hairpin-v4"
	setHairpin6         = "hairpin-v6"
)

// baseChain declares a chain attached to a hook.
type baseChain struct {
	name     string
	typ      knftables.BaseChainType
	hook     knftables.BaseChainHook
	priority string
	rules    []string
}

// The base chains, as data: each jumps into the regular chains below.
var baseChains = []baseChain{
	{chainNATPrerouting, knftables.NATType, knftables.PreroutingHook, "-100", []string{"jump " + chainServices}},
	{chainNATOutput, knftables.NATType, knftables.OutputHook, "-100", []string{"jump " + chainServices}},
	{chainNATPostrouting, knftables.NATType, knftables.PostroutingHook, "100", []string{"jump " + chainMasquerading}},
	{chainFilterInput, knftables.FilterType, knftables.InputHook, "-10", []string{"ct state new jump " + chainEndpointsCheck}},
	{chainFilterForward, knftables.FilterType, knftables.ForwardHook, "-10", []string{"ct state new jump " + chainEndpointsCheck}},
	{chainFilterOutput, knftables.FilterType, knftables.OutputHook, "-10", []string{"ct state new jump " + chainEndpointsCheck}},
}

// chainName returns a deterministic, bounded, greppable chain name:
// prefix-HASH-key, where HASH is 8 base32 characters of SHA-256(key) and
// the key is cut so that the whole name stays within 64 bytes (nft allows
// 256; short names keep `nft list` readable).
func chainName(prefix, key string) string {
	sum := sha256.Sum256([]byte(prefix + key))
	h := strings.ToLower(base32.StdEncoding.EncodeToString(sum[:])[:8])
	name := prefix + "-" + h + "-" + key
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

func proto(p v1.Protocol) string { return strings.ToLower(string(p)) }

// declareFixed declares the table, its fixed chains, maps and sets, and
// empties them (not the affinity sets).
func declareFixed(tx *knftables.Transaction) {
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("podnet service proxy; owned by the podnet agent")})
	// Adding an existing counter keeps its values.
	tx.Add(&knftables.Counter{Name: logrule.ExcessCounter})
	for _, bc := range baseChains {
		tx.Add(&knftables.Chain{Name: bc.name, Type: knftables.PtrTo(bc.typ), Hook: knftables.PtrTo(bc.hook),
			Priority: knftables.PtrTo(knftables.BaseChainPriority(bc.priority))})
	}
	for _, c := range fixedChains() {
		tx.Add(&knftables.Chain{Name: c})
	}
	for _, m := range fixedMaps() {
		tx.Add(m)
		tx.Flush(m)
	}
	for _, st := range fixedSets() {
		tx.Add(st)
		tx.Flush(st)
	}
	// Empty every fixed chain. No "flush table": its semantics differ
	// between nft and knftables' fake.
	for _, bc := range baseChains {
		tx.Flush(&knftables.Chain{Name: bc.name})
	}
	for _, c := range fixedChains() {
		tx.Flush(&knftables.Chain{Name: c})
	}
	rule := func(chain string, parts ...any) {
		tx.Add(&knftables.Rule{Chain: chain, Rule: knftables.Concat(parts...)})
	}
	for _, bc := range baseChains {
		for _, r := range bc.rules {
			rule(bc.name, r)
		}
	}
	for _, v4 := range []bool{true, false} {
		for _, p := range protocols {
			rule(dnatChain(v4, p), fmt.Sprintf("meta l4proto %s dnat %s to ct mark map @%s", p, famOf(v4).ip, slotMap(v4, p)))
		}
	}
	// Service addresses first, then NodePorts on the node's addresses (an
	// externalIP that is also a node address goes to its Service).
	fams := []fam{famOf(true), famOf(false)}
	for _, f := range fams {
		rule(chainServices, f.ip, "daddr . meta l4proto . th dport vmap @"+f.svcIPs)
	}
	for _, f := range fams {
		rule(chainServices, f.ip, "daddr @"+f.nodeIPs, "meta l4proto . th dport vmap @"+f.nodePorts)
	}
	for _, f := range fams {
		rule(chainEndpointsCheck, f.ip, "daddr . meta l4proto . th dport vmap @"+f.noEPs)
	}
	for _, f := range fams {
		rule(chainEndpointsCheck, f.ip, "daddr @"+f.nodeIPs, "meta l4proto . th dport vmap @"+f.noEPPorts)
	}
	rule(chainMarkMasq, fmt.Sprintf("meta mark set meta mark | %#x", MasqueradeMark))
	rule(chainMasquerading, fmt.Sprintf("ct mark & %#x == %#x ct mark set 0", slotMask, SlotBase))
	rule(chainMasquerading, "ct status dnat ip saddr . ip daddr @"+setHairpin4, "masquerade fully-random")
	rule(chainMasquerading, "ct status dnat ip6 saddr . ip6 daddr @"+setHairpin6, "masquerade fully-random")
	rule(chainMasquerading, fmt.Sprintf("meta mark & %#x == 0 return", MasqueradeMark))
	rule(chainMasquerading, fmt.Sprintf("meta mark set meta mark ^ %#x", MasqueradeMark))
	rule(chainMasquerading, "masquerade fully-random")
	// The reject, logged for flow records (rate-limited, the excess
	// counted): package flow/logrule.
	for _, r := range logrule.Rules(logrule.ServiceNoEndpoints, "goto "+chainRejectPacket) {
		rule(chainReject, r)
	}
	rule(chainRejectPacket, "meta l4proto tcp reject with tcp reset")
	rule(chainRejectPacket, "reject")
	rule(chainDrop, "drop")
}

func fixedChains() []string {
	out := []string{chainServices, chainEndpointsCheck, chainMarkMasq, chainMasquerading, chainReject, chainRejectPacket, chainDrop}
	for _, v4 := range []bool{true, false} {
		for _, p := range protocols {
			out = append(out, dnatChain(v4, p))
		}
	}
	return out
}

func fixedMaps() []*knftables.Map {
	out := []*knftables.Map{
		{Name: mapServiceIPs4, Type: "ipv4_addr . inet_proto . inet_service : verdict"},
		{Name: mapServiceIPs6, Type: "ipv6_addr . inet_proto . inet_service : verdict"},
		{Name: mapNodePorts4, Type: "inet_proto . inet_service : verdict"},
		{Name: mapNodePorts6, Type: "inet_proto . inet_service : verdict"},
		{Name: mapNoEndpoints4, Type: "ipv4_addr . inet_proto . inet_service : verdict"},
		{Name: mapNoEndpoints6, Type: "ipv6_addr . inet_proto . inet_service : verdict"},
		{Name: mapNoEndpointPorts4, Type: "inet_proto . inet_service : verdict"},
		{Name: mapNoEndpointPorts6, Type: "inet_proto . inet_service : verdict"},
	}
	// One endpoint-slot map per family and protocol: nft 1.0.6 cannot
	// reload a map typed with the protocol-neutral "th dport".
	for _, v4 := range []bool{true, false} {
		for _, p := range protocols {
			out = append(out, &knftables.Map{Name: slotMap(v4, p), TypeOf: fmt.Sprintf("ct mark : %s daddr . %s dport", famOf(v4).ip, p)})
		}
	}
	return out
}

func fixedSets() []*knftables.Set {
	return []*knftables.Set{
		{Name: setPodCIDRs4, Type: "ipv4_addr", Flags: []knftables.SetFlag{knftables.IntervalFlag}},
		{Name: setPodCIDRs6, Type: "ipv6_addr", Flags: []knftables.SetFlag{knftables.IntervalFlag}},
		{Name: setNodePortIPs4, Type: "ipv4_addr"},
		{Name: setNodePortIPs6, Type: "ipv6_addr"},
		{Name: setHairpin4, Type: "ipv4_addr . ipv4_addr"},
		{Name: setHairpin6, Type: "ipv6_addr . ipv6_addr"},
	}
}

// emitFull writes the whole table: declarations, a flush of every rule and
// element (but the affinity sets, which hold state), the new content, and the
// deletion of Service chains and affinity sets in existing/existingSets that
// are no longer wanted. Run as one transaction, it replaces the table
// atomically.
func emitFull(tx *knftables.Transaction, cur *State, existing, existingSets []string) {
	chains, elements, affinitySets := cur.all()
	declareFixed(tx)
	for _, name := range sortedKeys(affinitySets) {
		tx.Add(affinitySets[name])
	}
	// All chains first: rules and elements refer to them.
	for _, name := range sortedKeys(chains) {
		tx.Add(&knftables.Chain{Name: name, Comment: knftables.PtrTo(chains[name].comment)})
		tx.Flush(&knftables.Chain{Name: name})
	}
	for _, name := range sortedKeys(chains) {
		for _, r := range chains[name].rules {
			tx.Add(&knftables.Rule{Chain: name, Rule: r.String()})
		}
	}
	for _, e := range elements {
		tx.Add(e.object())
	}
	// Chains of Services that are gone: nothing refers to them any more
	// (the maps were flushed), so empty and delete them.
	var stale []string
	for _, c := range existing {
		if isServiceChain(c) && chains[c] == nil {
			stale = append(stale, c)
			tx.Flush(&knftables.Chain{Name: c})
		}
	}
	for _, c := range stale {
		tx.Delete(&knftables.Chain{Name: c})
	}
	// Affinity sets of endpoints that are gone (their chains, the only
	// users, were flushed above).
	for _, set := range existingSets {
		if strings.HasPrefix(set, "aff") && affinitySets[set] == nil {
			tx.Delete(&knftables.Set{Name: set})
		}
	}
}

// Build computes the desired content of the table's dynamic part: the
// Service chains with their rules, every set and map element, and the
// affinity sets.
func Build(cfg Config, sps []*ServicePort) *State {
	return build(cfg, sps, NewSlotAllocator())
}

// build renders every Service port from scratch, in the order of sps (which
// decides where their endpoint slots go), with slots.
func build(cfg Config, sps []*ServicePort, slots *SlotAllocator) *State {
	st := &State{frags: make(map[string]*fragment, len(sps)+1), nodeReaders: map[string]bool{}}
	b := builder{cur: st, slots: slots, nodeIPs: cfg.NodeIPs}
	b.node(cfg)
	for _, sp := range sps {
		b.servicePort(sp, false)
	}
	return st
}

// update applies changes to st in place and records the fragments that
// changed for diffStates: a changed Service port is compared with the one
// its fragment was rendered from and rendered again only when something
// the renderer reads differs; a Service port that is gone takes its
// fragment and endpoint slots with it. Unchanged Service ports are not
// looked at, so the work follows the change, not the cluster. When the
// node's addresses changed, the Service ports that read them (see
// readsNodeIPs) are rendered again too. A caller that must be able to go
// back to st (none does: a failed sync is followed by a full one) cannot
// use it after this.
func (st *State) update(cfg Config, changes []PortChange, slots *SlotAllocator) {
	st.changes = st.changes[:0]
	b := builder{cur: st, slots: slots, record: true, nodeIPs: cfg.NodeIPs}
	b.node(cfg)
	if b.nodeChanged {
		for _, key := range sortedKeys(st.nodeReaders) {
			b.servicePort(st.frags[key].sp, true)
		}
	}
	for _, c := range lastPerKey(changes) {
		if c.Port == nil {
			b.remove(c.Key)
		} else {
			b.servicePort(c.Port, false)
		}
	}
}

// lastPerKey returns changes with only the last change of each key.
func lastPerKey(changes []PortChange) []PortChange {
	if len(changes) < 2 {
		return changes
	}
	last := make(map[string]int, len(changes))
	for i, c := range changes {
		last[c.Key] = i
	}
	if len(last) == len(changes) {
		return changes
	}
	out := make([]PortChange, 0, len(last))
	for i, c := range changes {
		if last[c.Key] == i {
			out = append(out, c)
		}
	}
	return out
}

// builder is one run of build or update over its State.
type builder struct {
	cur   *State
	slots *SlotAllocator
	// record says whether to record the fragments that changed (for
	// diffStates: the build started from a previous State).
	record bool
	// nodeIPs are Config.NodeIPs, which some Service ports read (see
	// readsNodeIPs); nodeChanged says whether the node's fragment changed
	// in this build.
	nodeIPs     []netip.Addr
	nodeChanged bool
}

// node renders the node-wide fragment (pod CIDRs, NodePort addresses),
// unless cfg's fingerprint says it is unchanged.
func (b *builder) node(cfg Config) {
	fp := cfg.fingerprint()
	if f := b.cur.frags[""]; f != nil && f.fp == fp {
		return
	}
	b.nodeChanged = true
	f := newFragment()
	f.fp = fp
	for _, p := range cfg.PodCIDRs {
		f.add(PodCIDRElement{p.Masked()})
	}
	for _, a := range cfg.NodeIPs {
		f.add(NodeIPElement{a.Unmap()})
	}
	b.put("", f)
}

// servicePort keeps sp's fragment when it was rendered from a Service port
// the renderer sees as equal to sp (and force is false); else it renders a
// new one and releases the endpoint slots the old one held and the new one
// does not.
func (b *builder) servicePort(sp *ServicePort, force bool) {
	key := sp.Key()
	old := b.cur.frags[key]
	if old != nil && !force && sameRender(old.sp, sp) {
		old.sp = sp
		return
	}
	f := newFragment()
	f.sp = sp
	for _, v4 := range []bool{true, false} {
		renderServicePort(f, sp, v4, b.slots, b.nodeIPs)
	}
	if old != nil {
		b.releaseSlots(old, f)
	}
	b.put(key, f)
}

// remove drops the fragment of key, if any, and its endpoint slots.
func (b *builder) remove(key string) {
	old := b.cur.frags[key]
	if old == nil {
		return
	}
	b.releaseSlots(old, nil)
	delete(b.cur.frags, key)
	delete(b.cur.nodeReaders, key)
	if b.record {
		b.cur.changes = append(b.cur.changes, fragChange{old, nil})
	}
}

// releaseSlots frees the slot blocks old holds that cur (nil: none) does
// not.
func (b *builder) releaseSlots(old, cur *fragment) {
	for _, u := range old.slotUses {
		if cur != nil && slices.ContainsFunc(cur.slotUses, func(n slotUse) bool { return n.slotMap == u.slotMap && n.owner == u.owner }) {
			continue
		}
		b.slots.release(u.slotMap, u.owner)
	}
}

// put makes f the fragment of key.
func (b *builder) put(key string, f *fragment) {
	cur := b.cur
	old := cur.frags[key]
	cur.frags[key] = f
	if f.sp != nil && readsNodeIPs(f.sp) {
		cur.nodeReaders[key] = true
	} else {
		delete(cur.nodeReaders, key)
	}
	if b.record {
		cur.changes = append(cur.changes, fragChange{old, f})
	}
}

// protocols the proxy renders (SCTP too, though this kernel lacks it: the
// rules load, they just never match).
var protocols = []string{"tcp", "udp", "sctp"}

// slotMap names the endpoint-slot map of a family and protocol. Every slot
// element names its map many times per sync, so the names are made once.
func slotMap(v4 bool, proto string) string {
	fam := 1
	if v4 {
		fam = 0
	}
	for i, p := range protocols {
		if p == proto {
			return slotMapNames[fam][i]
		}
	}
	return [2]string{"endpoint-slots-v4-", "endpoint-slots-v6-"}[fam] + proto
}

// slotMapNames[0] are the IPv4 slot maps of protocols, [1] the IPv6 ones.
var slotMapNames = func() (n [2][]string) {
	for _, p := range protocols {
		n[0] = append(n[0], "endpoint-slots-v4-"+p)
		n[1] = append(n[1], "endpoint-slots-v6-"+p)
	}
	return n
}()

// isServiceChain reports whether a chain is one of the per-Service chains.
func isServiceChain(c string) bool {
	for _, p := range []string{"svc", "all", "ext", "fw", "aff"} {
		if strings.HasPrefix(c, p) {
			return true
		}
	}
	return false
}

// dnatChain names the shared translating chain of a family and protocol.
func dnatChain(v4 bool, proto string) string {
	if v4 {
		return "dnat-v4-" + proto
	}
	return "dnat-v6-" + proto
}

// family-specific names and selectors.
type fam struct {
	ip, suffix, svcIPs, noEPs, hairpin, podCIDRs string
	// nodeIPs is the set of addresses NodePorts answer on; nodePorts and
	// noEPPorts are the NodePort maps consulted for them.
	nodeIPs, nodePorts, noEPPorts string
}

func famOf(v4 bool) fam {
	if v4 {
		return fam{"ip", "4", mapServiceIPs4, mapNoEndpoints4, setHairpin4, setPodCIDRs4, setNodePortIPs4, mapNodePorts4, mapNoEndpointPorts4}
	}
	return fam{"ip6", "6", mapServiceIPs6, mapNoEndpoints6, setHairpin6, setPodCIDRs6, setNodePortIPs6, mapNodePorts6, mapNoEndpointPorts6}
}

func ofFamily(addrs []netip.Addr, v4 bool) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		if a.Is4() == v4 {
			out = append(out, a)
		}
	}
	return out
}

func epsOfFamily(eps []Endpoint, v4 bool) []Endpoint {
	var out []Endpoint
	for _, e := range eps {
		if e.IP.Is4() == v4 {
			out = append(out, e)
		}
	}
	return out
}

// renderServicePort writes one Service port's chains and elements for one
// address family. nodeIPs are the node's addresses (Config.NodeIPs), which
// loadBalancerSourceRanges read.
func renderServicePort(b *fragment, sp *ServicePort, v4 bool, slots *SlotAllocator, nodeIPs []netip.Addr) {
	clusterIPs := ofFamily(sp.ClusterIPs, v4)
	external := ofFamily(sp.ExternalAddrs, v4)
	// A NodePort answers on the node addresses of the families the
	// Service has cluster IPs of (kube-proxy: one proxier per family, each
	// ignoring Services of the other family).
	nodePort := sp.NodePort != 0 && len(clusterIPs) > 0
	if len(clusterIPs) == 0 && len(external) == 0 && !nodePort {
		return
	}
	if _, ok := l4Of(proto(sp.Protocol)); !ok {
		return // the API has no other protocol; the table has no chain for one
	}
	r := portRender{b: b, sp: sp, v4: v4, f: famOf(v4), pr: proto(sp.Protocol), key: sp.Key(), slots: slots, nodeIPs: ofFamily(nodeIPs, v4)}
	all := epsOfFamily(sp.Endpoints, v4)
	if len(all) == 0 {
		// No endpoint at all: reject at once, from the filter chains.
		for _, ip := range append(clusterIPs, external...) {
			r.serviceIP(r.f.noEPs, ip, chainReject)
		}
		if nodePort {
			r.nodePort(r.f.noEPPorts, chainReject)
		}
		return
	}
	for _, e := range all {
		// Only a pod of this node can reach itself through this node:
		// endpoints known to run elsewhere need no hairpin element.
		if e.Local || e.Node == "" {
			b.add(HairpinElement{e.IP})
		}
	}
	if len(clusterIPs) > 0 {
		internal := r.internalChain()
		for _, ip := range clusterIPs {
			r.serviceIP(r.f.svcIPs, ip, internal)
		}
	}
	if len(external) > 0 || nodePort {
		r.external(external, nodePort)
	}
}

// portRender renders one Service port for one address family.
type portRender struct {
	b       *fragment
	sp      *ServicePort
	v4      bool
	f       fam
	pr      string // protocol, as nft writes it
	key     string // sp.Key()
	slots   *SlotAllocator
	nodeIPs []netip.Addr // the node's addresses of this family
	// cluster is the chain of the Cluster traffic policy, once written.
	cluster string
}

func (r *portRender) serviceIP(m string, ip netip.Addr, chain string) {
	r.b.add(ServiceIPElement{Map: m, Addr: ip, Proto: r.pr, Port: uint16(r.sp.Port), Chain: chain})
}

func (r *portRender) nodePort(m string, chain string) {
	r.b.add(NodePortElement{Map: m, Proto: r.pr, Port: uint16(r.sp.NodePort), Chain: chain})
}

// slotPick adds the slots of eps and returns the rule that picks one;
// purpose tells the endpoint lists of one Service port apart.
func (r *portRender) slotPick(eps []Endpoint, purpose string) SlotPick {
	m, owner := slotMap(r.v4, r.pr), r.key+"/"+purpose
	blk := r.slots.get(m, owner, len(eps))
	r.b.slotUses = append(r.b.slotUses, slotUse{m, owner})
	base := uint32(SlotBase + blk.base)
	l4, _ := l4Of(r.pr) // known: renderServicePort renders no other
	for i, e := range eps {
		r.b.add(SlotElement{Proto: l4, Slot: base + uint32(i), Addr: e.IP, Port: uint16(e.Port)})
	}
	return SlotPick{N: uint32(len(eps)), Base: base, Target: dnatChain(r.v4, r.pr)}
}

// choose ends chain with the choice of one of eps: with sessionAffinity
// ClientIP the endpoint that served the client before, else (and for a new
// client) a random one. Without endpoints the packet is dropped.
func (r *portRender) choose(chain string, eps []Endpoint, purpose string) {
	switch {
	case len(eps) == 0:
		r.b.rule(chain, "goto "+chainDrop)
	case r.sp.AffinityTimeout > 0:
		r.affinity(chain, eps)
	default:
		r.b.pick(chain, r.slotPick(eps, purpose))
	}
}

// serviceChain writes the Service port's chain, svc4-/svc6-: sources
// outside the pod CIDRs are masqueraded (replies must come back through
// this node), then one of eps is chosen.
func (r *portRender) serviceChain(eps []Endpoint) string {
	name := chainName("svc"+r.f.suffix, r.key)
	r.b.chain(name, r.key)
	r.b.rule(name, knftables.Concat(r.f.ip, "saddr", "!=", "@"+r.f.podCIDRs, "jump", chainMarkMasq))
	r.choose(name, eps, "cluster")
	return name
}

// internalChain returns the chain cluster IPs go to: the Service port's
// chain over internalEndpoints, or drop-no-local-endpoints for
// internalTrafficPolicy Local without an endpoint on this node (nothing to
// mark for masquerade then).
func (r *portRender) internalChain() string {
	if !r.sp.InternalLocal {
		return r.clusterChain()
	}
	eps := epsOfFamily(r.sp.internalEndpoints(), r.v4)
	if len(eps) == 0 {
		return chainDrop
	}
	return r.serviceChain(eps)
}

// clusterChain returns the chain of the Cluster traffic policy (all
// clusterEndpoints), writing it on first use: the Service port's chain,
// unless internalTrafficPolicy Local narrows that one to local endpoints;
// then a chain all4-/all6- that only chooses (whoever jumps there has
// decided about masquerade).
func (r *portRender) clusterChain() string {
	if r.cluster != "" {
		return r.cluster
	}
	eps := epsOfFamily(r.sp.clusterEndpoints(), r.v4)
	if !r.sp.InternalLocal {
		r.cluster = r.serviceChain(eps)
		return r.cluster
	}
	r.cluster = chainName("all"+r.f.suffix, r.key)
	r.b.chain(r.cluster, r.key+" all endpoints")
	r.choose(r.cluster, eps, "all")
	return r.cluster
}

// external writes the chain of NodePort and external traffic, the
// loadBalancerSourceRanges chain, and the elements that lead to them.
func (r *portRender) external(external []netip.Addr, nodePort bool) {
	b := r.b
	extChain := chainName("ext"+r.f.suffix, r.key)
	b.chain(extChain, r.key+" external")
	if r.sp.ExternalLocal {
		r.localExternal(extChain)
	} else {
		b.rule(extChain, "jump "+chainMarkMasq)
		b.rule(extChain, "goto "+r.clusterChain())
	}
	fwTarget := r.firewall(extChain)
	for _, ip := range external {
		target := extChain
		if slicesContains(r.sp.LBAddrs, ip) {
			target = fwTarget
		}
		r.serviceIP(r.f.svcIPs, ip, target)
	}
	if nodePort {
		r.nodePort(r.f.nodePorts, extChain)
	}
}

// localExternal writes externalTrafficPolicy Local's external chain as
// kube-proxy does: traffic from pods and from the node itself is cluster
// traffic that happens to use an external address, so it goes to every
// endpoint (the node's own masqueraded: its source may be the very address
// it reached); only traffic from elsewhere keeps its source address and is
// limited to this node's endpoints (none: dropped).
func (r *portRender) localExternal(extChain string) {
	b, f := r.b, r.f
	cluster := r.clusterChain()
	b.rule(extChain, fmt.Sprintf("%s saddr @%s goto %s", f.ip, f.podCIDRs, cluster))
	b.rule(extChain, "fib saddr type local jump "+chainMarkMasq)
	b.rule(extChain, "fib saddr type local goto "+cluster)
	r.choose(extChain, epsOfFamily(r.sp.externalEndpoints(), r.v4), "local")
}

// firewall writes the chain of loadBalancerSourceRanges, when the Service
// port has them and LoadBalancer IPs of this family, and returns the chain
// LoadBalancer IPs go to (extChain without ranges). Only those sources
// reach the LoadBalancer IPs; NodePorts and externalIPs are not filtered.
// As with kube-proxy, when a range holds one of the node's addresses, the
// LoadBalancer IPs are allowed sources too: a node that has the IP as a
// local address reaches it from that very address.
func (r *portRender) firewall(extChain string) string {
	ranges := prefixesOfFamily(r.sp.SourceRanges, r.v4)
	lbIPs := ofFamily(r.sp.LBAddrs, r.v4)
	if len(ranges) == 0 || len(lbIPs) == 0 {
		return extChain
	}
	fw := chainName("fw"+r.f.suffix, r.key)
	r.b.chain(fw, r.key+" loadBalancerSourceRanges")
	var rs []string
	for _, p := range ranges {
		rs = append(rs, p.String())
	}
	if slices.ContainsFunc(r.nodeIPs, func(a netip.Addr) bool { return inPrefixes(ranges, a) }) {
		for _, ip := range lbIPs {
			// An address inside a range is allowed already (and nft
			// refuses overlapping intervals in one set).
			if !inPrefixes(ranges, ip) {
				rs = append(rs, netip.PrefixFrom(ip, ip.BitLen()).String())
			}
		}
	}
	r.b.rule(fw, fmt.Sprintf("%s saddr { %s } goto %s", r.f.ip, strings.Join(rs, ", "), extChain))
	r.b.rule(fw, "drop")
	return fw
}

// readsNodeIPs says whether rendering sp reads Config.NodeIPs (the
// loadBalancerSourceRanges chain does), so that a change of the node's
// addresses must render it again.
func readsNodeIPs(sp *ServicePort) bool { return len(sp.SourceRanges) > 0 && len(sp.LBAddrs) > 0 }

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Contains(a) })
}

func prefixesOfFamily(ps []netip.Prefix, v4 bool) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is4() == v4 {
			out = append(out, p)
		}
	}
	return out
}

func slicesContains(as []netip.Addr, a netip.Addr) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// affinity ends chain with sessionAffinity ClientIP's choice among eps: a
// client an endpoint of eps served goes to that endpoint's chain, else one
// is picked at random. The endpoint chains and their sets belong to the
// Service port, so every chain that chooses among its endpoints (cluster,
// local) shares what clients they served, as with kube-proxy.
func (r *portRender) affinity(chain string, eps []Endpoint) {
	var choices []string
	for i, e := range eps {
		name := r.affinityChain(e)
		r.b.rule(chain, fmt.Sprintf("%s saddr @%s goto %s", r.f.ip, name, name))
		choices = append(choices, fmt.Sprintf("%d : goto %s", i, name))
	}
	// " , " rather than ", ": knftables' fake reads "X," as a chain name.
	r.b.rule(chain, fmt.Sprintf("numgen random mod %d vmap { %s }", len(eps), strings.Join(choices, " , ")))
}

// affinityChain returns the name of endpoint e's affinity chain and set,
// writing them on first use: a timeout set of the clients e served and a
// chain that refreshes the client's entry and translates to e. The sets
// are never flushed by a sync: they are the affinity state.
func (r *portRender) affinityChain(e Endpoint) string {
	// nft names allow no ':' (IPv6, ports): write them with '_'.
	name := chainName("aff"+r.f.suffix, r.key+"/"+strings.NewReplacer(":", "_", "[", "", "]", "").Replace(e.String()))
	if r.b.affinitySets[name] != nil {
		return name
	}
	timeout := r.sp.AffinityTimeout
	if r.b.affinitySets == nil {
		r.b.affinitySets = map[string]*knftables.Set{}
	}
	r.b.affinitySets[name] = &knftables.Set{Name: name, Type: "ipv" + r.f.suffix + "_addr", Flags: []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag},
		Timeout: &timeout, Comment: knftables.PtrTo(r.key + " clients of " + e.String())}
	r.b.chain(name, r.key+" -> "+e.String())
	r.b.rule(name, fmt.Sprintf("update @%s { %s saddr }", name, r.f.ip))
	r.b.rule(name, fmt.Sprintf("meta l4proto %s dnat %s to %s", r.pr, r.f.ip, netip.AddrPortFrom(e.IP, uint16(e.Port))))
	return name
}
