package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/podnet/podnet/internal/flow"
)

// TestFlowsTable: a drop with its policy, a connection through a Service
// and its end with counters, in the table's columns.
func TestFlowsTable(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 0, 1, 234e6, time.Local)
	ep := func(ns, pod string, ip string, port uint16) flow.Endpoint {
		return flow.Endpoint{Namespace: ns, Pod: pod, IP: netip.MustParseAddr(ip), Port: port}
	}
	conn := flow.Record{Time: at, Node: "node-1", Event: flow.EventNew, Verdict: flow.Forwarded, Direction: "egress", Protocol: "TCP",
		Source: ep("default", "frontend", "10.244.0.4", 51234), Destination: ep("default", "web-1", "10.244.1.5", 80),
		Service: &flow.Service{Namespace: "default", Name: "web-lb", IP: netip.MustParseAddr("10.96.0.20"), Port: 80}}
	end := conn
	end.Event, end.Counters = flow.EventEnd, &flow.Counters{PacketsOut: 6, BytesOut: 400, PacketsIn: 4, BytesIn: 900}
	recs := []flow.Record{
		{Time: at, Node: "node-2", Event: flow.EventDrop, Verdict: flow.Dropped, Reason: "policy-denied", Direction: "ingress",
			Protocol: "TCP", Source: ep("default", "nginx-pod", "10.244.0.5", 48256), Destination: ep("default", "api", "10.244.1.3", 8080),
			Policies: []flow.Policy{{Direction: "ingress", IsolatedBy: []string{"default/api-allow"}, DefaultDeny: true}}},
		conn, end,
	}
	var out bytes.Buffer
	p := newRecordPrinter(&out, "table", false)
	for _, r := range recs {
		p.print(r)
	}
	if err := p.flush(); err != nil {
		t.Fatal(err)
	}
	want := `TIME          NODE    VERDICT                  DIRECTION  SOURCE                   DESTINATION       SERVICE            PROTO  POLICY
12:00:01.234  node-2  dropped (policy-denied)  ingress    default/nginx-pod:48256  default/api:8080  -                  TCP    ingress default deny (default/api-allow)
12:00:01.234  node-1  forwarded                egress     default/frontend:51234   default/web-1:80  default/web-lb:80  TCP    -
12:00:01.234  node-1  ended (400/900 B)        egress     default/frontend:51234   default/web-1:80  default/web-lb:80  TCP    -
`
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
	// An empty result still has the header.
	out.Reset()
	_ = newRecordPrinter(&out, "table", false).flush()
	if !strings.HasPrefix(out.String(), "TIME") {
		t.Errorf("empty table %q", out.String())
	}
	// Streamed, each row is aligned as it comes.
	out.Reset()
	p = newRecordPrinter(&out, "table", true)
	for _, r := range recs[:2] {
		p.print(r)
	}
	want = `TIME          NODE              VERDICT                  DIRECTION  SOURCE                          DESTINATION                     SERVICE                   PROTO  POLICY
12:00:01.234  node-2            dropped (policy-denied)  ingress    default/nginx-pod:48256         default/api:8080                -                         TCP    ingress default deny (default/api-allow)
12:00:01.234  node-1            forwarded                egress     default/frontend:51234          default/web-1:80                default/web-lb:80         TCP    -
`
	if out.String() != want {
		t.Errorf("streamed:\n%s\nwant:\n%s", out.String(), want)
	}
}

// TestFlowsOptions: bad combinations are refused; --since and --aggregate
// drop the default --last.
func TestFlowsOptions(t *testing.T) {
	for _, c := range []struct {
		name    string
		o       flowsOptions
		lastSet bool
		err     string
		last    int
	}{
		{"the default shows 20", flowsOptions{output: "table", q: flow.Query{Last: 20}}, false, "", 20},
		{"since shows all since", flowsOptions{output: "table", since: "5m", q: flow.Query{Last: 20}}, false, "", 0},
		{"since with --last keeps it", flowsOptions{output: "json", since: "5m", q: flow.Query{Last: 3}}, true, "", 3},
		{"aggregate counts all", flowsOptions{output: "table", aggregate: true, q: flow.Query{Last: 20}}, false, "", 0},
		{"yaml is no output", flowsOptions{output: "yaml"}, false, "--output", 0},
		{"aggregate does not follow", flowsOptions{output: "table", aggregate: true, follow: true}, false, "follow", 0},
		{"a bad verdict", flowsOptions{output: "table", q: flow.Query{Filter: flow.Filter{Verdict: "denied"}}}, false, "verdict", 0},
		{"a bad since", flowsOptions{output: "table", since: "yesterday"}, false, "since", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.o.complete(c.lastSet)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Errorf("error %v, want one about %s", err, c.err)
				}
				return
			}
			if err != nil || c.o.q.Last != c.last {
				t.Errorf("error %v, last %d; want %d", err, c.o.q.Last, c.last)
			}
		})
	}
}
