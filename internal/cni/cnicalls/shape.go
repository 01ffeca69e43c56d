package cnicalls

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
)

// Shape is what a plugin relies on in a call, without its values.
type Shape struct {
	Command    string
	CNIVersion string
	// Env lists the CNI_* variables: "NAME" when set, "NAME=" when
	// present but empty. Sorted.
	Env []string
	// Args lists the keys of CNI_ARGS. Sorted.
	Args []string
	// Stdin lists the key paths of the stdin JSON (see Paths).
	Stdin []string
}

// ShapeOf returns the shape of a call.
func ShapeOf(c Call) (Shape, error) {
	s := Shape{Command: c.Command()}
	for k, v := range c.Env {
		if v == "" {
			k += "="
		}
		s.Env = append(s.Env, k)
	}
	sort.Strings(s.Env)
	if c.Env["CNI_ARGS"] != "" {
		s.Args = slices.Sorted(maps.Keys(c.Args()))
	}
	var head struct {
		CNIVersion string `json:"cniVersion"`
	}
	if err := json.Unmarshal(c.Stdin, &head); err != nil {
		return s, fmt.Errorf("stdin of %s: %w", s.Command, err)
	}
	s.CNIVersion = head.CNIVersion
	paths, err := Paths(c.Stdin)
	if err != nil {
		return s, fmt.Errorf("stdin of %s: %w", s.Command, err)
	}
	s.Stdin = paths
	return s, nil
}

// Paths lists the key paths of a JSON document, sorted and without
// repeats: "a.b" for a key b in object a, "a[]" for the elements of array
// a (all elements together), and a path to an empty object or array as
// itself. A document that is not an object or array has no paths.
func Paths(doc json.RawMessage) ([]string, error) {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, fmt.Errorf("key paths: %w", err)
	}
	set := map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if len(v) == 0 && prefix != "" {
				set[prefix] = true
			}
			for k, e := range v {
				if prefix != "" {
					k = prefix + "." + k
				}
				walk(k, e)
			}
		case []any:
			if len(v) == 0 {
				set[prefix+"[]"] = true
			}
			for _, e := range v {
				walk(prefix+"[]", e)
			}
		default:
			if prefix != "" {
				set[prefix] = true
			}
		}
	}
	walk("", v)
	return slices.Sorted(maps.Keys(set)), nil
}

// Compare lists the differences between the shapes of recorded calls and
// the shapes of a fixture's calls, one line each: a command in only one of
// them, and for each command every variable, CNI_ARGS key or stdin key
// path in only one of them and a different cniVersion. Calls of one
// command that differ among themselves are compared one by one. No lines
// means the same shapes.
func Compare(recorded, fixture []Call) ([]string, error) {
	got, err := shapesByCommand(recorded)
	if err != nil {
		return nil, fmt.Errorf("recorded calls: %w", err)
	}
	want, err := shapesByCommand(fixture)
	if err != nil {
		return nil, fmt.Errorf("fixture: %w", err)
	}
	var diffs []string
	for _, cmd := range slices.Sorted(maps.Keys(unionKeys(got, want))) {
		g, w := got[cmd], want[cmd]
		switch {
		case len(w) == 0:
			diffs = append(diffs, fmt.Sprintf("%s: recorded, but the fixture has no %s", cmd, cmd))
			continue
		case len(g) == 0:
			diffs = append(diffs, fmt.Sprintf("%s: in the fixture, but not recorded", cmd))
			continue
		}
		for _, gs := range g {
			for _, ws := range w {
				diffs = append(diffs, diffShape(gs, ws)...)
			}
		}
	}
	return diffs, nil
}

// shapesByCommand returns the distinct shapes of the calls per command.
func shapesByCommand(calls []Call) (map[string][]Shape, error) {
	out := map[string][]Shape{}
	for _, c := range calls {
		s, err := ShapeOf(c)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(out[s.Command], func(o Shape) bool { return o.equal(s) }) {
			out[s.Command] = append(out[s.Command], s)
		}
	}
	return out, nil
}

func unionKeys[V any](a, b map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func (s Shape) equal(o Shape) bool {
	return s.Command == o.Command && s.CNIVersion == o.CNIVersion && slices.Equal(s.Env, o.Env) &&
		slices.Equal(s.Args, o.Args) && slices.Equal(s.Stdin, o.Stdin)
}

// diffShape lists how got differs from want.
func diffShape(got, want Shape) []string {
	var out []string
	if got.CNIVersion != want.CNIVersion {
		out = append(out, fmt.Sprintf("%s: cniVersion %q, the fixture has %q", got.Command, got.CNIVersion, want.CNIVersion))
	}
	for _, part := range []struct {
		what      string
		got, want []string
	}{{"environment variable", got.Env, want.Env}, {"CNI_ARGS key", got.Args, want.Args}, {"stdin key", got.Stdin, want.Stdin}} {
		for _, x := range part.got {
			if !slices.Contains(part.want, x) {
				out = append(out, fmt.Sprintf("%s: %s %q is new (not in the fixture)", got.Command, part.what, x))
			}
		}
		for _, x := range part.want {
			if !slices.Contains(part.got, x) {
				out = append(out, fmt.Sprintf("%s: %s %q is missing (the fixture has it)", got.Command, part.what, x))
			}
		}
	}
	return out
}

// Fixture is a recorded example of each command a runtime sends.
type Fixture struct {
	// Comment says where the calls come from and how to refresh them.
	Comment string `json:"comment"`
	// Runtime names the runtime and version that made the calls.
	Runtime string `json:"runtime"`
	// Calls holds one call per command, in the order they were made.
	Calls []Call `json:"calls"`
}

// Example returns the fixture's call of a command.
func (f *Fixture) Example(command string) (Call, bool) {
	for _, c := range f.Calls {
		if c.Command() == command {
			return c, true
		}
	}
	return Call{}, false
}

// Load reads a fixture.
func Load(path string) (*Fixture, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fixture: %w", err)
	}
	f := &Fixture{}
	if err := json.Unmarshal(b, f); err != nil {
		return nil, fmt.Errorf("fixture %s: %w", path, err)
	}
	return f, nil
}

// Save writes a fixture as indented JSON.
func (f *Fixture) Save(path string) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("fixture: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("fixture: %w", err)
	}
	return nil
}

// String shows a shape on one line.
func (s Shape) String() string {
	return fmt.Sprintf("%s cniVersion %s env [%s] CNI_ARGS [%s] stdin [%s]", s.Command, s.CNIVersion,
		strings.Join(s.Env, " "), strings.Join(s.Args, " "), strings.Join(s.Stdin, " "))
}
