package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// runRoot runs `podnet ARGS` in-process and returns stdout and the error.
func runRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// helpSections splits `podnet --help` into its command groups: the titles
// in order, and the commands listed under each.
func helpSections(help string) (titles []string, cmds map[string][]string) {
	cmds = map[string][]string{}
	title := ""
	for _, line := range strings.Split(help, "\n") {
		switch {
		case strings.HasSuffix(line, ":") && !strings.HasPrefix(line, " "):
			title = strings.TrimSuffix(line, ":")
			titles = append(titles, title)
		case strings.HasPrefix(line, "  ") && title != "" && title != "Usage" && title != "Examples" && title != "Flags":
			cmds[title] = append(cmds[title], strings.Fields(line)[0])
		}
	}
	return titles, cmds
}

// podnet --help lists the commands a person runs first, the daemons after
// them, each command in its group.
func TestHelpGroupsUserCommandsBeforeDaemons(t *testing.T) {
	help, err := runRoot(t, "--help")
	if err != nil {
		t.Fatal(err)
	}
	titles, cmds := helpSections(help)
	wantTitles := []string{"Usage", "Examples", "Local cluster", "See and debug", "Daemons (run by podnet itself or a DaemonSet)", "Additional Commands", "Flags"}
	if strings.Join(titles, "|") != strings.Join(wantTitles, "|") {
		t.Errorf("sections of podnet --help:\n  %q\nwant\n  %q\n%s", titles, wantTitles, help)
	}
	for title, want := range map[string]string{
		"Local cluster": "add-node apply clusters down kubectl rotate-keys status up",
		"See and debug": "exec flows logs probe selfcheck trace ui",
		"Daemons (run by podnet itself or a DaemonSet)": "agent cleanup-node controller dns install-cni pod-exec registry runtime serve world-dns",
		"Additional Commands":                           "completion help version",
	} {
		if got := strings.Join(cmds[title], " "); got != want {
			t.Errorf("%s: %s, want %s", title, got, want)
		}
	}
}

// The cluster flags are on the commands that use them, not on the root:
// the daemons and the commands that need no cluster neither list nor take
// them. --tools-bin is listed where a bundled binary runs.
func TestClusterFlagsOnlyWhereUsed(t *testing.T) {
	const cluster, toolsBin = "--cluster", "--tools-bin"
	for _, tc := range []struct {
		cmd  string
		want []string // flags the help lists
		not  []string // flags it must not list
	}{
		{"up", []string{cluster, "--state-dir", toolsBin}, nil},
		{"kubectl", []string{cluster, "--state-dir", toolsBin}, nil},
		{"apply", []string{cluster, "--state-dir", toolsBin}, nil},
		{"status", []string{cluster, "--state-dir"}, []string{toolsBin}},
		{"down", []string{cluster, "--state-dir"}, []string{toolsBin}},
		{"exec", []string{cluster, "--state-dir"}, []string{toolsBin}},
		{"logs", []string{cluster, "--state-dir"}, []string{toolsBin}},
		{"probe", []string{cluster, "--state-dir"}, []string{toolsBin}},
		{"trace", []string{cluster, "--state-dir"}, []string{toolsBin}},
		{"clusters", nil, []string{cluster, "--state-dir", toolsBin}},
		{"selfcheck", nil, []string{cluster, "--state-dir", toolsBin}},
		{"version", nil, []string{cluster, "--state-dir", toolsBin}},
		{"agent", nil, []string{cluster, "--state-dir", toolsBin}},
		{"dns", nil, []string{cluster, "--state-dir", toolsBin}},
		{"serve", nil, []string{cluster, "--state-dir", toolsBin}},
		{"world-dns", nil, []string{cluster, "--state-dir", toolsBin}},
		{"pod-exec", nil, []string{cluster, "--state-dir", toolsBin}},
		{"runtime", []string{"--state-dir"}, []string{cluster, toolsBin}}, // its own: the node's state directory
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			help, err := runRoot(t, tc.cmd, "--help")
			if err != nil {
				t.Fatal(err)
			}
			_, flags, ok := strings.Cut(help, "\nFlags:\n")
			if !ok {
				t.Fatalf("podnet %s --help has no Flags section:\n%s", tc.cmd, help)
			}
			for _, f := range tc.want {
				if !strings.Contains(flags, f+" ") {
					t.Errorf("podnet %s --help does not list %s:\n%s", tc.cmd, f, help)
				}
			}
			for _, f := range tc.not {
				if strings.Contains(flags, f+" ") {
					t.Errorf("podnet %s --help lists %s:\n%s", tc.cmd, f, help)
				}
			}
		})
	}
	if _, err := runRoot(t, "dns", "--cluster", "x", "--help"); err == nil || !strings.Contains(err.Error(), "unknown flag: --cluster") {
		t.Errorf("podnet dns --cluster x: %v, want unknown flag", err)
	}
}

// Scripts (test/e2e, bench/) give the three cluster flags before the
// command, to every cluster command: that keeps working.
func TestClusterFlagsBeforeTheCommand(t *testing.T) {
	dir := t.TempDir()
	for _, cmd := range []string{"status", "down", "logs", "exec", "probe", "trace", "kubectl", "apply"} {
		_, err := runRoot(t, "--cluster", "flagtest", "--state-dir", dir, "--tools-bin", dir, cmd, "--help")
		if err != nil {
			t.Errorf("podnet --cluster --state-dir --tools-bin %s: %v", cmd, err)
		}
	}
	_, err := runRoot(t, "--cluster", "flagtest", "--state-dir", dir, "--tools-bin", dir, "status")
	if err == nil || !strings.Contains(err.Error(), `no local cluster "flagtest"`) || !strings.Contains(err.Error(), dir) {
		t.Errorf("podnet --cluster flagtest --state-dir DIR status: %v, want no local cluster in DIR", err)
	}
}

