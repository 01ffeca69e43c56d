package trace

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/podnet/podnet/internal/dns"
)

// ResolvConf is the part of a pod's /etc/resolv.conf that decides which
// names its resolver asks for: the search path and ndots.
type ResolvConf struct {
	Search []string `json:"search,omitempty"`
	Ndots  int      `json:"ndots"`
}

// ClusterFirstResolvConf is the resolv.conf the kubelet writes for a pod
// of namespace ns with dnsPolicy ClusterFirst (the default) in a cluster
// whose domain is domain, without the node's own search domains.
func ClusterFirstResolvConf(ns, domain string) ResolvConf {
	return ResolvConf{Search: []string{ns + ".svc." + domain, "svc." + domain, domain}, Ndots: 5}
}

// ParseResolvConf reads the search (or domain: the last one wins, as in
// glibc) and options ndots lines of a resolv.conf; ndots is 1 when not
// given, glibc's default.
func ParseResolvConf(text string) ResolvConf {
	rc := ResolvConf{Ndots: 1}
	for _, line := range strings.Split(text, "\n") {
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "search" || f[0] == "domain":
			rc.Search = nil
			for _, d := range f[1:] {
				if d = strings.Trim(d, "."); d != "" {
					rc.Search = append(rc.Search, d)
				}
			}
		case f[0] == "options":
			for _, o := range f[1:] {
				if v, ok := strings.CutPrefix(o, "ndots:"); ok {
					if n, err := strconv.Atoi(v); err == nil && n >= 0 {
						rc.Ndots = min(n, 15) // glibc caps it at 15
					}
				}
			}
		}
	}
	return rc
}

// Candidates are the names a stub resolver asks for, in order, when
// looking up name: a name ending in a dot is asked as it is; a name with
// at least ndots dots is asked as it is first and then with each search
// domain; a shorter one is asked with each search domain first.
func (rc ResolvConf) Candidates(name string) []string {
	if strings.HasSuffix(name, ".") {
		return []string{strings.ToLower(name)}
	}
	name = strings.ToLower(name)
	var searched []string
	for _, d := range rc.Search {
		searched = append(searched, name+"."+strings.ToLower(d)+".")
	}
	if strings.Count(name, ".") >= rc.Ndots {
		return append([]string{name + "."}, searched...)
	}
	return append(searched, name+".")
}

// DNSStage is what the pod's resolver does with a name: the names it
// asks for in order and what the cluster's DNS answers each.
type DNSStage struct {
	Name       string     `json:"name"`
	ResolvConf ResolvConf `json:"resolvConf"`
	Tries      []DNSTry   `json:"tries"`
	// Addrs are the addresses of the answer (empty when none came).
	Addrs []netip.Addr `json:"addrs,omitempty"`
	// Forwarded names the first name that left the cluster zone: the DNS
	// server sends it upstream, whose answer trace cannot know.
	Forwarded string `json:"forwarded,omitempty"`
}

// DNSTry is one question the resolver asks and the answer.
type DNSTry struct {
	Name string `json:"name"`
	// Answer is NXDOMAIN, NODATA, an address list, "CNAME NAME", or
	// "forwarded upstream".
	Answer string `json:"answer"`
}

// Resolved says whether the cluster's records gave an address.
func (s *DNSStage) Resolved() bool { return len(s.Addrs) > 0 }

// ResolveName resolves name as a pod with resolv.conf rc would, against
// the cluster zone z (which holds the cluster's records; see dns.Build):
// A records for IPv4 (AAAA when v6). It stops at the first name that
// answers with addresses, and at the first name outside the zone, which
// the server forwards upstream.
func ResolveName(z *dns.Zone, rc ResolvConf, name string, v6 bool) *DNSStage {
	st := &DNSStage{Name: name, ResolvConf: rc}
	qtype := mdns.TypeA
	if v6 {
		qtype = mdns.TypeAAAA
	}
	for _, c := range rc.Candidates(name) {
		reply, inZone := z.Answer(mdns.Question{Name: c, Qtype: qtype, Qclass: mdns.ClassINET})
		if !inZone {
			st.Tries = append(st.Tries, DNSTry{Name: c, Answer: "forwarded upstream"})
			st.Forwarded = c
			return st
		}
		try := DNSTry{Name: c}
		switch {
		case reply.Rcode == mdns.RcodeNameError:
			try.Answer = "NXDOMAIN"
		case reply.Rcode != mdns.RcodeSuccess:
			try.Answer = mdns.RcodeToString[reply.Rcode]
		case len(reply.Answer) == 0:
			try.Answer = "NODATA"
		}
		var target string
		for _, rr := range reply.Answer {
			switch rr := rr.(type) {
			case *mdns.A:
				st.Addrs = append(st.Addrs, netip.AddrFrom4([4]byte(rr.A.To4())))
			case *mdns.AAAA:
				st.Addrs = append(st.Addrs, netip.AddrFrom16([16]byte(rr.AAAA.To16())))
			case *mdns.CNAME:
				target = rr.Target
			}
		}
		if len(st.Addrs) > 0 {
			try.Answer = joinAddrs(st.Addrs)
			st.Tries = append(st.Tries, try)
			return st
		}
		if target != "" {
			try.Answer = "CNAME " + target
			st.Tries = append(st.Tries, try)
			if _, in := z.Parse(strings.ToLower(target)); !in {
				st.Forwarded = target // the server asks its upstream for the target
			}
			return st
		}
		st.Tries = append(st.Tries, try)
	}
	return st
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, " ")
}

// format writes the DNS step.
func (s *DNSStage) format(b *strings.Builder) {
	fmt.Fprintf(b, "dns: %s (search %s, ndots:%d)\n", s.Name, strings.Join(s.ResolvConf.Search, " "), s.ResolvConf.Ndots)
	for _, t := range s.Tries {
		fmt.Fprintf(b, "  %s -> %s\n", t.Name, t.Answer)
	}
	switch {
	case s.Resolved():
	case s.Forwarded != "":
		fmt.Fprintf(b, "  %s leaves the cluster zone: the cluster DNS forwards it upstream (trace cannot know that answer)\n", s.Forwarded)
	default:
		b.WriteString("  no address: the name does not resolve in the cluster\n")
	}
}
