package flow

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func rec(i int, verdict string) Record {
	return Record{Time: t0.Add(time.Duration(i) * time.Second), Node: "node-1", Event: EventNew, Verdict: verdict,
		Protocol: "TCP", Source: Endpoint{IP: netip.MustParseAddr("10.244.1.20"), Namespace: "shop", Pod: "client"},
		Destination: Endpoint{IP: netip.MustParseAddr("10.244.1.10"), Port: uint16(i), Namespace: "shop", Pod: "web"}}
}

func ports(rs []Record) []int {
	var out []int
	for _, r := range rs {
		out = append(out, int(r.Destination.Port))
	}
	return out
}

// TestRingKeepsTheNewestWithinItsSize: the ring never holds more than its
// size; the oldest go first; Snapshot's last and filter.
func TestRingKeepsTheNewestWithinItsSize(t *testing.T) {
	g := NewRing(5, nil)
	for i := 1; i <= 12; i++ {
		g.Add(rec(i, Forwarded))
		if g.Len() > 5 {
			t.Fatalf("after %d records the ring holds %d", i, g.Len())
		}
	}
	if got := ports(g.Snapshot(Filter{}, 0)); !slices.Equal(got, []int{8, 9, 10, 11, 12}) {
		t.Errorf("held %v", got)
	}
	if got := ports(g.Snapshot(Filter{}, 2)); !slices.Equal(got, []int{11, 12}) {
		t.Errorf("last 2: %v", got)
	}
	if got := ports(g.Snapshot(Filter{Since: t0.Add(10 * time.Second)}, 0)); !slices.Equal(got, []int{10, 11, 12}) {
		t.Errorf("since: %v", got)
	}
}

// TestFollowMissesNothingAndCountsASlowReader: a follower gets the backlog
// and every later record; one that does not read loses records, counted.
func TestFollowMissesNothingAndCountsASlowReader(t *testing.T) {
	lost := 0
	g := NewRing(RingSize, func() { lost++ })
	g.Add(rec(1, Forwarded))
	backlog, ch, stop := g.Follow(Filter{}, 0)
	g.Add(rec(2, Forwarded))
	if len(backlog) != 1 || (<-ch).Destination.Port != 2 {
		t.Fatalf("backlog %v", ports(backlog))
	}
	for i := 0; i < followBuffer+10; i++ {
		g.Add(rec(3, Forwarded))
	}
	if lost != 10 {
		t.Errorf("a follower that did not read lost %d records, counted %d", 10, lost)
	}
	stop()
	g.Add(rec(4, Forwarded)) // no longer offered
	if lost != 10 {
		t.Errorf("a stopped follower still counts")
	}
}

// TestFilter: each field, and its query encoding round trip.
func TestFilter(t *testing.T) {
	v := testView()
	drop, _ := FromPacket("node-1", v, LoggedPacket{Time: t0, Prefix: "pn/pol/ingress", Payload: ipv4TCP("10.244.2.30", "10.244.1.10", 1, 8080)})
	svc, _ := FromEvent("node-1", v, t0.Add(time.Minute), ctEvent("new", "10.244.1.20", 2, "10.96.0.20", 80, "10.244.2.10", 8080))
	for _, c := range []struct {
		name string
		f    Filter
		want []bool // drop, svc
	}{
		{"everything", Filter{}, []bool{true, true}},
		{"dropped", Filter{Verdict: Dropped}, []bool{true, false}},
		{"forwarded", Filter{Verdict: Forwarded}, []bool{false, true}},
		{"namespace", Filter{Namespace: "other"}, []bool{false, false}},
		{"either end a pod", Filter{Namespace: "shop", Pod: "web-5d8f7c-a"}, []bool{true, false}},
		{"from a pod by ns/name", Filter{FromPod: "shop/client"}, []bool{false, true}},
		{"to a pod", Filter{ToPod: "shop/web-5d8f7c-b"}, []bool{false, true}},
		{"to a Service", Filter{Namespace: "shop", ToService: "web"}, []bool{false, true}},
		{"since", Filter{Since: t0.Add(time.Second)}, []bool{false, true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			back, err := FilterFromQuery(c.f.Values(), t0)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []Filter{c.f, back} {
				if got := []bool{f.Match(drop), f.Match(svc)}; got[0] != c.want[0] || got[1] != c.want[1] {
					t.Errorf("filter %+v matches %v, want %v", f, got, c.want)
				}
			}
		})
	}
	if _, err := FilterFromQuery(map[string][]string{"verdict": {"maybe"}}, t0); err == nil {
		t.Error("a bad verdict is accepted")
	}
	if f, err := FilterFromQuery(map[string][]string{"since": {"5m"}}, t0); err != nil || !f.Since.Equal(t0.Add(-5*time.Minute)) {
		t.Errorf("since=5m: %v %v", f.Since, err)
	}
}

