package proxy

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"
)

// TestSameRenderCoversWhatTheRendererReads: an incremental sync re-renders
// a changed Service port only when sameRender says it differs from the one
// its fragment was rendered from, so a field the renderer reads but
// sameRender leaves out makes syncs miss changes. Starting
// from every Service port of the golden clusters (and from their Configs),
// it changes one field at a time, found by reflection down to the fields of
// each endpoint, and requires that whenever the table a full sync writes
// changes, sameRender (and for a Config, its fingerprint) tells the two
// apart.
func TestSameRenderCoversWhatTheRendererReads(t *testing.T) {
	changedTables := 0
	for _, c := range goldenClusters() {
		for _, base := range BuildServicePorts("node-1", c.svcs, c.slices) {
			missed, changed := uncovered(t, c.cfg, base, sameRender)
			changedTables += changed
			for _, v := range missed {
				t.Errorf("%s: changing %s changes the table but sameRender sees no difference", base.Key(), v.name)
			}
		}
		sps := BuildServicePorts("node-1", c.svcs, c.slices)
		want := mustDump(t, c.cfg, sps...)
		for _, v := range variants(reflect.ValueOf(c.cfg), "Config") {
			cfg := v.value.Interface().(Config)
			got, err := dumpOf(cfg, sps...)
			if err != nil {
				t.Errorf("%s, %s: %v", c.file, v.name, err)
				continue
			}
			if got != want {
				changedTables++
				if cfg.fingerprint() == c.cfg.fingerprint() {
					t.Errorf("%s: changing %s changes the table but not the Config's fingerprint", c.file, v.name)
				}
			}
		}
	}
	// A walk that never changes the table proves nothing.
	t.Logf("%d changes of one field changed the table", changedTables)
	if changedTables < 100 {
		t.Errorf("only %d changes of one field changed the table", changedTables)
	}
}

// uncovered returns the variants of base (one field changed) that change
// the table a full sync writes but that same finds equal to base, and how
// many changed the table.
func uncovered(t *testing.T, cfg Config, base *ServicePort, same func(a, b *ServicePort) bool) (missed []variant, changed int) {
	t.Helper()
	want := mustDump(t, cfg, base)
	for _, v := range variants(reflect.ValueOf(*base), "ServicePort") {
		sp := v.value.Interface().(ServicePort)
		sp.key = "" // the builder's cache of Key, computed from the fields
		got, err := dumpOf(cfg, &sp)
		if err != nil {
			t.Errorf("%s, %s: %v", base.Key(), v.name, err)
			continue
		}
		if got == want {
			continue
		}
		changed++
		if same(&sp, base) {
			missed = append(missed, v)
		}
	}
	return missed, changed
}

// TestVariantsWalkEveryField guards the walk itself: it reaches every field
// of the model types, so a new field cannot go unchecked (variants panics
// on a type it does not know).
func TestVariantsWalkEveryField(t *testing.T) {
	ep := Endpoint{IP: netip.MustParseAddr("10.244.1.2")}
	seen := map[string]bool{}
	for _, v := range variants(reflect.ValueOf(ServicePort{Topology: []Endpoint{ep}, Endpoints: []Endpoint{ep}}), "ServicePort") {
		seen[v.field] = true
	}
	for _, v := range variants(reflect.ValueOf(Config{}), "Config") {
		seen[v.field] = true
	}
	var missing []string
	for _, typ := range []reflect.Type{reflect.TypeFor[ServicePort](), reflect.TypeFor[Endpoint](), reflect.TypeFor[Config]()} {
		for i := range typ.NumField() {
			name := typ.Name() + "." + typ.Field(i).Name
			if name == "ServicePort.key" {
				continue // Key's cache, set by the builder from Namespace, Name, Protocol and Port
			}
			if !seen[name] {
				missing = append(missing, name)
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("the walk never changes %v: teach variants the field, or say here why it cannot matter", missing)
	}
}

// variant is a value with one change, and a name saying which.
type variant struct {
	name  string
	value reflect.Value
	// field is the innermost field changed, "Type.Field".
	field string
}

// variants returns copies of v, each with one change: every field of a
// struct changed alone (recursively), every element of a slice changed
// alone, an element added, the last removed, a nil slice made empty and
// the reverse. The copies share nothing mutable with v.
func variants(v reflect.Value, name string) []variant {
	var out []variant
	add := func(n string, x any) {
		if nv := reflect.ValueOf(x).Convert(v.Type()); !reflect.DeepEqual(nv.Interface(), v.Interface()) {
			out = append(out, variant{name: name + n, value: nv})
		}
	}
	switch x := v.Interface().(type) {
	case netip.Addr:
		add(".Next", x.Next())
		return out
	case netip.Prefix:
		add(".Wider", netip.PrefixFrom(x.Addr(), max(x.Bits()-1, 0)).Masked())
		return out
	case time.Duration:
		add("+1s", x+time.Second)
		add("=0", time.Duration(0))
		return out
	case v1.Protocol:
		for _, p := range []v1.Protocol{v1.ProtocolTCP, v1.ProtocolUDP, v1.ProtocolSCTP} {
			add("="+string(p), p)
		}
		return out
	}
	switch v.Kind() {
	case reflect.String:
		add("+x", v.String()+"x")
		add("=empty", "")
	case reflect.Bool:
		add("=!", !v.Bool())
	case reflect.Int32, reflect.Int64:
		add("+1", v.Int()+1)
		add("=0", int64(0))
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			for _, fv := range variants(v.Field(i), name+"."+f.Name) {
				c := reflect.New(v.Type()).Elem()
				c.Set(v)
				c.Field(i).Set(fv.value)
				if fv.field == "" {
					fv.field = v.Type().Name() + "." + f.Name
				}
				out = append(out, variant{fv.name, c, fv.field})
			}
		}
	case reflect.Slice:
		out = append(out, sliceVariants(v, name)...)
	default:
		panic(fmt.Sprintf("variants: %s is a %s; teach variants its values", name, v.Type()))
	}
	return out
}

// sliceVariants are variants for a slice (see variants).
func sliceVariants(v reflect.Value, name string) []variant {
	clone := func(extra int) reflect.Value {
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len()+extra)
		reflect.Copy(c, v)
		return c
	}
	var out []variant
	if v.IsNil() {
		out = append(out, variant{name: name + "=empty", value: reflect.MakeSlice(v.Type(), 0, 0)})
	} else {
		out = append(out, variant{name: name + "=nil", value: reflect.Zero(v.Type())})
	}
	if v.Len() > 0 {
		out = append(out, variant{name: name + ".dropLast", value: clone(0).Slice(0, v.Len()-1)})
	}
	for _, seed := range seeds(v) {
		c := clone(1)
		c = reflect.Append(c, seed)
		out = append(out, variant{name: fmt.Sprintf("%s.append(%v)", name, seed.Interface()), value: c})
	}
	for i := range v.Len() {
		for _, ev := range variants(v.Index(i), fmt.Sprintf("%s[%d]", name, i)) {
			c := clone(0)
			c.Index(i).Set(ev.value)
			out = append(out, variant{ev.name, c, ev.field})
		}
	}
	return out
}

