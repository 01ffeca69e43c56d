package plan

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestZonesDealNodesRoundRobinAndNameThem(t *testing.T) {
	c := DefaultConfig("pz")
	c.Nodes, c.Zones = 5, []string{"a", "b"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []struct{ zone, name string }{
		{"a", "pz-node-1.a"}, {"b", "pz-node-2.b"}, {"a", "pz-node-3.a"}, {"b", "pz-node-4.b"}, {"a", "pz-node-5.a"},
	}
	for i, w := range want {
		n := i + 1
		if got := c.NodeZone(n); got != w.zone {
			t.Errorf("NodeZone(%d) = %q, want %q", n, got, w.zone)
		}
		if got := c.NodeName(n); got != w.name {
			t.Errorf("NodeName(%d) = %q, want %q", n, got, w.name)
		}
		if got := c.NodeNSName(n); got != w.name {
			t.Errorf("NodeNSName(%d) = %q, want the Node name %q", n, got, w.name)
		}
		if !c.OwnsNamespace(c.NodeNSName(n)) {
			t.Errorf("the cluster does not own its node namespace %q", c.NodeNSName(n))
		}
		wantLabels := map[string]string{"topology.kubernetes.io/zone": w.zone, "topology.kubernetes.io/region": "local"}
		if got := c.NodeLabels(n); !reflect.DeepEqual(got, wantLabels) {
			t.Errorf("NodeLabels(%d) = %v, want %v", n, got, wantLabels)
		}
	}
}

func TestNoZonesKeepNamesAndSavedFormUnchanged(t *testing.T) {
	c := DefaultConfig("pz")
	if c.NodeName(2) != "pz-node-2" || c.NodeZone(2) != "" || c.NodeLabels(2) != nil {
		t.Errorf("without zones: node 2 is %q in zone %q with labels %v; want pz-node-2, no zone, no labels",
			c.NodeName(2), c.NodeZone(2), c.NodeLabels(2))
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "zones") {
		t.Errorf("a config without zones saves a zones field: %s", b)
	}
}

// A zoned cluster must still never claim another cluster's namespaces,
// and a cluster loaded without its zones (podnet down by name) must still
// find its zoned node namespaces.
func TestZonedOwnershipIsExact(t *testing.T) {
	x := DefaultConfig("x")
	xa := DefaultConfig("x-a")
	x5 := DefaultConfig("x-node-5")
	x5.Zones = []string{"world"}
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"x-node-1.a", true},
		{"x-node-12.zone-b", true},
		{"x-node-1.", false},
		{"x-node-.a", false},
		{"x-node-1.a.b", false},
		{"x-node-1.A", false},
		{"x-node-1.-a", false},
		{xa.NodeNSName(1), false},
		{x5.NodeNSName(1), false},
		{x5.WorldNSName(), false},
		{"x-a-node-1", false},
	} {
		if got := x.OwnsNamespace(tc.name); got != tc.want {
			t.Errorf("cluster x (no zones saved) owns namespace %q: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestValidateRejectsBadZones(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes int
		zones []string
		want  string
	}{
		{"an empty zone", 2, []string{"a", ""}, `zone "": want a DNS label`},
		{"a zone with a dot", 2, []string{"a.b"}, `zone "a.b": want a DNS label`},
		{"a zone with capitals", 2, []string{"A"}, `zone "A": want a DNS label`},
		{"a zone ending with a dash", 2, []string{"a-"}, `zone "a-"`},
		{"a zone of 64 characters", 2, []string{strings.Repeat("z", 64)}, "want a DNS label"},
		{"a zone given twice", 3, []string{"a", "b", "a"}, `zone "a" is given twice`},
		{"more zones than nodes", 2, []string{"a", "b", "c"}, "3 zones for 2 nodes"},
		{"a node name longer than 63", 2, []string{strings.Repeat("z", 50)}, "more than 63"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig("zones-test")
			c.Nodes, c.Zones = tc.nodes, tc.zones
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestValidateAcceptsTheLongestNodeNames(t *testing.T) {
	c := DefaultConfig(strings.Repeat("c", 20))
	c.Nodes = MaxNodes
	c.Zones = []string{strings.Repeat("z", MaxNodeNameLen-len(c.Name)-len("-node-50."))}
	if err := c.Validate(); err != nil {
		t.Fatalf("a node name of exactly %d characters: %v", MaxNodeNameLen, err)
	}
	if n := c.NodeName(MaxNodes); len(n) != MaxNodeNameLen {
		t.Fatalf("node name %q is %d characters, want %d", n, len(n), MaxNodeNameLen)
	}
}

func TestParseZones(t *testing.T) {
	for in, want := range map[string][]string{
		"":         nil,
		"  ":       nil,
		"a":        {"a"},
		"a,b, c ":  {"a", "b", "c"},
		"a,,b":     {"a", "", "b"},
		"eu-1,eu2": {"eu-1", "eu2"},
	} {
		if got := ParseZones(in); !reflect.DeepEqual(got, want) {
			t.Errorf("ParseZones(%q) = %q, want %q", in, got, want)
		}
	}
}
