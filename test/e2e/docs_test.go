package e2e

// The doc test: every command of README.md, examples/seed/README.md and
// docs/*.md runs as typed, in order, against a fresh local cluster started
// with the seed examples (what `make up` makes), and exits and prints as
// the doc says (doctext_test.go has the convention). A doc that drifts
// from the code fails `make test`, as CoreDNS's README test does.
//
// The docs are written for the default cluster ("podnet", typed as
// `podnet ...` with podnet on PATH). The test runs them unchanged against
// a cluster of its own:
//
//   - `podnet` on PATH is bin/podnet, and PODNET_CLUSTER, PODNET_STATE_DIR
//     and PODNET_TOOLS_BIN (the cluster flags' defaults) name the test's
//     cluster. Environment rather than rewriting, because a command is
//     then run exactly as written, wherever podnet appears in it (inside
//     $(...), after a pipe), and because a user with a second cluster
//     does the same.
//   - The names and addresses of the default plan that commands type (the
//     node and world namespaces, 10.96.0.10, 172.30.0.11, ...) are mapped
//     to the test's plan by docPlan, as text, in commands and expected
//     output; so are the fixed names of docs/cni.md's by-hand example.
//   - sudo is a no-op (the test runs as root, and sudo would reset PATH
//     and the environment).
//   - `make up` is the test's own cluster start, `make test` and
//     `make install` are never run (notRun), and `podnet down` runs once,
//     after every other command.
//
// Each file runs in one bash, so variables set by one command (API=$(...))
// are seen by the next; a reader types slower than the test, so a command
// that does not yet exit and print as documented is retried for a while.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// docPlan is the test cluster's address plan (a 172.28.x node network, as
// test/e2e's own clusters use, and ranges no other test uses).
var docPlan = []string{"--node-network", "172.28.66.0/24", "--pod-cidr", "10.172.0.0/16",
	"--service-cidr", "10.173.0.0/16", "--world-network", "198.18.77.0/24"}

// docReplacer maps what the docs type for the default cluster to the test
// cluster name's: namespaces named after the cluster, the default plan's
// addresses, and the names of docs/cni.md's example (made unique, under
// tmp).
func docReplacer(name, stateDir, tmp string) *strings.Replacer {
	return strings.NewReplacer(
		"/var/lib/podnet/podnet/", stateDir+"/",
		"podnet-world", name+"-world",
		"podnet-node-", name+"-node-",
		"172.30.0.", "172.28.66.",
		"10.244.", "10.172.",
		"10.96.", "10.173.",
		"203.0.113.", "198.18.77.",
		"demo-node", name+"-demo-node",
		"demo-pod", name+"-demo-pod",
		"/tmp/demo", filepath.Join(tmp, "demo"),
	)
}

// notRun are the commands the docs show that the test does not run, and
// why.
var notRun = map[string]string{
	"make up":      "the test's own cluster, started with the seed examples, is what make up makes",
	"make test":    "it runs this test",
	"make install": "the test puts bin/podnet on PATH itself and changes nothing outside the checkout",
}

// docFiles are the docs whose commands run, in this order: the quick
// start, the seed examples it applies, then docs/ by name.
func docFiles(t *testing.T) []string {
	files := []string{"README.md", "examples/seed/README.md"}
	more, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(more)
	for _, f := range more {
		files = append(files, filepath.Join("docs", filepath.Base(f)))
	}
	return files
}

// docCommands reads every doc's commands, failing on breaches of the
// convention.
func docCommands(t *testing.T) [][]docCommand {
	var all [][]docCommand
	n := 0
	for _, f := range docFiles(t) {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		cmds, errs := parseDoc(f, string(b))
		for _, e := range errs {
			t.Error(e)
		}
		all, n = append(all, cmds), n+len(cmds)
	}
	if t.Failed() {
		t.FailNow()
	}
	if n < 60 || len(all[0]) < 10 {
		t.Fatalf("found %d commands (%d in README.md): reading the docs is broken", n, len(all[0]))
	}
	return all
}

// The docs are readable by the convention, whether or not a cluster can
// run them (no root needed).
func TestDocsFollowTheConvention(t *testing.T) {
	n := 0
	for _, cmds := range docCommands(t) {
		for _, c := range cmds {
			if c.skip != "" {
				t.Logf("%s: skipped: %s", c.where(), c.skip)
			}
		}
		if len(cmds) > 0 {
			t.Logf("%s: %d commands", cmds[0].file, len(cmds))
		}
		n += len(cmds)
	}
	t.Logf("%d commands in all", n)
}

func TestDocCommands(t *testing.T) {
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	docs := docCommands(t)
	c := docCluster(t)
	tmp := t.TempDir()
	env := docEnv(t, c, tmp)
	rep := docReplacer(c.name, c.stateDir, tmp)
	t.Cleanup(func() {
		for _, ns := range []string{c.name + "-demo-node", c.name + "-demo-pod"} {
			_ = exec.Command("ip", "netns", "del", ns).Run() // left by a failed docs/cni.md example
		}
	})
	var down []docCommand
	for _, cmds := range docs {
		sh := startShell(t, env, tmp)
		for _, dc := range cmds {
			switch why := notRun[dc.firstLine()]; {
			case dc.skip != "":
				t.Logf("%s: skipped (%s): %s", dc.where(), dc.skip, dc.firstLine())
			case why != "":
				t.Logf("%s: not run (%s): %s", dc.where(), why, dc.firstLine())
			case dc.firstLine() == "podnet down":
				down = append(down, dc)
			default:
				runDocCommand(t, sh, dc, rep)
			}
		}
		sh.close()
	}
	if len(down) == 0 {
		t.Fatal("no doc shows podnet down")
	}
	sh := startShell(t, env, tmp)
	defer sh.close()
	dc := down[0]
	dc.want = append(dc.want, `cluster "`+c.name+`" removed`)
	runDocCommand(t, sh, dc, rep)
	if out, err := c.podnet("status"); err == nil {
		t.Errorf("%s: podnet down left the cluster running:\n%s", dc.where(), out)
	}
}