// seeds are the elements sliceVariants appends: new ones of both families,
// in the fixture conventions' ranges, and a changed copy of the last.
func seeds(v reflect.Value) []reflect.Value {
	var out []reflect.Value
	switch v.Type().Elem() {
	case reflect.TypeFor[netip.Addr]():
		for _, s := range []string{"192.0.2.77", "2001:db8::77"} {
			out = append(out, reflect.ValueOf(netip.MustParseAddr(s)))
		}
	case reflect.TypeFor[netip.Prefix]():
		for _, s := range []string{"198.51.100.0/24", "2001:db8::/64"} {
			out = append(out, reflect.ValueOf(netip.MustParsePrefix(s)))
		}
	case reflect.TypeFor[Endpoint]():
		for _, e := range []Endpoint{
			{IP: netip.MustParseAddr("10.244.1.77"), Port: 8080, Node: "node-1", Local: true},
			{IP: netip.MustParseAddr("fd00:10:244:2::77"), Port: 8080, Node: "node-2"},
		} {
			out = append(out, reflect.ValueOf(e))
		}
	case reflect.TypeFor[string]():
		out = append(out, reflect.ValueOf("node-1"))
	default:
		panic(fmt.Sprintf("seeds: no new element for a %s", v.Type()))
	}
	if v.Len() > 0 {
		for _, ev := range variants(v.Index(v.Len()-1), "") {
			out = append(out, ev.value)
		}
	}
	return out
}

// dumpOf returns the canonical dump of the table a full sync writes for
// sps on a node configured by cfg.
func dumpOf(cfg Config, sps ...*ServicePort) (string, error) {
	fake := knftables.NewFake(knftables.InetFamily, Table)
	if _, err := NewSyncer(fake, nil).Sync(context.Background(), cfg, sps); err != nil {
		return "", err
	}
	return canonicalDump(fake), nil
}

func mustDump(t *testing.T, cfg Config, sps ...*ServicePort) string {
	t.Helper()
	d, err := dumpOf(cfg, sps...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSameRenderTestCanFail: the walk finds a field left out of a
// comparison: one that forgets the endpoints' ports is caught.
func TestSameRenderTestCanFail(t *testing.T) {
	c := goldenClusters()[0]
	base := BuildServicePorts("node-1", c.svcs, c.slices)[0]
	poor := func(a, b *ServicePort) bool {
		ips := func(s *ServicePort) []netip.Addr {
			var out []netip.Addr
			for _, e := range s.Endpoints {
				out = append(out, e.IP)
			}
			return out
		}
		return a.Key() == b.Key() && slices.Equal(a.ClusterIPs, b.ClusterIPs) && slices.Equal(ips(a), ips(b))
	}
	missed, _ := uncovered(t, c.cfg, base, poor)
	var fields []string
	for _, v := range missed {
		fields = append(fields, v.field)
	}
	if !slices.Contains(fields, "Endpoint.Port") {
		t.Errorf("a comparison without the endpoints' ports went unnoticed; it missed only %v", fields)
	}
}
