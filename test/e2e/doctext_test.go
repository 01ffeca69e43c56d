package e2e

// Reading the commands out of the user docs, and comparing their output
// loosely: the half of the doc test (docs_test.go) that needs no cluster.
//
// The convention the docs follow, so that each command runs as typed:
//
//   - Commands go in ```console blocks, one per line after "$ ". A line
//     ending in "\" continues on the next line, and a here-document
//     (<<'EOF' ... EOF) takes the lines up to its delimiter.
//   - The lines after a command, up to the next "$ ", are its expected
//     output, compared loosely (matchOutput): each must match an output
//     line, in order, not necessarily every one; "..." alone is any lines,
//     "..." at the end of a line is the rest of that line, and a word with
//     a digit in it (addresses, ports, ages, generated names) matches any
//     word with a digit.
//   - A command exits 0 unless its comment says otherwise: "# exit 1: ..."
//     (a denied probe, a denied trace).
//   - ```sh, ```bash and ```shell blocks are refused: a command there would
//     escape the test. A block that cannot run is marked on the line
//     before it with <!-- doc-test: skip (reason) -->; the reason is
//     printed by every run, so the list stays short and honest.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// docCommand is one command of a doc.
type docCommand struct {
	file string
	line int      // of the "$ " line
	text string   // without "$ ", continuation lines included
	want []string // expected output lines
	exit int      // expected exit status
	skip string   // why it is not run ("" runs)
}

func (c docCommand) where() string { return fmt.Sprintf("%s:%d", c.file, c.line) }

// firstLine is the command's first line without its comment.
func (c docCommand) firstLine() string {
	line, _, _ := strings.Cut(c.text, "\n")
	code, _ := splitComment(line)
	return strings.TrimSpace(code)
}

// splitComment splits a shell line at its comment: a # that starts a word
// outside quotes.
func splitComment(line string) (code, comment string) {
	var quote byte
	for i := 0; i < len(line); i++ {
		switch ch := line[i]; {
		case quote != 0:
			if ch == quote {
				quote = 0
			}
		case ch == '\\':
			i++
		case ch == '\'' || ch == '"':
			quote = ch
		case ch == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i], line[i:]
		}
	}
	return line, ""
}

var (
	fenceRE   = regexp.MustCompile("^```\\s*([A-Za-z0-9_-]*)")
	markerRE  = regexp.MustCompile(`^<!--\s*doc-test:\s*skip\s*\((.+)\)\s*-->$`)
	exitRE    = regexp.MustCompile(`\bexit ([0-9]+)\b`)
	heredocRE = regexp.MustCompile(`<<-?\s*['"]?([A-Za-z_][A-Za-z0-9_]*)['"]?`)
)

// parseDoc returns the commands of a markdown document, and an error for
// each place that breaks the convention.
func parseDoc(file, text string) ([]docCommand, []error) {
	var cmds []docCommand
	var errs []error
	lines := strings.Split(text, "\n")
	skip := ""
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if m := markerRE.FindStringSubmatch(l); m != nil {
			skip = strings.TrimSpace(m[1])
			continue
		}
		if strings.HasPrefix(l, "<!-- doc-test") {
			errs = append(errs, fmt.Errorf("%s:%d: want <!-- doc-test: skip (reason) -->, got %s", file, i+1, l))
			continue
		}
		m := fenceRE.FindStringSubmatch(lines[i])
		if m == nil {
			if l != "" {
				skip = "" // a marker belongs to the block right after it
			}
			continue
		}
		end := i + 1
		for end < len(lines) && !strings.HasPrefix(lines[end], "```") {
			end++
		}
		body := lines[i+1 : end]
		switch lang := m[1]; lang {
		case "console":
			c, e := parseConsole(file, i+2, body, skip)
			cmds, errs = append(cmds, c...), append(errs, e...)
		case "sh", "bash", "shell", "zsh":
			if skip == "" {
				errs = append(errs, fmt.Errorf("%s:%d: a ```%s block: write its commands in a ```console block with \"$ \" before each, "+
					"so that the doc test runs them, or mark it <!-- doc-test: skip (reason) -->", file, i+1, lang))
			} else {
				cmds = append(cmds, docCommand{file: file, line: i + 2, text: strings.Join(body, "\n"), skip: skip})
			}
		default:
			if skip != "" {
				errs = append(errs, fmt.Errorf("%s:%d: a skip marker before a ```%s block, which the doc test does not run anyway", file, i+1, lang))
			}
		}
		skip = ""
		i = end
	}
	return cmds, errs
}