// PODNET_CLUSTER, PODNET_STATE_DIR and PODNET_TOOLS_BIN are the cluster
// flags' defaults, and a flag on the command line still wins.
func TestClusterFlagsFromTheEnvironment(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	t.Setenv("PODNET_CLUSTER", "envtest")
	t.Setenv("PODNET_STATE_DIR", dir)
	t.Setenv("PODNET_TOOLS_BIN", other)
	_, err := runRoot(t, "status")
	if err == nil || !strings.Contains(err.Error(), `no local cluster "envtest"`) || !strings.Contains(err.Error(), dir) {
		t.Errorf("podnet status with the environment: %v, want no local cluster \"envtest\" in %s", err, dir)
	}
	_, err = runRoot(t, "status", "--cluster", "flagwins", "--state-dir", other)
	if err == nil || !strings.Contains(err.Error(), `no local cluster "flagwins"`) || !strings.Contains(err.Error(), other) {
		t.Errorf("podnet status --cluster flagwins --state-dir OTHER: %v, want the flags to win", err)
	}
	help, err := runRoot(t, "kubectl", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`--tools-bin string   directory with etcd, kube-apiserver, ..., kubectl (env PODNET_TOOLS_BIN; make tools) (default "` + other + `")`, "(env PODNET_CLUSTER)"} {
		if !strings.Contains(help, want) {
			t.Errorf("podnet kubectl --help does not show %q:\n%s", want, help)
		}
	}
}

// userCommands are the commands of podnet --help that a person runs: every
// visible command but the daemons and cobra's own.
func userCommands(root *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.GroupID == groupDaemons || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			out = append(out, sub)
			walk(sub)
		}
	}
	walk(root)
	return out
}

// Every user command explains itself (Long) and shows how it is used
// (Example), and every example is a command line that podnet accepts: the
// right command, known flags, the arguments it takes.
func TestUserCommandsHaveLongAndCorrectExamples(t *testing.T) {
	cmds := userCommands(newRootCommand())
	if len(cmds) < 12 {
		t.Fatalf("found %d user commands, want at least 12 (the walk is broken)", len(cmds))
	}
	for _, c := range cmds {
		t.Run(c.Name(), func(t *testing.T) {
			if strings.TrimSpace(c.Long) == "" {
				t.Errorf("podnet %s has no Long text", c.Name())
			}
			if strings.TrimSpace(c.Example) == "" {
				t.Fatalf("podnet %s has no Example", c.Name())
			}
			for _, line := range strings.Split(c.Example, "\n") {
				checkExample(t, c.CommandPath(), line)
			}
		})
	}
}

// checkExample parses one example line as podnet would: it must run the
// command at path with flags and arguments the command accepts.
func checkExample(t *testing.T, path, line string) {
	t.Helper()
	words, err := shellWords(line)
	if err != nil {
		t.Errorf("example %q: %v", line, err)
		return
	}
	if len(words) == 0 || words[0] != "podnet" {
		t.Errorf("example %q does not start with podnet", line)
		return
	}
	root := newRootCommand()
	cmd, args, err := root.Find(words[1:])
	if err != nil {
		t.Errorf("example %q: %v", line, err)
		return
	}
	if cmd.CommandPath() != path {
		t.Errorf("example %q runs %s, want %s", line, cmd.CommandPath(), path)
	}
	if err := cmd.ParseFlags(args); err != nil {
		t.Errorf("example %q: %v", line, err)
		return
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		t.Errorf("example %q: %v", line, err)
	}
}

// shellWords splits a command line as sh would for the simple cases the
// examples use: words, '...' and "..." quoting, a # comment, and a pipe
// (what follows it is not podnet's).
func shellWords(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == '\'' || ch == '"':
			end := strings.IndexByte(line[i+1:], ch)
			if end < 0 {
				return nil, errUnclosedQuote
			}
			cur.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case ch == ' ' || ch == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case (ch == '#' && !inWord) || ch == '|':
			i = len(line)
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

var errUnclosedQuote = errors.New("unclosed quote")

func TestShellWords(t *testing.T) {
	for in, want := range map[string]string{
		`  podnet probe a 1.2.3.4:80   # comment`:             "podnet|probe|a|1.2.3.4:80",
		`podnet trace a '[fd00::7]:80/tcp'`:                   "podnet|trace|a|[fd00::7]:80/tcp",
		`podnet status -o json | jq -r '.nodes[]'`:            "podnet|status|-o|json",
		`podnet down --cluster "a | b # c"`:                   "podnet|down|--cluster|a | b # c",
		`podnet clusters | awk 'NR > 1 {print $1}'`:           "podnet|clusters",
		`podnet exec frontend -- nslookup kubernetes.default`: "podnet|exec|frontend|--|nslookup|kubernetes.default",
	} {
		got, err := shellWords(in)
		if err != nil || strings.Join(got, "|") != want {
			t.Errorf("shellWords(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := shellWords(`podnet 'x`); err == nil {
		t.Error("an unclosed quote is no error")
	}
}
