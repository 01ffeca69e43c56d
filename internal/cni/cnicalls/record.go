package cnicalls

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Call is one execution of a CNI plugin, as a runtime made it.
type Call struct {
	// Env holds the CNI_* variables of the call, empty ones included.
	Env map[string]string `json:"env"`
	// Stdin is the config the runtime wrote on stdin.
	Stdin json.RawMessage `json:"stdin,omitempty"`
	// Stdout is what the plugin answered (empty for a DEL or STATUS that
	// succeeded).
	Stdout json.RawMessage `json:"stdout,omitempty"`
	// Exit is the plugin's exit code.
	Exit int `json:"exit"`
	// Start is when the call began (ReadDir only; not in a fixture).
	Start time.Time `json:"-"`
}

// Command is the call's CNI_COMMAND.
func (c Call) Command() string { return c.Env["CNI_COMMAND"] }

// Args returns CNI_ARGS as a map ("K=V;K=V", as libcni writes it).
func (c Call) Args() map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(c.Env["CNI_ARGS"], ";") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}

// StdinField decodes the stdin's top-level field key into v.
func (c Call) StdinField(key string, v any) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(c.Stdin, &m); err != nil {
		return fmt.Errorf("stdin of %s: %w", c.Command(), err)
	}
	raw, ok := m[key]
	if !ok {
		return fmt.Errorf("stdin of %s has no %q", c.Command(), key)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("stdin of %s: %q: %w", c.Command(), key, err)
	}
	return nil
}

// WithStdinField returns a copy of c whose stdin has the top-level field
// key set to v (added when missing).
func (c Call) WithStdinField(key string, v any) (Call, error) {
	var m map[string]any
	if err := json.Unmarshal(c.Stdin, &m); err != nil {
		return c, fmt.Errorf("stdin of %s: %w", c.Command(), err)
	}
	m[key] = v
	b, err := json.Marshal(m)
	if err != nil {
		return c, fmt.Errorf("stdin of %s: %w", c.Command(), err)
	}
	c.Stdin = b
	return c, nil
}

// RecorderScript returns a /bin/sh program that records each call in a new
// directory under dir and then runs plugin with the same environment and
// stdin, passing on its stdout and exit code. dir and plugin are paths as
// the runtime sees them. Each call's directory is named after the time it
// began (nanoseconds) and the recorder's pid; "exit" is written last.
func RecorderScript(dir, plugin string) []byte {
	return fmt.Appendf(nil, `#!/bin/sh
# Written by a podnet test (package cnicalls): records this CNI call, then
# runs the real plugin with it.
d=%s/$(date +%%s%%N)-$$
mkdir -p "$d" || exit 1
env -0 | grep -z '^CNI_' > "$d/env"
cat > "$d/stdin"
%s < "$d/stdin" > "$d/stdout"
rc=$?
cat "$d/stdout"
echo "$rc" > "$d/exit"
exit "$rc"
`, shellQuote(dir), shellQuote(plugin))
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// ErrUnfinished is returned by ReadDir while a recorded call is still
// running (its exit code is not written yet).
var ErrUnfinished = errors.New("a recorded call has not finished")

// ReadDir reads the calls RecorderScript recorded under dir, in the order
// they began. It returns ErrUnfinished (wrapped) while one is running.
func ReadDir(dir string) ([]Call, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("recorded calls: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names) // the same number of digits until the year 2286
	calls := make([]Call, 0, len(names))
	for _, name := range names {
		c, err := readCall(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		if ns, _, ok := strings.Cut(name, "-"); ok {
			if n, err := strconv.ParseInt(ns, 10, 64); err == nil {
				c.Start = time.Unix(0, n)
			}
		}
		calls = append(calls, c)
	}
	return calls, nil
}

func readCall(dir string) (Call, error) {
	c := Call{Env: map[string]string{}}
	exit, err := os.ReadFile(filepath.Join(dir, "exit"))
	if errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("%s: %w", dir, ErrUnfinished)
	}
	if err != nil {
		return c, err
	}
	if c.Exit, err = strconv.Atoi(strings.TrimSpace(string(exit))); err != nil {
		return c, fmt.Errorf("%s: exit code %q: %w", dir, exit, err)
	}
	env, err := os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		return c, err
	}
	for _, kv := range bytes.Split(env, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			c.Env[k] = v
		}
	}
	for name, dst := range map[string]*json.RawMessage{"stdin": &c.Stdin, "stdout": &c.Stdout} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return c, err
		}
		if *dst, err = rawJSON(b); err != nil {
			return c, fmt.Errorf("%s: %s: %w", dir, name, err)
		}
	}
	return c, nil
}

// rawJSON keeps b when it is JSON (compacted), nil when it is empty, and
// makes anything else a JSON string, so a call always encodes.
func rawJSON(b []byte) (json.RawMessage, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, nil
	}
	if json.Valid(b) {
		var out bytes.Buffer
		if err := json.Compact(&out, b); err != nil {
			return nil, err
		}
		return out.Bytes(), nil
	}
	return json.Marshal(string(b))
}