// parseConsole reads the commands of a console block whose body starts at
// line first.
func parseConsole(file string, first int, body []string, skip string) ([]docCommand, []error) {
	var cmds []docCommand
	var errs []error
	var cur *docCommand
	heredoc := ""
	for k, l := range body {
		switch {
		case cur != nil && heredoc != "":
			cur.text += "\n" + l
			if strings.TrimSpace(l) == heredoc {
				heredoc = ""
			}
		case cur != nil && strings.HasSuffix(cur.text, "\\") && len(cur.want) == 0:
			cur.text += "\n" + l
		case strings.HasPrefix(l, "$ "):
			cmds = append(cmds, docCommand{file: file, line: first + k, text: strings.TrimSpace(l[2:]), skip: skip})
			cur = &cmds[len(cmds)-1]
			code, comment := splitComment(l)
			if m := exitRE.FindStringSubmatch(comment); m != nil {
				cur.exit, _ = strconv.Atoi(m[1])
			}
			if m := heredocRE.FindStringSubmatch(code); m != nil {
				heredoc = m[1]
			}
		case cur != nil:
			cur.want = append(cur.want, l)
		case strings.TrimSpace(l) != "":
			errs = append(errs, fmt.Errorf("%s:%d: output before the first \"$ \" command of a console block", file, first+k))
		}
	}
	if heredoc != "" {
		errs = append(errs, fmt.Errorf("%s:%d: here-document %s is not closed", file, cur.line, heredoc))
	}
	return cmds, errs
}

// matchOutput says why got does not show the expected lines (nil when it
// does): each expected line must match a line of got, in order, skipping
// lines in between.
func matchOutput(want []string, got string) error {
	lines := strings.Split(got, "\n")
	k := 0
	for _, w := range want {
		if t := strings.TrimSpace(w); t == "" || t == "..." {
			continue
		}
		for k < len(lines) && !lineMatches(w, lines[k]) {
			k++
		}
		if k == len(lines) {
			return fmt.Errorf("no output line (after those matched before) matches %q", strings.TrimSpace(w))
		}
		k++
	}
	return nil
}

// lineMatches compares a line word by word (any run of blanks is one):
// equal words, or two words that both hold a digit; a last word "..." is
// the rest of the line.
func lineMatches(want, got string) bool {
	wf, gf := strings.Fields(want), strings.Fields(got)
	if n := len(wf); n > 0 && wf[n-1] == "..." {
		wf = wf[:n-1]
		if len(gf) < len(wf) {
			return false
		}
		gf = gf[:len(wf)]
	}
	if len(wf) != len(gf) {
		return false
	}
	for i := range wf {
		if wf[i] != gf[i] && !(hasDigit(wf[i]) && hasDigit(gf[i])) {
			return false
		}
	}
	return true
}

func hasDigit(s string) bool { return strings.IndexFunc(s, unicode.IsDigit) >= 0 }

