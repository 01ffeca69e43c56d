package proxy

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

// tracer walks the rules of a knftables.Fake holding the proxy's table for
// the first packet of a connection, the way the kernel would, and returns
// every possible outcome (numgen branches are all followed). It knows
// exactly the rule shapes the renderer writes: any other shape fails the
// test, so a renderer change cannot slip past it unread. Both families: a
// rule's family selector ("ip", "ip6") is matched against the packet's.
type tracer struct {
	t    *testing.T
	tbl  *knftables.FakeTable
	node []netip.Addr // the node's own addresses
	// affinity holds what "update @set { ip saddr }" put in dynamic sets,
	// across traces, as the kernel's timeout sets would.
	affinity map[string]map[netip.Addr]bool
}

type packet struct {
	src, dst netip.Addr
	proto    string
	dport    int
	// fromNode: sent by the node itself (output hook), else arriving on
	// an interface (prerouting hook).
	fromNode bool
}

// outcome is what happens to the first packet.
type outcome struct {
	verdict string // accept, reject, drop
	dnat    string // "ip:port" when translated
	masq    bool
	logged  string // the NFLOG prefix of a logged packet
}

func (o outcome) String() string {
	s := o.verdict
	if o.logged != "" {
		s += " logged " + o.logged
	}
	if o.dnat != "" {
		s += " dnat " + o.dnat
	}
	if o.masq {
		s += " masquerade"
	}
	return s
}

type state struct {
	mark    uint32
	ctmark  uint32
	dnat    string
	verdict string // set when a terminal verdict was reached
	masq    bool
	logged  string
}

func newTracer(t *testing.T, fake *knftables.Fake, node ...string) *tracer {
	t.Helper()
	if fake.Table == nil {
		t.Fatal("tracer: the fake has no table")
	}
	tr := &tracer{t: t, tbl: fake.Table, affinity: map[string]map[netip.Addr]bool{}}
	for _, n := range node {
		tr.node = append(tr.node, netip.MustParseAddr(n))
	}
	return tr
}

