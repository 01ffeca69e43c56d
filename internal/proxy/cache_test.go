package proxy

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// mapSource is a ServiceSource over maps; reads counts Service lookups.
type mapSource struct {
	svcs   map[string]*v1.Service
	slices map[string][]*discoveryv1.EndpointSlice
	reads  int
	err    error
}

func (m *mapSource) ServiceKeys() ([]string, error) {
	if m.err != nil {
		return nil, m.err
	}
	var out []string
	for k := range m.svcs {
		out = append(out, k)
	}
	return out, nil
}

func (m *mapSource) Service(key string) (*v1.Service, []*discoveryv1.EndpointSlice, error) {
	if m.err != nil {
		return nil, nil, m.err
	}
	m.reads++
	return m.svcs[key], m.slices[key], nil
}

func keysOf(sps []*ServicePort) []string {
	var out []string
	for _, sp := range sps {
		out = append(out, sp.Key())
	}
	slices.Sort(out)
	return out
}

func TestPortCacheRebuildsOnlyMarkedServices(t *testing.T) {
	src := &mapSource{svcs: map[string]*v1.Service{}, slices: map[string][]*discoveryv1.EndpointSlice{}}
	for i := range 5 {
		name := fmt.Sprintf("svc-%d", i)
		src.svcs["default/"+name] = svc("default", name, fmt.Sprintf("10.96.0.%d", 10+i), 80, 8080, 0)
		src.slices["default/"+name] = []*discoveryv1.EndpointSlice{slice("default", name, "", 8080, ep(fmt.Sprintf("10.244.1.%d", 2+i), "node-1", true, false))}
	}
	c := NewPortCache()
	topo := Topology{Node: "node-1"}
	changes, err := c.Update(topo, src)
	if err != nil {
		t.Fatal(err)
	}
	first := c.All()
	if len(first) != 5 || src.reads != 5 || len(changes) != 5 {
		t.Fatalf("first update: %d ports, %d changes after %d reads, want 5, 5 and 5", len(first), len(changes), src.reads)
	}
	byKey := map[string]*ServicePort{}
	for _, sp := range first {
		byKey[sp.Key()] = sp
	}

	// One Service's slice changes, another is deleted.
	src.slices["default/svc-1"][0] = slice("default", "svc-1", "", 8080, ep("10.244.1.99", "node-1", true, false))
	delete(src.svcs, "default/svc-3")
	c.Mark("default/svc-1")
	c.Mark("default/svc-3")
	src.reads = 0
	changes, err = c.Update(topo, src)
	if err != nil {
		t.Fatal(err)
	}
	if src.reads != 2 {
		t.Errorf("second update read %d Services, want only the 2 marked", src.reads)
	}
	var got []string
	for _, ch := range changes {
		got = append(got, fmt.Sprintf("%s %v", ch.Key, ch.Port != nil))
	}
	slices.Sort(got)
	if want := []string{"default/svc-1/tcp/80 true", "default/svc-3/tcp/80 false"}; !slices.Equal(got, want) {
		t.Errorf("changes = %v, want %v", got, want)
	}
	second := c.All()
	if got, want := keysOf(second), []string{"default/svc-0/tcp/80", "default/svc-1/tcp/80", "default/svc-2/tcp/80", "default/svc-4/tcp/80"}; !slices.Equal(got, want) {
		t.Errorf("ports = %v, want %v", got, want)
	}
	for _, sp := range second {
		old := byKey[sp.Key()]
		if sp.Name == "svc-1" {
			if sp == old || sp.Endpoints[0].IP.String() != "10.244.1.99" {
				t.Errorf("svc-1 was not rebuilt: %+v", sp.Endpoints)
			}
		} else if sp != old {
			t.Errorf("%s was rebuilt though not marked", sp.Key())
		}
	}

	// A failed read keeps the marks for the next update.
	c.Mark("default/svc-2")
	src.err = errors.New("cache not ready")
	if _, err := c.Update(topo, src); err == nil {
		t.Fatal("update with a failing source succeeded")
	}
	src.err, src.reads = nil, 0
	if _, err := c.Update(topo, src); err != nil {
		t.Fatal(err)
	}
	if src.reads != 1 {
		t.Errorf("after a failure, %d Services read, want the 1 still marked", src.reads)
	}

	// A new zone rebuilds everything.
	src.reads = 0
	if _, err := c.Update(Topology{Node: "node-1", Zone: "b"}, src); err != nil {
		t.Fatal(err)
	}
	if src.reads != 4 {
		t.Errorf("after a topology change, %d Services read, want all 4", src.reads)
	}
}
