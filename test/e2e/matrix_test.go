package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// podnet probe --matrix on a small policy set: namespace x (a on node 1,
// b on node 2) isolates a for ingress except from pods labelled pod=b,
// namespace y (a, b) has no policy. The table equals the expected one;
// an expectation with one wrong cell exits 1 naming that cell.
func TestProbeMatrixMatchesThePolicies(t *testing.T) {
	c := sharedCluster(t)
	cs := c.client(t)
	e := &npEnv{c: c, cs: cs, ns: map[string]string{}, policies: map[string][]string{}}
	for _, short := range []string{"x", "y"} {
		e.ns[short] = traceNamespace(t, c, cs, "matrix-"+short, short)
		tracePods(t, c, cs, e.ns[short], map[string]int{"a": 1, "b": 2})
	}
	e.create(t, "x", withIngress(policy("a-from-b", matchLabels("pod", "a"), ingress), from(nil, podPeer(matchLabels("pod", "b")))))
	x, y := e.ns["x"], e.ns["y"]
	// Into x/a only x/b (pod=b of x's own namespace: a lone podSelector)
	// and x/a itself (a pod's traffic to itself is not policed).
	rows := [][]string{
		{"-", x + "/a", x + "/b", y + "/a", y + "/b"},
		{x + "/a", ".", ".", ".", "."},
		{x + "/b", ".", ".", ".", "."},
		{y + "/a", "X", ".", ".", "."},
		{y + "/b", "X", ".", ".", "."},
	}
	write := func(name string, rows [][]string) string {
		var b strings.Builder
		for _, r := range rows {
			b.WriteString(strings.Join(r, "\t") + "\n")
		}
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	want := write("want", rows)
	args := []string{"probe", "--matrix", "--namespaces", x + "," + y, "--port", "80"}
	eventually(t, 30*time.Second, "the matrix equals the expected table", func() error {
		out, err := c.podnet(append(args, "--expect", want)...)
		if err != nil {
			return fmt.Errorf("%v:\n%s", err, out)
		}
		if !strings.Contains(out, "as expected") {
			return fmt.Errorf("no 'as expected':\n%s", out)
		}
		return nil
	})
	out, err := c.podnet(args...)
	b, _ := os.ReadFile(want)
	if err != nil || !strings.HasPrefix(out, string(b)) {
		t.Errorf("the printed table is not the expected file's text: %v\n%s\nwant:\n%s", err, out, b)
	}

	rows[3][1] = "." // y/a -> x/a: wrong on purpose
	wrong := write("wrong", rows)
	out, err = c.podnet(append(args, "--expect", wrong)...)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("--expect with a wrong cell: %v, want exit 1\n%s", err, out)
	}
	for _, w := range []string{"1 cell(s) differ from " + wrong, y + "/a -> " + x + "/a: X ("} {
		if !strings.Contains(out, w) {
			t.Errorf("--expect with a wrong cell:\n%s\nwant it to contain %q", out, w)
		}
	}
}

// --selector and --protocol udp: only the b pods, on udp/81.
func TestProbeMatrixSelectorUDP(t *testing.T) {
	c := sharedCluster(t)
	cs := c.client(t)
	ns := traceNamespace(t, c, cs, "matrix", "m")
	tracePods(t, c, cs, ns, map[string]int{"a": 1, "b": 2})
	out, err := c.podnet("probe", "--matrix", "-n", ns, "--selector", "pod=b", "--port", "81", "--protocol", "udp")
	if want := "-\t" + ns + "/b\n" + ns + "/b\t.\n"; err != nil || out != want {
		t.Errorf("probe --matrix -l pod=b udp/81: %v\n%q\nwant %q", err, out, want)
	}
}