// docCluster starts the cluster the docs run against: the seed examples
// applied, every pod Ready, as a reader finds it after make up.
func docCluster(t *testing.T) *cluster {
	t.Helper()
	start := time.Now()
	c, err := up("doc-"+randHex(3), append([]string{"-f", filepath.Join(repoRoot, "examples", "seed")}, docPlan...)...)
	if err != nil {
		t.Fatalf("podnet up: %v", err)
	}
	t.Cleanup(c.down)
	c.kubectl(t, "wait", "--for=condition=Ready", "pods", "--all", "--all-namespaces", "--timeout=120s")
	t.Logf("cluster %s up with the seed examples Ready after %s", c.name, time.Since(start).Round(100*time.Millisecond))
	return c
}

// docEnv is the environment of the docs' shell: podnet, the bundled
// kubectl (as make install links it) and a no-op sudo first on PATH, the test cluster as the default one.
func docEnv(t *testing.T, c *cluster, tmp string) []string {
	t.Helper()
	bin := filepath.Join(tmp, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(podnetBin, filepath.Join(bin, "podnet")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(toolsBin, "kubectl"), filepath.Join(bin, "kubectl")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "sudo"), []byte("#!/bin/sh\n# the doc test runs as root\nexec env \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PODNET_") && !strings.HasPrefix(kv, "KUBECONFIG=") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	return append(env, "PATH="+bin+":"+os.Getenv("PATH"),
		"PODNET_CLUSTER="+c.name, "PODNET_STATE_DIR="+c.stateDir, "PODNET_TOOLS_BIN="+toolsBin)
}

// runDocCommand runs one command until it exits and prints as documented,
// for at most docRetry.
func runDocCommand(t *testing.T, sh *shell, dc docCommand, rep *strings.Replacer) {
	t.Helper()
	text := rep.Replace(dc.text)
	want := make([]string, len(dc.want))
	for i, w := range dc.want {
		want[i] = rep.Replace(w)
	}
	start := time.Now()
	first := ""
	for {
		out, code, err := sh.run(text, docTimeout)
		if err != nil {
			t.Fatalf("%s: %s: %v\n%s", dc.where(), dc.firstLine(), err, out)
		}
		problem := matchOutput(want, out)
		if code != dc.exit {
			problem = fmt.Errorf("exit status %d, the doc says %d", code, dc.exit)
		}
		if problem == nil {
			return
		}
		if first == "" {
			first = fmt.Sprintf("  first run: %v\n  output:\n%s", problem, indent(out))
		}
		if time.Since(start) > docRetry {
			t.Errorf("%s: %s\n  ran: %s\n%s\n  last run, %s later: %v\n  output:\n%s", dc.where(), dc.firstLine(), text,
				first, time.Since(start).Round(time.Second), problem, indent(out))
			return
		}
		time.Sleep(time.Second)
	}
}

const (
	docTimeout = time.Minute      // one run of one command
	docRetry   = 15 * time.Second // how long a command may take to come true
)

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

// shell is one bash that runs a doc's commands in turn, so that variables
// carry from one command to the next. Each command is a file sourced with
// stdin from /dev/null and its output in a file; bash reports its exit
// status on stdout.
type shell struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	status chan string
	dir    string
	n      int
}

func startShell(t *testing.T, env []string, tmp string) *shell {
	t.Helper()
	dir, err := os.MkdirTemp(tmp, "sh-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "--noprofile", "--norc")
	cmd.Dir, cmd.Env = repoRoot, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &shell{cmd: cmd, stdin: stdin, status: make(chan string), dir: dir}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.status <- sc.Text()
		}
		close(s.status)
	}()
	t.Cleanup(s.close)
	return s
}

// run runs text and returns its output and exit status; an error when the
// shell died or the command did not end within timeout.
func (s *shell) run(text string, timeout time.Duration) (string, int, error) {
	s.n++
	script, outFile := filepath.Join(s.dir, fmt.Sprintf("%d.sh", s.n)), filepath.Join(s.dir, fmt.Sprintf("%d.out", s.n))
	if err := os.WriteFile(script, []byte(text+"\n"), 0o644); err != nil {
		return "", 0, err
	}
	if _, err := fmt.Fprintf(s.stdin, ". %s </dev/null >%s 2>&1; echo \"doc-test-status $?\"\n", script, outFile); err != nil {
		return "", 0, fmt.Errorf("the shell is gone: %w", err)
	}
	var line string
	var ok bool
	select {
	case line, ok = <-s.status:
	case <-time.After(timeout):
	}
	b, _ := os.ReadFile(outFile)
	code, err := strconv.Atoi(strings.TrimPrefix(line, "doc-test-status "))
	switch {
	case line == "" && ok:
		return string(b), 0, fmt.Errorf("the shell printed an empty line instead of the exit status")
	case line == "":
		s.close() // the command may still run: end it with its shell
		return string(b), 0, fmt.Errorf("no exit status after %s (or the shell exited)", timeout)
	case err != nil:
		return string(b), 0, fmt.Errorf("the shell printed %q instead of the exit status", line)
	}
	return string(b), code, nil
}

// close ends the shell and whatever its commands left running.
func (s *shell) close() {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.stdin.Close()
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	_ = s.cmd.Wait()
}
