package cnicalls

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPaths(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want []string
	}{
		{`{"a":1,"b":{"c":"x","d":[]},"e":{}}`, []string{"a", "b.c", "b.d[]", "e"}},
		{`{"ips":[{"address":"a","gateway":"g"},{"address":"b","interface":1}]}`, []string{"ips[].address", "ips[].gateway", "ips[].interface"}},
		{`{"ranges":[[{"subnet":"s"}]]}`, []string{"ranges[][].subnet"}},
		{`"scalar"`, []string{}},
	} {
		got, err := Paths(json.RawMessage(tc.doc))
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Paths(%s) = %q, %v; want %q", tc.doc, got, err, tc.want)
		}
	}
	if _, err := Paths(json.RawMessage(`{`)); err == nil {
		t.Error("Paths of broken JSON succeeded")
	}
}

func loadFixture(t *testing.T) *Fixture {
	t.Helper()
	f, err := Load(filepath.Join("..", "testdata", "containerd-calls.json"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// change returns a copy of the fixture's calls with one call changed.
func change(t *testing.T, f *Fixture, command string, edit func(c *Call)) []Call {
	t.Helper()
	out := make([]Call, 0, len(f.Calls))
	for _, c := range f.Calls {
		c.Env = maps.Clone(c.Env)
		if c.Command() == command {
			edit(&c)
		}
		out = append(out, c)
	}
	return out
}

func setStdin(t *testing.T, key string, v any) func(c *Call) {
	return func(c *Call) {
		var m map[string]any
		if err := json.Unmarshal(c.Stdin, &m); err != nil {
			t.Fatal(err)
		}
		if v == nil {
			delete(m, key)
		} else {
			m[key] = v
		}
		c.Stdin, _ = json.Marshal(m)
	}
}

// TestCompareFindsEveryKindOfDifference: each change a runtime could make
// to its calls is one line naming the command and what changed.
func TestCompareFindsEveryKindOfDifference(t *testing.T) {
	f := loadFixture(t)
	for _, tc := range []struct {
		name     string
		recorded []Call
		want     []string // one substring per expected line
	}{
		{"the fixture against itself: no difference", f.Calls, nil},
		{"the calls in another order and twice: no difference", append(slices.Clone(f.Calls), f.Calls[1], f.Calls[0]), nil},
		{"a new stdin key", change(t, f, "ADD", setStdin(t, "runtimeConfig", map[string]any{"portMappings": []any{}})),
			[]string{`ADD: stdin key "runtimeConfig.portMappings[]" is new`}},
		{"a missing stdin key", change(t, f, "DEL", setStdin(t, "prevResult", nil)),
			[]string{`DEL: stdin key "prevResult.cniVersion" is missing`}},
		{"a different cniVersion", change(t, f, "STATUS", setStdin(t, "cniVersion", "1.2.0")),
			[]string{`STATUS: cniVersion "1.2.0", the fixture has "1.1.0"`}},
		{"a new environment variable", change(t, f, "ADD", func(c *Call) { c.Env["CNI_NETNS_OVERRIDE"] = "1" }),
			[]string{`ADD: environment variable "CNI_NETNS_OVERRIDE" is new`}},
		{"a variable now empty", change(t, f, "DEL", func(c *Call) { c.Env["CNI_NETNS"] = "" }),
			[]string{`DEL: environment variable "CNI_NETNS=" is new`, `DEL: environment variable "CNI_NETNS" is missing`}},
		{"a missing CNI_ARGS key", change(t, f, "ADD", func(c *Call) { c.Env["CNI_ARGS"] = "IgnoreUnknown=1;K8S_POD_NAME=x" }),
			[]string{`ADD: CNI_ARGS key "K8S_POD_NAMESPACE" is missing`}},
		{"a new command", append(slices.Clone(f.Calls), Call{Env: map[string]string{"CNI_COMMAND": "GC"}, Stdin: f.Calls[0].Stdin}),
			[]string{"GC: recorded, but the fixture has no GC"}},
		{"a command no longer sent", f.Calls[:2], []string{"in the fixture, but not recorded"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			diffs, err := Compare(tc.recorded, f.Calls)
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) < len(tc.want) || (len(tc.want) == 0) != (len(diffs) == 0) {
				t.Fatalf("differences:\n%s\nwant lines with %q", strings.Join(diffs, "\n"), tc.want)
			}
			for _, w := range tc.want {
				if !slices.ContainsFunc(diffs, func(d string) bool { return strings.Contains(d, w) }) {
					t.Errorf("no difference says %q:\n%s", w, strings.Join(diffs, "\n"))
				}
			}
		})
	}
}

func TestCompareRejectsACallWithoutJSON(t *testing.T) {
	bad := []Call{{Env: map[string]string{"CNI_COMMAND": "ADD"}, Stdin: json.RawMessage(`"x`)}}
	if _, err := Compare(bad, nil); err == nil {
		t.Error("Compare accepted a call whose stdin is not JSON")
	}
}

// TestTheFixtureHasOneCallOfEachCommandContainerdSends: ADD, DEL and
// STATUS (containerd 2.4.2 never calls GC or CHECK), with the values the
// replay in internal/cni relies on.
func TestTheFixtureHasOneCallOfEachCommandContainerdSends(t *testing.T) {
	f := loadFixture(t)
	var cmds []string
	for _, c := range f.Calls {
		cmds = append(cmds, c.Command())
		s, err := ShapeOf(c)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s", s)
	}
	slices.Sort(cmds)
	if want := []string{"ADD", "DEL", "STATUS"}; !slices.Equal(cmds, want) {
		t.Errorf("fixture commands %v, want %v", cmds, want)
	}
	if f.Runtime == "" || !strings.Contains(f.Comment, "-update-cni-fixture") {
		t.Errorf("fixture runtime %q, comment %q: want the runtime and how to refresh it", f.Runtime, f.Comment)
	}
}
