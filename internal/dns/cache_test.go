package dns

import (
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

func cacheTestRR(t *testing.T, s string) mdns.RR {
	t.Helper()
	rr, err := mdns.NewRR(s)
	if err != nil {
		t.Fatalf("NewRR(%q): %v", s, err)
	}
	return rr
}

func TestCacheTTLFollowsRFC2308(t *testing.T) {
	const soaRR = "example.org. 60 IN SOA ns.example.org. hostmaster.example.org. 1 3600 600 86400 20"
	for _, tc := range []struct {
		name   string
		rcode  int
		answer []string
		ns     []string
		tc     bool
		want   time.Duration // 0: not cached
	}{
		{name: "positive: the smallest TTL", answer: []string{"a.example.org. 40 IN A 192.0.2.1", "a.example.org. 25 IN A 192.0.2.2"}, want: 25 * time.Second},
		{name: "positive: capped", answer: []string{"a.example.org. 86400 IN A 192.0.2.1"}, want: time.Minute},
		{name: "positive: TTL 0 is not cached", answer: []string{"a.example.org. 0 IN A 192.0.2.1"}},
		{name: "NXDOMAIN: min(SOA TTL, MINIMUM)", rcode: mdns.RcodeNameError, ns: []string{soaRR}, want: 20 * time.Second},
		{name: "NODATA: min(SOA TTL, MINIMUM)", ns: []string{"example.org. 10 IN SOA ns.example.org. h.example.org. 1 3600 600 86400 300"}, want: 10 * time.Second},
		{name: "NXDOMAIN without SOA is not cached", rcode: mdns.RcodeNameError},
		{name: "SERVFAIL is not cached", rcode: mdns.RcodeServerFailure, ns: []string{soaRR}},
		{name: "truncated is not cached", answer: []string{"a.example.org. 40 IN A 192.0.2.1"}, tc: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &mdns.Msg{MsgHdr: mdns.MsgHdr{Rcode: tc.rcode, Truncated: tc.tc}}
			for _, s := range tc.answer {
				m.Answer = append(m.Answer, cacheTestRR(t, s))
			}
			for _, s := range tc.ns {
				m.Ns = append(m.Ns, cacheTestRR(t, s))
			}
			got, ok := cacheTTL(m, time.Minute)
			if ok != (tc.want > 0) || got != tc.want {
				t.Errorf("cacheTTL = %v, %v; want %v", got, ok, tc.want)
			}
		})
	}
}

func TestCacheAgesTTLsExpiresAndEvictsLeastRecentlyUsed(t *testing.T) {
	c := newCache(2, time.Hour)
	t0 := time.Unix(1_000_000, 0)
	msg := func(name string) *mdns.Msg {
		return &mdns.Msg{Answer: []mdns.RR{cacheTestRR(t, name+" 30 IN A 192.0.2.1")}}
	}
	key := func(name string) cacheKey {
		return keyOf(mdns.Question{Name: name, Qtype: mdns.TypeA, Qclass: mdns.ClassINET}, false)
	}
	c.add(key("a.example.org."), msg("a.example.org."), t0)
	got, ok := c.get(key("A.Example.org."), t0.Add(12*time.Second+500*time.Millisecond))
	if !ok {
		t.Fatal("miss for another spelling of a cached name")
	}
	if ttl := got.Answer[0].Header().Ttl; ttl != 18 {
		t.Errorf("TTL after 12.5 s: %d, want 18", ttl)
	}
	got.Answer[0].Header().Ttl = 999 // the caller owns its copy
	if again, _ := c.get(key("a.example.org."), t0); again.Answer[0].Header().Ttl != 30 {
		t.Errorf("a caller's change reached the cache: TTL %d", again.Answer[0].Header().Ttl)
	}
	if _, ok := c.get(key("a.example.org."), t0.Add(30*time.Second)); ok {
		t.Error("hit after the TTL ran out")
	}
	if c.len() != 0 {
		t.Errorf("%d entries after expiry, want 0", c.len())
	}

	if _, ok := c.get(keyOf(mdns.Question{Name: "a.example.org.", Qtype: mdns.TypeA, Qclass: mdns.ClassINET}, true), t0); ok {
		t.Error("a DO question hit a plain entry")
	}
	c.add(key("a.example.org."), msg("a.example.org."), t0)
	c.add(key("b.example.org."), msg("b.example.org."), t0)
	c.get(key("a.example.org."), t0) // a is now the most recently used
	c.add(key("c.example.org."), msg("c.example.org."), t0)
	if _, ok := c.get(key("b.example.org."), t0); ok {
		t.Error("b survived; the least recently used entry should have been evicted")
	}
	for _, n := range []string{"a.example.org.", "c.example.org."} {
		if _, ok := c.get(key(n), t0); !ok {
			t.Errorf("%s was evicted", n)
		}
	}
	if c.len() != 2 {
		t.Errorf("%d entries, want the bound 2", c.len())
	}
}
