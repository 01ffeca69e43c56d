package policy

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/podnet/podnet/internal/flow/logrule"
)

// packet is what the tracer follows: a new connection's first packet.
type packet struct {
	src, dst netip.Addr
	proto    string // tcp, udp, sctp, icmp
	port     int
}

var (
	reJumpIfIn  = regexp.MustCompile(`^(ip6?) (saddr|daddr) @(\S+) jump (\S+)$`)
	reLogDrop   = regexp.MustCompile(`^counter log prefix "([^"]+)" group \d+ drop$`)
	reLookupRet = regexp.MustCompile(`^(ip6?) (saddr|daddr) \. (ip6?) (saddr|daddr)( \. meta l4proto \. th dport)? @(\S+) return$`)
)

// traceForward walks the fake table's forward chain for p and returns
// "accept" or "drop". It fails the test on a rule it does not know.
func traceForward(t *testing.T, f *knftables.Fake, p packet) string {
	t.Helper()
	return traceChain(t, f, "forward", p)
}

func traceChain(t *testing.T, f *knftables.Fake, chain string, p packet) string {
	t.Helper()
	c := f.Table.Chains[chain]
	if c == nil {
		t.Fatalf("no chain %s", chain)
	}
	for _, r := range c.Rules {
		rule := r.Rule
		var m []string
		switch {
		case rule == "ct state established,related accept":
			// a new connection: no match
		case strings.HasPrefix(rule, "limit rate over "):
			// one packet is never over the flow log's rate limit
		case match(reLogDrop, rule, &m):
			// The logged drop must name its own chain's direction.
			if want := logrule.PolicyDrop(strings.Split(chain, "-")[0]).String(); m[1] != want {
				t.Fatalf("tracer: chain %s logs prefix %q, want %q", chain, m[1], want)
			}
			return "drop"
		case match(reJumpIfIn, rule, &m):
			if (m[1] == "ip") != p.src.Is4() {
				continue
			}
			if setHas(t, f, m[3], []string{addrOf(p, m[2]).String()}) {
				if v := traceChain(t, f, m[4], p); v != "return" {
					return v
				}
			}
		case match(reLookupRet, rule, &m):
			if (m[1] == "ip") != p.src.Is4() {
				continue
			}
			key := []string{addrOf(p, m[2]).String(), addrOf(p, m[4]).String()}
			if m[5] != "" {
				key = append(key, p.proto, strconv.Itoa(p.port))
			}
			if setHas(t, f, m[6], key) {
				return "return"
			}
		default:
			t.Fatalf("tracer: unknown rule shape in %s: %q", chain, rule)
		}
	}
	if c.Hook != nil {
		return "accept" // base chains accept by default
	}
	return "return"
}

func match(re *regexp.Regexp, s string, m *[]string) bool {
	*m = re.FindStringSubmatch(s)
	return *m != nil
}

func addrOf(p packet, which string) netip.Addr {
	if which == "saddr" {
		return p.src
	}
	return p.dst
}

// setHas says whether a set's elements match key, field by field: an
// address against an address, prefix or range; a protocol by name; a port
// against a port or range.
func setHas(t *testing.T, f *knftables.Fake, name string, key []string) bool {
	t.Helper()
	s := f.Table.Sets[name]
	if s == nil {
		t.Fatalf("no set %s", name)
	}
	for _, e := range s.Elements {
		if len(e.Key) != len(key) {
			t.Fatalf("set %s: element %v has %d fields, the lookup %d", name, e.Key, len(e.Key), len(key))
		}
		ok := true
		for i := range key {
			if !fieldMatches(t, e.Key[i], key[i]) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func fieldMatches(t *testing.T, elem, v string) bool {
	t.Helper()
	if a, err := netip.ParseAddr(v); err == nil {
		r, err := parseRange(elem)
		if err != nil {
			t.Fatalf("element field %q: %v", elem, err)
		}
		return r.Contains(a)
	}
	if n, err := strconv.Atoi(v); err == nil {
		lo, hi, _ := strings.Cut(elem, "-")
		if hi == "" {
			hi = lo
		}
		l, err1 := strconv.Atoi(lo)
		h, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil {
			t.Fatalf("element port field %q", elem)
		}
		return l <= n && n <= h
	}
	return elem == v
}

func parseRange(s string) (Range, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Range{}, err
		}
		return prefixRange(p), nil
	}
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		l, err1 := netip.ParseAddr(lo)
		h, err2 := netip.ParseAddr(hi)
		if err1 != nil || err2 != nil || l.Compare(h) > 0 {
			return Range{}, fmt.Errorf("bad range %q", s)
		}
		return Range{l, h}, nil
	}
	a, err := netip.ParseAddr(s)
	return Range{a, a}, err
}

// traceCluster follows p through the forward chains of the nodes it
// crosses: the source pod's node (egress), then the destination pod's node
// (ingress) when it is another one. Addresses of no pod cross no node's
// policy.
func traceCluster(t *testing.T, c *Compiled, tables map[string]*knftables.Fake, p packet) string {
	t.Helper()
	var nodes []string
	if sp := c.PodByIP(p.src); sp != nil {
		nodes = append(nodes, sp.Node)
	}
	if dp := c.PodByIP(p.dst); dp != nil && (len(nodes) == 0 || nodes[0] != dp.Node) {
		nodes = append(nodes, dp.Node)
	}
	for _, n := range nodes {
		if v := traceForward(t, tables[n], p); v != "accept" {
			return v
		}
	}
	return "accept"
}
