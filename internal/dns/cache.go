package dns

import (
	"container/list"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// cacheKey identifies a forwarded question. The DO bit is part of it: a
// reply without DNSSEC records must not answer a client that asked for
// them, nor the other way round.
type cacheKey struct {
	name          string // lower case
	qtype, qclass uint16
	do            bool
}

func keyOf(q mdns.Question, do bool) cacheKey {
	return cacheKey{name: strings.ToLower(q.Name), qtype: q.Qtype, qclass: q.Qclass, do: do}
}

type cacheEntry struct {
	key cacheKey
	// msg holds Rcode, AuthenticatedData and the three sections (no
	// OPT); it is never modified once stored: get hands out copies.
	msg     *mdns.Msg
	stored  time.Time
	expires time.Time
}

// cache is a bounded LRU of upstream replies, positive and negative.
// It is safe for concurrent use.
type cache struct {
	// set at construction, read-only
	max    int
	maxTTL time.Duration

	mu sync.Mutex // guards the fields below
	ll *list.List // front: most recently used; values are *cacheEntry
	m  map[cacheKey]*list.Element
}

func newCache(size int, maxTTL time.Duration) *cache {
	return &cache{max: size, maxTTL: maxTTL, ll: list.New(), m: map[cacheKey]*list.Element{}}
}

// get returns a copy of the reply stored under k with its TTLs lowered by
// the time spent in the cache, or false when there is none or it expired.
func (c *cache) get(k cacheKey, now time.Time) (*mdns.Msg, bool) {
	c.mu.Lock()
	el, ok := c.m[k]
	if !ok {
		c.mu.Unlock()
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.ll.Remove(el)
		delete(c.m, k)
		c.mu.Unlock()
		return nil, false
	}
	c.ll.MoveToFront(el)
	c.mu.Unlock()

	elapsed := uint32(now.Sub(e.stored) / time.Second)
	left := uint32((e.expires.Sub(now) + time.Second - 1) / time.Second) // round up: never 0 while valid
	m := e.msg.Copy()
	for _, sec := range [][]mdns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			ttl := uint32(0)
			if h.Ttl > elapsed {
				ttl = h.Ttl - elapsed
			}
			h.Ttl = min(ttl, left)
		}
	}
	return m, true
}

// add stores m (which the caller must not modify afterwards) under k when
// it may be cached, evicting the least recently used entry when full.
func (c *cache) add(k cacheKey, m *mdns.Msg, now time.Time) {
	ttl, ok := cacheTTL(m, c.maxTTL)
	if !ok {
		return
	}
	e := &cacheEntry{key: k, msg: m, stored: now, expires: now.Add(ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[k]; ok {
		el.Value = e
		c.ll.MoveToFront(el)
		return
	}
	c.m[k] = c.ll.PushFront(e)
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*cacheEntry).key)
	}
}

// len is the number of entries, expired ones included.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// cacheTTL says how long a reply may be cached, capped at maxTTL:
//   - a positive answer (NOERROR with answers): the smallest TTL of its
//     records;
//   - a negative one (NXDOMAIN, or NODATA: NOERROR without answers): per
//     RFC 2308 §5, the smaller of the authority SOA's own TTL and its
//     MINIMUM field; without a SOA it is not cached (RFC 2308 §5);
//   - anything else (SERVFAIL, REFUSED, truncated replies) is not cached,
//     nor is a reply whose TTL is 0.
func cacheTTL(m *mdns.Msg, maxTTL time.Duration) (time.Duration, bool) {
	if m.Truncated {
		return 0, false
	}
	var ttl uint32
	switch {
	case m.Rcode == mdns.RcodeSuccess && len(m.Answer) > 0:
		ttl = ^uint32(0)
		for _, sec := range [][]mdns.RR{m.Answer, m.Ns, m.Extra} {
			for _, rr := range sec {
				if rr.Header().Rrtype != mdns.TypeOPT {
					ttl = min(ttl, rr.Header().Ttl)
				}
			}
		}
	case m.Rcode == mdns.RcodeSuccess || m.Rcode == mdns.RcodeNameError:
		var soa *mdns.SOA
		for _, rr := range m.Ns {
			if s, ok := rr.(*mdns.SOA); ok {
				soa = s
				break
			}
		}
		if soa == nil {
			return 0, false
		}
		ttl = min(soa.Hdr.Ttl, soa.Minttl)
	default:
		return 0, false
	}
	d := min(time.Duration(ttl)*time.Second, maxTTL)
	return d, d > 0
}
