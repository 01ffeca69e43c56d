package main

import (
	"maps"
	"testing"
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
