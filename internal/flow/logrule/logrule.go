// Package logrule is the contract between the nftables tables that log
// packets for flow records (podnet-policy's drops, podnet-proxy's rejects of
// Services without endpoints) and the agent's collector that reads them
// (package flow): the NFLOG group, the prefixes that name the deciding
// point, and the rate limit with its counted excess.
//
// It is a leaf package so that the table renderers and the collector share
// one definition without importing each other. Changing a prefix or the
// group changes the tables: their golden files and READMEs say so.
package logrule

import (
	"fmt"
	"strings"
)

// Group is the NFLOG group every podnet log statement sends to. NFLOG
// groups are per network namespace; one agent per node binds it.
const Group = 14

// Rate and Burst bound the packets each logging rule sends to Group: at
// most Rate per second after a burst of Burst. Packets over the limit are
// still dropped or rejected, but not logged: they are counted in the named
// counter ExcessCounter of the table instead (never silently lost).
const (
	Rate          = 100
	Burst         = 200
	ExcessCounter = "flowlog-excess"
)

// MaxPrefix is the longest log prefix nftables accepts (NF_LOG_PREFIXLEN
// is 128 bytes including the terminating NUL).
const MaxPrefix = 127

// Reason is why a logged packet was stopped.
type Reason string

const (
	// PolicyDenied: no NetworkPolicy allows the packet at an isolated
	// pod (the podnet-policy table's drop at the end of a direction's
	// chain). The isolating policies are resolved by the collector.
	PolicyDenied Reason = "policy-denied"
	// NoEndpoints: the packet went to a Service with no ready endpoint
	// and was rejected (podnet-proxy's reject-no-endpoints chain).
	NoEndpoints Reason = "no-endpoints"
)

// Prefix names the rule that logged a packet: the table, the reason and,
// for policy drops, the direction ("ingress" or "egress") whose chain
// dropped it.
type Prefix struct {
	Table     string // "policy" or "proxy"
	Reason    Reason
	Direction string // "ingress", "egress", or "" for the proxy
}

// The prefix text is "pn/" + a short code; the codes are listed here once.
var codes = map[string]Prefix{
	"pn/pol/ingress":   {"policy", PolicyDenied, "ingress"},
	"pn/pol/egress":    {"policy", PolicyDenied, "egress"},
	"pn/svc/no-endpts": {"proxy", NoEndpoints, ""},
}

// String is the log prefix text ("" for a prefix that has no code).
func (p Prefix) String() string {
	for code, q := range codes {
		if q == p {
			return code
		}
	}
	return ""
}

// Parse maps a log prefix back to the rule that wrote it.
func Parse(s string) (Prefix, error) {
	s = strings.TrimRight(s, " \x00")
	if p, ok := codes[s]; ok {
		return p, nil
	}
	return Prefix{}, fmt.Errorf("log prefix %q is not podnet's", s)
}

// PolicyDrop is the prefix of the policy table's drop for a direction.
func PolicyDrop(direction string) Prefix {
	return Prefix{"policy", PolicyDenied, direction}
}

// ServiceNoEndpoints is the prefix of the proxy's reject.
var ServiceNoEndpoints = Prefix{"proxy", NoEndpoints, ""}

// Rules returns the rules that end a chain with verdict (a statement such
// as "drop" or "goto chain"): packets over the rate limit are counted in
// ExcessCounter and get the verdict unlogged; the others are counted by the
// rule, logged to Group with p's prefix, and get the verdict.
func Rules(p Prefix, verdict string) []string {
	return []string{
		fmt.Sprintf("limit rate over %d/second burst %d packets counter name %q %s", Rate, Burst, ExcessCounter, verdict),
		fmt.Sprintf("counter log prefix %q group %d %s", p.String(), Group, verdict),
	}
}