func TestParseDoc(t *testing.T) {
	doc := strings.Join([]string{
		"# A doc",
		"```console",
		"$ podnet probe frontend pod/api:8080     # from one pod to another",
		"tcp frontend -> pod/api:8080 (10.244.1.3:8080): answered by pod api, ...",
		"$ podnet probe nginx-pod pod/api:8080    # exit 1: the seed's api-allow \"admits\" frontends only",
		"$ podnet kubectl -- apply -f - <<'YAML'",
		"kind: Namespace",
		"$ not a command: inside the here-document",
		"YAML",
		"namespace/x created",
		"$ echo a \\",
		"  b",
		"a b",
		"```",
		"<!-- doc-test: skip (needs a second terminal) -->",
		"```console",
		"$ podnet logs -f frontend",
		"```",
		"```json",
		"{\"$ \": 1}",
		"```",
	}, "\n")
	cmds, errs := parseDoc("d.md", doc)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := []docCommand{
		{file: "d.md", line: 3, text: "podnet probe frontend pod/api:8080     # from one pod to another",
			want: []string{"tcp frontend -> pod/api:8080 (10.244.1.3:8080): answered by pod api, ..."}},
		{file: "d.md", line: 5, text: "podnet probe nginx-pod pod/api:8080    # exit 1: the seed's api-allow \"admits\" frontends only", exit: 1},
		{file: "d.md", line: 6, text: "podnet kubectl -- apply -f - <<'YAML'\nkind: Namespace\n$ not a command: inside the here-document\nYAML",
			want: []string{"namespace/x created"}},
		{file: "d.md", line: 11, text: "echo a \\\n  b", want: []string{"a b"}},
		{file: "d.md", line: 17, text: "podnet logs -f frontend", skip: "needs a second terminal"},
	}
	if fmt.Sprintf("%#v", cmds) != fmt.Sprintf("%#v", want) {
		t.Errorf("parseDoc:\n%#v\nwant\n%#v", cmds, want)
	}
	if got := cmds[1].firstLine(); got != "podnet probe nginx-pod pod/api:8080" {
		t.Errorf("firstLine() = %q", got)
	}
	for line, want := range map[string]string{
		`a # b`:                 "a |# b",
		`a '# not' "# not" # c`: `a '# not' "# not" |# c`,
		`a#b c`:                 "a#b c|",
		`a \# b # c`:            `a \# b |# c`,
		`# only`:                "|# only",
		`echo "it's" # exit 1`:  `echo "it's" |# exit 1`,
	} {
		if code, comment := splitComment(line); code+"|"+comment != want {
			t.Errorf("splitComment(%q) = %q, %q; want %q", line, code, comment, want)
		}
	}

	for name, bad := range map[string]string{
		"a sh block":                             "```sh\npodnet status\n```",
		"a bash block":                           "```bash\npodnet status\n```",
		"output before a command":                "```console\nhello\n$ echo\n```",
		"an unclosed here-document":              "```console\n$ cat <<EOF\nx\n```",
		"a marker without a reason":              "<!-- doc-test: skip -->\n```console\n$ x\n```",
		"a marker before a block that never ran": "<!-- doc-test: skip (why) -->\n```json\n{}\n```",
	} {
		if _, errs := parseDoc("bad.md", bad); len(errs) == 0 {
			t.Errorf("%s: no error", name)
		}
	}
	// A marker applies to the block right after it only.
	cmds, _ = parseDoc("m.md", "<!-- doc-test: skip (why) -->\n\nText.\n```console\n$ x\n```")
	if len(cmds) != 1 || cmds[0].skip != "" {
		t.Errorf("a marker separated from its block by text: %+v, want the command run", cmds)
	}
}

func TestMatchOutput(t *testing.T) {
	got := `NAME            STATUS   ROLES    AGE   VERSION
doc-1-node-1    Ready    <none>   8s    podnet-07e26cc-dirty
doc-1-node-2    Ready    <none>   12m   podnet-07e26cc-dirty
tcp frontend -> pod/api:8080 (10.172.1.3:8080): answered by pod api, which saw the client as 10.172.0.4:46298
`
	for _, tc := range []struct {
		name string
		want []string
		ok   bool
	}{
		{"words with digits match any words with digits", []string{"podnet-node-1   Ready    <none>   20s   podnet-1a2b3c4"}, true},
		{"blank runs are one", []string{"NAME STATUS ROLES AGE VERSION"}, true},
		{"lines in order, others skipped", []string{"NAME ...", "...", "x-node-2 Ready ..."}, true},
		{"a word without digits must be equal", []string{"tcp frontend -> pod/api:8080 (10.244.1.3:8080): answered by pod nginx-pod, which saw the client as 10.244.0.4:1"}, false},
		{"a word with digits does not match one without", []string{"NAME STATUS ROLES AGE 1.37"}, false},
		{"out of order fails", []string{"tcp ...", "NAME ..."}, false},
		{"a shorter line fails without ...", []string{"NAME STATUS"}, false},
		{"... is the rest of the line", []string{"tcp frontend -> pod/api:8080 ..."}, true},
		{"nothing expected matches anything", nil, true},
	} {
		if err := matchOutput(tc.want, got); (err == nil) != tc.ok {
			t.Errorf("%s: matchOutput(%q) = %v, want ok=%v", tc.name, tc.want, err, tc.ok)
		}
	}
}
