package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/podnet/podnet/internal/policy/status"
)

func TestStatusPoliciesTable(t *testing.T) {
	now := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	v := func(gen int64) *status.Version { return &status.Version{Generation: gen} }
	rows := []status.PolicyStatus{
		{Namespace: "prod", Name: "db", Current: status.Version{Generation: 3}, Nodes: []status.NodeStatus{
			{Node: "node-1", State: status.InForce, InForce: v(3), Since: now.Add(-90 * time.Second)},
			{Node: "node-2", State: status.Failed, InForce: v(2), Since: now.Add(-time.Hour), Error: "invalid CIDR"},
		}},
		{Namespace: "prod", Name: "web", Current: status.Version{Generation: 1}, Nodes: []status.NodeStatus{
			{Node: "node-1", State: status.InForce, InForce: v(1), Since: now.Add(-5 * time.Second)},
			{Node: "node-2", State: status.InForce, InForce: v(1), Since: now.Add(-4 * time.Second)},
		}},
	}
	for _, tc := range []struct{ output, want string }{
		{"table", `NAMESPACE  NAME  GENERATION  IN FORCE  SINCE  NOT IN FORCE
prod       db    3           1/2       90s    node-2 Failed
prod       web   1           2/2       4s     -
prod/db on node-2: Failed: invalid CIDR
`},
		{"wide", `NAMESPACE  NAME  GENERATION  NODE    STATE    ENFORCED  SINCE  ERROR
prod       db    3           node-1  InForce  3         90s    -
prod       db    3           node-2  Failed   2         60m    invalid CIDR
prod       web   1           node-1  InForce  1         5s     -
prod       web   1           node-2  InForce  1         4s     -
`},
	} {
		t.Run(tc.output, func(t *testing.T) {
			var out bytes.Buffer
			if err := printPolicyStatus(&out, rows, tc.output, now); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", out.String(), tc.want)
			}
		})
	}
	if err := printPolicyStatus(&bytes.Buffer{}, rows, "yaml", now); err == nil {
		t.Error("-o yaml: no error")
	}
}
