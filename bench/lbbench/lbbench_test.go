package main

import (
	"maps"
	"testing"
	"time"
)

func TestParseSampleReadsNameLabelsAndValue(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       string
		labels     map[string]string
		v          float64
		ok         bool
	}{
		{"a counter with labels", `apiserver_request_total{code="200",resource="leases",verb="PUT"} 42`,
			"apiserver_request_total", map[string]string{"code": "200", "resource": "leases", "verb": "PUT"}, 42, true},
		{"a label with an escaped quote and a comma", `m{a="x\"y,z",b=""} 1.5e+02`, "m", map[string]string{"a": `x"y,z`, "b": ""}, 150, true},
		{"no labels", `up 1`, "up", map[string]string{}, 1, true},
		{"a comment", `# TYPE up counter`, "", nil, 0, false},
		{"no value", `m{a="b"}`, "", nil, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, labels, v, ok := parseSample(tc.line)
			if ok != tc.ok || name != tc.want || v != tc.v || (tc.ok && !maps.Equal(labels, tc.labels)) {
				t.Errorf("parseSample(%q) = %q %v %v %v, want %q %v %v %v", tc.line, name, labels, v, ok, tc.want, tc.labels, tc.v, tc.ok)
			}
		})
	}
}

func TestWindowIsTheLongestTimeBetweenRepliesAndCountsTheLost(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	p := &prober{}
	// Sent every 10 ms; the ones sent at 20..40 ms got no reply; the reply
	// to the one sent at 50 ms came late, at 120 ms: gaps are between
	// replies in the order they arrived.
	for _, s := range []struct{ sent, reply int }{{0, 2}, {10, 12}, {20, -1}, {30, -1}, {40, -1}, {50, 120}, {60, 62}} {
		smp := &sample{sent: at(s.sent)}
		if s.reply >= 0 {
			smp.reply = at(s.reply)
		}
		p.samples = append(p.samples, smp)
	}
	gap, sent, lost := p.window(at(0), at(70))
	if gap != 58*time.Millisecond || sent != 7 || lost != 3 {
		t.Errorf("window = gap %s, %d sent, %d lost; want 58ms (replies by arrival: 62 → 120 ms), 7, 3", gap, sent, lost)
	}
	if gap, sent, _ := p.window(at(20), at(50)); gap != 30*time.Millisecond || sent != 3 {
		t.Errorf("a window with no reply: gap %s, %d sent; want its length 30ms, 3", gap, sent)
	}
}