// trace returns the sorted, de-duplicated outcomes of p.
func (tr *tracer) trace(p packet) []string {
	tr.t.Helper()
	natHook, filterHook := chainNATPrerouting, chainFilterForward
	if p.fromNode {
		natHook, filterHook = chainNATOutput, chainFilterOutput
	}
	var out []string
	for _, st := range tr.run(natHook, p, state{}) {
		if st.verdict == "" || st.verdict == "accept" {
			dst := p.dst
			if st.dnat != "" {
				dst = netip.MustParseAddrPort(st.dnat).Addr()
			}
			hook := filterHook
			if !p.fromNode && slices.Contains(tr.node, dst) {
				hook = chainFilterInput
			}
			// Filter chains see the translated destination.
			fp := p
			if st.dnat != "" {
				ap := netip.MustParseAddrPort(st.dnat)
				fp.dst, fp.dport = ap.Addr(), int(ap.Port())
			}
			for _, fst := range tr.run(hook, fp, st) {
				if fst.verdict == "" || fst.verdict == "accept" {
					for _, pst := range tr.run(chainNATPostrouting, fp, fst) {
						pst.verdict = "accept"
						out = append(out, outcome{pst.verdict, pst.dnat, pst.masq, pst.logged}.String())
					}
				} else {
					out = append(out, outcome{fst.verdict, fst.dnat, false, fst.logged}.String())
				}
			}
			continue
		}
		out = append(out, outcome{st.verdict, st.dnat, false, st.logged}.String())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

var (
	reLogGoto    = regexp.MustCompile(`^counter log prefix "([^"]+)" group \d+ goto (\S+)$`)
	reJump       = regexp.MustCompile(`^(jump|goto) (\S+)$`)
	reVmap3      = regexp.MustCompile(`^(ip6?) daddr \. meta l4proto \. th dport vmap @(\S+)$`)
	reVmapNode   = regexp.MustCompile(`^(ip6?) daddr @(\S+) meta l4proto \. th dport vmap @(\S+)$`)
	reCtNew      = regexp.MustCompile(`^ct state new jump (\S+)$`)
	reMarkOr     = regexp.MustCompile(`^meta mark set meta mark \| (0x[0-9a-f]+)$`)
	reMarkXor    = regexp.MustCompile(`^meta mark set meta mark \^ (0x[0-9a-f]+)$`)
	reMarkRet    = regexp.MustCompile(`^meta mark & (0x[0-9a-f]+) == 0 return$`)
	reHairpin    = regexp.MustCompile(`^ct status dnat (ip6?) saddr \. (ip6?) daddr @(\S+) masquerade fully-random$`)
	reSaddrNot   = regexp.MustCompile(`^(ip6?) saddr != @(\S+) jump (\S+)$`)
	reSlotPick   = regexp.MustCompile(`^ct mark set numgen random mod (\d+) offset (0x[0-9a-f]+) goto (\S+)$`)
	reDnatSlots  = regexp.MustCompile(`^meta l4proto (\S+) dnat (ip6?) to ct mark map @(\S+)$`)
	reCtMarkZero = regexp.MustCompile(`^ct mark & (0x[0-9a-f]+) == (0x[0-9a-f]+) ct mark set 0$`)
	reSaddrSet   = regexp.MustCompile(`^(ip6?) saddr @(\S+) goto (\S+)$`)
	reUpdate     = regexp.MustCompile(`^update @(\S+) \{ (ip6?) saddr \}$`)
	reDnatFixed  = regexp.MustCompile(`^meta l4proto (\S+) dnat (ip6?) to (\S+)$`)
	reNumgenVmap = regexp.MustCompile(`^numgen random mod (\d+) vmap \{ (.*) \}$`)
	reSaddrAnon  = regexp.MustCompile(`^(ip6?) saddr \{ (.*) \} goto (\S+)$`)
	reFibLocal   = regexp.MustCompile(`^fib saddr type local (jump|goto) (\S+)$`)
)

// run evaluates a chain and returns the states it can end in (a state with
// verdict "" fell off the end or returned).
func (tr *tracer) run(chain string, p packet, st state) []state {
	return tr.runFrom(chain, 0, p, st)
}

// runFrom evaluates chain from its rule number from.
func (tr *tracer) runFrom(chain string, from int, p packet, st state) []state {
	tr.t.Helper()
	c := tr.tbl.Chains[chain]
	if c == nil {
		tr.t.Fatalf("tracer: no chain %q", chain)
	}
	for i := from; i < len(c.Rules); i++ {
		r := c.Rules[i]
		rule := r.Rule
		v4 := p.dst.Is4()
		fam := func(f string) bool { return (f == "ip") == v4 }
		var m []string
		switch {
		case strings.HasPrefix(rule, "limit rate over "):
			// one packet is never over the flow log's rate limit
		case match(reLogGoto, rule, &m):
			st.logged = m[1]
			return tr.run(m[2], p, st)
		case match(reJump, rule, &m):
			res := tr.run(m[2], p, st)
			if m[1] == "goto" {
				return res
			}
			return tr.continueAfter(chain, i, p, res)
		case match(reVmap3, rule, &m):
			if !fam(m[1]) {
				continue
			}
			if v := tr.lookup(m[2], p.dst.String(), p.proto, strconv.Itoa(p.dport)); v != "" {
				return tr.verdictElement(chain, i, v, p, st)
			}
		case match(reVmapNode, rule, &m):
			if !fam(m[1]) || !tr.inSet(m[2], p.dst) {
				continue
			}
			if v := tr.lookup(m[3], p.proto, strconv.Itoa(p.dport)); v != "" {
				return tr.verdictElement(chain, i, v, p, st)
			}
		case match(reCtNew, rule, &m):
			return tr.continueAfter(chain, i, p, tr.run(m[1], p, st))
		case match(reMarkOr, rule, &m):
			st.mark |= hex(tr.t, m[1])
		case match(reMarkXor, rule, &m):
			st.mark ^= hex(tr.t, m[1])
		case match(reMarkRet, rule, &m):
			if st.mark&hex(tr.t, m[1]) == 0 {
				return []state{st}
			}
		case match(reHairpin, rule, &m):
			if fam(m[1]) && st.dnat != "" && tr.inSetPair(m[3], p.src, p.dst) {
				st.masq, st.verdict = true, "accept" // NAT statements end the hook
				return []state{st}
			}
		case rule == "masquerade fully-random":
			st.masq, st.verdict = true, "accept"
			return []state{st}
		case rule == "meta l4proto tcp reject with tcp reset":
			if p.proto == "tcp" {
				st.verdict = "reject"
				return []state{st}
			}
		case rule == "reject", rule == "drop":
			st.verdict = rule
			return []state{st}
		case match(reSaddrNot, rule, &m):
			if fam(m[1]) && !tr.inSet(m[2], p.src) {
				return tr.continueAfter(chain, i, p, tr.run(m[3], p, st))
			}
		case match(reSlotPick, rule, &m):
			n, base := atoi(tr.t, m[1]), hex(tr.t, m[2])
			var out []state
			for i := uint32(0); i < uint32(n); i++ {
				s := st
				s.ctmark = base + i
				out = append(out, tr.run(m[3], p, s)...)
			}
			return out
		case match(reDnatSlots, rule, &m):
			if m[1] != p.proto || !fam(m[2]) {
				continue
			}
			e := tr.tbl.Maps[m[3]].FindElement(fmt.Sprintf("%#x", st.ctmark))
			if e == nil {
				tr.t.Fatalf("tracer: slot %#x missing from %s", st.ctmark, m[3])
			}
			st.dnat = netip.AddrPortFrom(netip.MustParseAddr(e.Value[0]), uint16(atoi(tr.t, e.Value[1]))).String()
			st.verdict = "accept"
			return []state{st}
		case match(reCtMarkZero, rule, &m):
			if st.ctmark&hex(tr.t, m[1]) == hex(tr.t, m[2]) {
				st.ctmark = 0
			}
		case match(reSaddrSet, rule, &m):
			// A timeout set holds affinity state, another set (pod
			// CIDRs) its elements.
			in := tr.affinity[m[2]][p.src]
			if !tr.isTimeoutSet(m[2]) {
				in = tr.inSet(m[2], p.src)
			}
			if fam(m[1]) && in {
				return tr.run(m[3], p, st)
			}
		case match(reFibLocal, rule, &m):
			// The node's own addresses are its local ones.
			if !slices.Contains(tr.node, p.src) {
				continue
			}
			res := tr.run(m[2], p, st)
			if m[1] == "goto" {
				return res
			}
			return tr.continueAfter(chain, i, p, res)
		case match(reUpdate, rule, &m):
			if tr.affinity[m[1]] == nil {
				tr.affinity[m[1]] = map[netip.Addr]bool{}
			}
			tr.affinity[m[1]][p.src] = true
		case match(reDnatFixed, rule, &m):
			if m[1] == p.proto && fam(m[2]) {
				st.dnat, st.verdict = m[3], "accept"
				return []state{st}
			}
		case match(reNumgenVmap, rule, &m):
			var out []state
			for _, choice := range strings.Split(m[2], " , ") {
				_, target, ok := strings.Cut(choice, " : goto ")
				if !ok {
					tr.t.Fatalf("tracer: vmap choice %q", choice)
				}
				out = append(out, tr.run(target, p, st)...)
			}
			return out
		case match(reSaddrAnon, rule, &m):
			if !fam(m[1]) {
				continue
			}
			for _, s := range strings.Split(m[2], ", ") {
				if netip.MustParsePrefix(s).Contains(p.src) {
					return tr.run(m[3], p, st)
				}
			}
		default:
			tr.t.Fatalf("tracer: chain %s has a rule shape the tracer does not know: %q", chain, rule)
		}
	}
	return []state{st}
}

// continueAfter resumes chain after rule i for every state that came back
// from a jump without a verdict.
func (tr *tracer) continueAfter(chain string, i int, p packet, res []state) []state {
	var out []state
	for _, s := range res {
		if s.verdict != "" {
			out = append(out, s)
			continue
		}
		out = append(out, tr.runFrom(chain, i+1, p, s)...)
	}
	return out
}

// verdictElement follows a map element's "goto X" (or "jump X").
func (tr *tracer) verdictElement(chain string, i int, v string, p packet, st state) []state {
	var m []string
	if !match(reJump, v, &m) {
		tr.t.Fatalf("tracer: verdict %q", v)
	}
	res := tr.run(m[2], p, st)
	if m[1] == "goto" {
		return res
	}
	return tr.continueAfter(chain, i, p, res)
}

func (tr *tracer) lookup(mapName string, key ...string) string {
	m := tr.tbl.Maps[mapName]
	if m == nil {
		tr.t.Fatalf("tracer: no map %q", mapName)
	}
	if e := m.FindElement(key...); e != nil {
		return strings.Join(e.Value, " ")
	}
	return ""
}

func (tr *tracer) inSet(name string, a netip.Addr) bool {
	s := tr.tbl.Sets[name]
	if s == nil {
		tr.t.Fatalf("tracer: no set %q", name)
	}
	for _, e := range s.Elements {
		if p, err := netip.ParsePrefix(e.Key[0]); err == nil && p.Contains(a) {
			return true
		}
		if x, err := netip.ParseAddr(e.Key[0]); err == nil && x == a {
			return true
		}
	}
	return false
}

// isTimeoutSet says whether the set holds dynamic state (affinity).
func (tr *tracer) isTimeoutSet(name string) bool {
	s := tr.tbl.Sets[name]
	if s == nil {
		tr.t.Fatalf("tracer: no set %q", name)
	}
	return slices.Contains(s.Flags, knftables.TimeoutFlag)
}

func (tr *tracer) inSetPair(name string, a, b netip.Addr) bool {
	return tr.tbl.Sets[name].FindElement(a.String(), b.String()) != nil
}

func match(re *regexp.Regexp, s string, m *[]string) bool {
	*m = re.FindStringSubmatch(s)
	return *m != nil
}

func hex(t *testing.T, s string) uint32 {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 32)
	if err != nil {
		t.Fatalf("tracer: mark %q", s)
	}
	return uint32(v)
}

func atoi(t *testing.T, s string) int {
	v, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("tracer: number %q", s)
	}
	return v
}