// TestAggregate: records of the same workloads, port, verdict and policy
// in one window are one line; the window splits them.
func TestAggregate(t *testing.T) {
	v := testView()
	var rs []Record
	for i, c := range []struct {
		src string
		at  time.Duration
	}{{"10.244.2.30", 0}, {"10.244.2.30", 10 * time.Second}, {"10.244.2.30", 70 * time.Second}} {
		r, err := FromPacket("node-1", v, LoggedPacket{Time: t0.Add(c.at), Prefix: "pn/pol/ingress",
			Payload: ipv4TCP(c.src, "10.244.1.10", uint16(1000+i), 8080)})
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	r, _ := FromEvent("node-1", v, t0, ctEvent("new", "10.244.1.20", 2, "10.96.0.20", 80, "10.244.1.10", 8080))
	rs = append(rs, r)
	got := AggregateRecords(rs, time.Minute)
	var lines []string
	for _, a := range got {
		b, _ := json.Marshal(a)
		lines = append(lines, string(b))
	}
	want := []string{
		`{"start":"2026-12-07T05:00:00Z","source":"shop/pod/intruder","destination":"shop/Deployment/web","protocol":"TCP","port":8080,"verdict":"dropped","policy":"ingress default deny (shop/default-deny,shop/web-from-client)","records":2,"connections":0,"drops":2}`,
		`{"start":"2026-12-07T05:00:00Z","source":"shop/pod/client","destination":"shop/Deployment/web","protocol":"TCP","port":8080,"verdict":"forwarded","policy":"shop/web-from-client ingress[0]","records":1,"connections":1,"drops":0}`,
		`{"start":"2026-12-07T05:01:00Z","source":"shop/pod/intruder","destination":"shop/Deployment/web","protocol":"TCP","port":8080,"verdict":"dropped","policy":"ingress default deny (shop/default-deny,shop/web-from-client)","records":1,"connections":0,"drops":1}`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("aggregates:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if n := len(AggregateRecords(rs, 0)); n != 2 {
		t.Errorf("one window: %d lines, want 2", n)
	}
}

// TestHandlerServesAndFollows: GET /flows is JSON lines after the filter;
// follow=1 streams records added later.
func TestHandlerServesAndFollows(t *testing.T) {
	g := NewRing(RingSize, nil)
	g.Add(rec(1, Forwarded))
	g.Add(rec(2, Dropped))
	srv := httptest.NewServer(Handler(g))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/flows?verdict=dropped")
	if err != nil {
		t.Fatal(err)
	}
	var got []Record
	if err := decode(resp.Body, func(r Record) { got = append(got, r) }); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !slices.Equal(ports(got), []int{2}) || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Errorf("got %v (%s)", ports(got), resp.Header.Get("Content-Type"))
	}
	if resp, _ := http.Get(srv.URL + "/flows?last=x"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("last=x: %s", resp.Status)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/flows?follow=1&last=1", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var seen []int
	for len(seen) < 2 && sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, int(r.Destination.Port))
		if len(seen) == 1 {
			g.Add(rec(3, Forwarded))
		}
	}
	if !slices.Equal(seen, []int{2, 3}) {
		t.Errorf("follow saw %v, want the last one and the new one", seen)
	}
}

// TestRateLimitedPacketsAreCountedAsLost: the tables' excess counters show
// as podnet_flow_records_dropped_total{reason="rate-limit"}, beside the
// counted reasons.
func TestRateLimitedPacketsAreCountedAsLost(t *testing.T) {
	excess := uint64(0)
	m := NewMetrics(NewRing(8, nil), func(context.Context) (uint64, error) { return excess, nil })
	reg := prometheus.NewPedanticRegistry()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	excess = 37
	m.Dropped.WithLabelValues(LossNFLOGOverflow).Inc()
	want := `
# HELP podnet_flow_records_dropped_total ` + droppedHelp + `
# TYPE podnet_flow_records_dropped_total counter
podnet_flow_records_dropped_total{reason="conntrack-overflow"} 0
podnet_flow_records_dropped_total{reason="nflog-overflow"} 1
podnet_flow_records_dropped_total{reason="rate-limit"} 37
podnet_flow_records_dropped_total{reason="slow-reader"} 0
podnet_flow_records_dropped_total{reason="unparsable"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "podnet_flow_records_dropped_total"); err != nil {
		t.Error(err)
	}
}
