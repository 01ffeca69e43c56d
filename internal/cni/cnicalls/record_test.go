package cnicalls

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// fakePlugin is a plugin that echoes its stdin and exits 3 when its
// CNI_COMMAND is ADD, and prints nothing and exits 0 otherwise.
const fakePlugin = `#!/bin/sh
if [ "$CNI_COMMAND" = ADD ]; then cat; exit 3; fi
cat >/dev/null
`

// runRecorder runs the recorder as a runtime runs a plugin: env only, the
// config on stdin.
func runRecorder(t *testing.T, recorder string, env []string, stdin string) ([]byte, int) {
	t.Helper()
	cmd := exec.Command(recorder)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader([]byte(stdin))
	out, err := cmd.Output()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out, ee.ExitCode()
	case err != nil:
		t.Fatalf("run the recorder: %v", err)
	}
	return out, 0
}

func TestRecorderRecordsEachCallAndRunsThePlugin(t *testing.T) {
	dir := t.TempDir()
	plugin, recorder, calls := filepath.Join(dir, "plugin"), filepath.Join(dir, "recorder"), filepath.Join(dir, "calls")
	if err := os.WriteFile(plugin, []byte(fakePlugin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(recorder, RecorderScript(calls, plugin), 0o755); err != nil {
		t.Fatal(err)
	}
	add := `{"cniVersion":"1.1.0","name":"n"}`
	out, exit := runRecorder(t, recorder, []string{"CNI_COMMAND=ADD", "CNI_ARGS=K8S_POD_NAME=p;IgnoreUnknown=1",
		"CNI_NETNS=", "PATH=" + os.Getenv("PATH"), "HOME=/nonexistent"}, add)
	if string(out) != add || exit != 3 {
		t.Errorf("the recorder answered %q, exit %d; want the plugin's %q, exit 3", out, exit, add)
	}
	time.Sleep(time.Millisecond) // the next call begins later
	if out, exit := runRecorder(t, recorder, []string{"CNI_COMMAND=STATUS", "PATH=" + os.Getenv("PATH")}, `{}`); len(out) != 0 || exit != 0 {
		t.Errorf("STATUS through the recorder: %q, exit %d; want the plugin's nothing, exit 0", out, exit)
	}

	got, err := ReadDir(calls)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Command() != "ADD" || got[1].Command() != "STATUS" {
		t.Fatalf("recorded %+v, want ADD then STATUS", got)
	}
	a := got[0]
	if len(a.Env) != 3 || a.Env["CNI_NETNS"] != "" || a.Args()["K8S_POD_NAME"] != "p" || a.Args()["IgnoreUnknown"] != "1" {
		t.Errorf("ADD env %v: want CNI_COMMAND, CNI_ARGS and the empty CNI_NETNS, nothing else", a.Env)
	}
	if string(a.Stdin) != add || string(a.Stdout) != add || a.Exit != 3 {
		t.Errorf("ADD recorded stdin %s, stdout %s, exit %d; want %s twice and 3", a.Stdin, a.Stdout, a.Exit, add)
	}
	if s := got[1]; s.Stdout != nil || s.Exit != 0 || !s.Start.After(a.Start) || time.Since(a.Start) > time.Minute {
		t.Errorf("STATUS recorded stdout %q exit %d start %v (ADD %v); want none, 0, after the ADD", s.Stdout, s.Exit, s.Start, a.Start)
	}
}

func TestReadDirWaitsForRunningCalls(t *testing.T) {
	dir := t.TempDir()
	call := filepath.Join(dir, "1700000000000000000-42")
	if err := os.MkdirAll(call, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"env", "stdin", "stdout"} {
		if err := os.WriteFile(filepath.Join(call, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ReadDir(dir); !errors.Is(err, ErrUnfinished) {
		t.Errorf("ReadDir with a call that has no exit code: %v, want ErrUnfinished", err)
	}
	if err := os.WriteFile(filepath.Join(call, "exit"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadDir(dir)
	if err != nil || len(got) != 1 || !got[0].Start.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("ReadDir = %+v, %v; want one call begun at 1700000000", got, err)
	}
}

func TestWithStdinFieldSetsOneField(t *testing.T) {
	c := Call{Env: map[string]string{"CNI_COMMAND": "ADD"}, Stdin: []byte(`{"type":"rec","ranges":[[{"subnet":"10.0.0.0/24"}]]}`)}
	d, err := c.WithStdinField("type", "podnet-cni")
	if err != nil {
		t.Fatal(err)
	}
	var typ string
	var ranges [][]map[string]string
	if err := d.StdinField("type", &typ); err != nil || typ != "podnet-cni" {
		t.Errorf("type %q, %v; want podnet-cni", typ, err)
	}
	if err := d.StdinField("ranges", &ranges); err != nil || ranges[0][0]["subnet"] != "10.0.0.0/24" {
		t.Errorf("ranges %v, %v; want them unchanged", ranges, err)
	}
	if err := c.StdinField("type", &typ); err != nil || typ != "rec" {
		t.Errorf("the original call's type is %q (%v), want rec: WithStdinField changed it", typ, err)
	}
	if err := c.StdinField("dataDir", &typ); err == nil {
		t.Error("StdinField of a missing key succeeded")
	}
}
