package logrule

import (
	"strings"
	"testing"
)

// TestPrefixRoundTrip: every prefix a table writes parses back to the same
// rule, fits nftables' limit, and nothing else parses.
func TestPrefixRoundTrip(t *testing.T) {
	all := []Prefix{PolicyDrop("ingress"), PolicyDrop("egress"), ServiceNoEndpoints}
	seen := map[string]bool{}
	for _, p := range all {
		s := p.String()
		if s == "" || len(s) > MaxPrefix {
			t.Errorf("%+v: prefix %q is empty or longer than %d bytes", p, s, MaxPrefix)
		}
		if seen[s] {
			t.Errorf("prefix %q names two rules", s)
		}
		seen[s] = true
		// The kernel hands the prefix back NUL-terminated.
		got, err := Parse(s + "\x00")
		if err != nil || got != p {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", s, got, err, p)
		}
	}
	if len(seen) != len(codes) {
		t.Errorf("%d codes, %d tested", len(codes), len(seen))
	}
	for _, s := range []string{"", "pn/pol/", "pn/pol/ingressX", "IN=eth0"} {
		if p, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", s, p)
		}
	}
	if s := PolicyDrop("sideways").String(); s != "" {
		t.Errorf("an unknown direction has prefix %q", s)
	}
}

// TestRulesCountTheExcess: the limited rule comes first and counts what it
// does not log; both end in the verdict.
func TestRulesCountTheExcess(t *testing.T) {
	r := Rules(PolicyDrop("ingress"), "drop")
	want := []string{
		`limit rate over 100/second burst 200 packets counter name "flowlog-excess" drop`,
		`counter log prefix "pn/pol/ingress" group 14 drop`,
	}
	if strings.Join(r, "\n") != strings.Join(want, "\n") {
		t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(r, "\n"), strings.Join(want, "\n"))
	}
}
