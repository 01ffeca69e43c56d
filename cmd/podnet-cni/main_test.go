package main

// These tests run the plugin's real entry point, main, as a runtime does:
// a separate process (this test binary, re-executed with
// PODNET_CNI_TEST_RUN_MAIN=1), the CNI_* variables in its environment and
// the config on stdin, and read its stdout and exit code. No case gets past
// the checks that come before the kernel (CNI_NETNS names a namespace that
// does not exist; DEL, GC and CHECK get configs they reject), so they need
// no root and touch no namespace.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if os.Getenv("PODNET_CNI_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// plugin is one run of the plugin.
type plugin struct {
	stdout, stderr []byte
	exit           int
}

// runPlugin runs main with env (NAME=value entries) and stdin, which is
// never closed when nil (a terminal-like stdin that nobody writes to).
func runPlugin(t *testing.T, env []string, stdin []byte) plugin {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append([]string{"PODNET_CNI_TEST_RUN_MAIN=1"}, env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	} else {
		// The read end of a pipe whose write end stays open: the child
		// gets the file itself (no copying goroutine to wait for), and a
		// read would block until the timeout.
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		defer pw.Close()
		cmd.Stdin = pr
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("the plugin did not finish in 20s (stderr %q)", errOut.String())
	}
	p := plugin{stdout: out.Bytes(), stderr: errOut.Bytes()}
	if ee, ok := err.(*exec.ExitError); ok {
		p.exit = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return p
}

// cniEnv is the environment of a verb: the standard variables (CNI_NETNS
// names no namespace), with overrides ("NAME=" drops NAME).
func cniEnv(command string, overrides ...string) []string {
	env := map[string]string{"CNI_COMMAND": command, "CNI_CONTAINERID": "ctr-main-test",
		"CNI_NETNS": "/run/netns/pnt-main-test-none", "CNI_IFNAME": "eth0", "CNI_PATH": "/nonexistent"}
	for _, o := range overrides {
		k, v, _ := strings.Cut(o, "=")
		env[k] = v
	}
	var out []string
	for k, v := range env {
		if v != "" {
			out = append(out, k+"="+v)
		}
	}
	slices.Sort(out)
	return out
}

// errorResult is what the CNI specification says an error is.
type errorResult struct {
	CNIVersion *string `json:"cniVersion"`
	Code       uint    `json:"code"`
	Msg        string  `json:"msg"`
	Details    string  `json:"details"`
}

// parseError reads stdout as exactly one CNI error object, with no field
// the specification does not name.
func parseError(out []byte) (errorResult, error) {
	var e errorResult
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, fmt.Errorf("not a CNI error object: %w: %q", err, out)
	}
	if dec.More() {
		return e, fmt.Errorf("more than one JSON value: %q", out)
	}
	return e, nil
}

func TestParseErrorRejectsWhatIsNoErrorObject(t *testing.T) {
	for _, out := range []string{``, `{"code":7,"msg":"x"} {}`, `{"code":7,"msg":"x","extra":1}`, `not json`} {
		if _, err := parseError([]byte(out)); err == nil {
			t.Errorf("parseError(%q) accepted it", out)
		}
	}
	e, err := parseError([]byte(`{"cniVersion":"1.0.0","code":7,"msg":"x"}`))
	if err != nil || e.CNIVersion == nil || *e.CNIVersion != "1.0.0" || e.Code != 7 {
		t.Errorf("parseError of a good object = %+v, %v", e, err)
	}
}

// TestEveryErrorCarriesTheRequestsVersion: whichever step fails (the
// environment, the config's JSON, its version, its validation, a verb's
// own checks), the error object's cniVersion is the version the config
// asked for, as written. A config whose version cannot be read (no JSON
// object, cniVersion not a string) gets the newest version the plugin
// speaks, 1.1.0; one without the field is 0.1.0, as CNI reads it.
func TestEveryErrorCarriesTheRequestsVersion(t *testing.T) {
	dir := t.TempDir()
	notADir := filepath.Join(dir, "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := func(cniVersion string, extra ...string) []byte {
		fields := []string{`"name":"pnt-main"`, `"type":"podnet-cni"`, fmt.Sprintf(`"dataDir":%q`, dir),
			`"ranges":[[{"subnet":"10.250.0.0/24"}]]`}
		if cniVersion != "" {
			fields = append([]string{fmt.Sprintf(`"cniVersion":%q`, cniVersion)}, fields...)
		}
		for _, e := range extra { // "key":value replacing the key's field
			key, _, _ := strings.Cut(e, ":")
			fields = slices.DeleteFunc(fields, func(f string) bool { return strings.HasPrefix(f, key+":") })
			fields = append(fields, e)
		}
		return []byte("{" + strings.Join(fields, ",") + "}")
	}
	prev := `"prevResult":{"cniVersion":"1.0.0","ips":"not a list"}`
	for _, tc := range []struct {
		name    string
		env     []string
		stdin   []byte
		code    uint
		version string
		msg     string
	}{
		{"ADD into a namespace that does not exist", cniEnv("ADD"), conf("1.0.0"), 3, "1.0.0", "cannot open network namespace"},
		{"ADD with no ranges", cniEnv("ADD"), conf("0.4.0", `"ranges":[]`), 7, "0.4.0", "ranges is missing"},
		{"ADD with an ipam section", cniEnv("ADD"), conf("0.3.1", `"ipam":{"type":"host-local"}`), 7, "0.3.1", "ipam type"},
		{"ADD without CNI_CONTAINERID", cniEnv("ADD", "CNI_CONTAINERID="), conf("1.0.0"), 4, "1.0.0", "CNI_CONTAINERID"},
		{"ADD with a 16-byte CNI_IFNAME", cniEnv("ADD", "CNI_IFNAME=eth0123456789abc"), conf("0.3.0"), 4, "0.3.0", "interface name is too long"},
		{"ADD without a network name", cniEnv("ADD"), conf("1.0.0", `"name":""`), 7, "1.0.0", "missing network name"},
		{"ADD of a version the plugin does not speak", cniEnv("ADD"), conf("7.0.0"), 1, "7.0.0", "incompatible CNI versions"},
		{"ADD of a config without cniVersion", cniEnv("ADD"), conf(""), 1, "0.1.0", "incompatible CNI versions"},
		{"ADD of malformed JSON", cniEnv("ADD"), []byte(`{"cniVersion":"1.0.0","name":`), 6, "1.1.0", "unexpected end of JSON input"},
		{"ADD of an empty stdin", cniEnv("ADD"), []byte{}, 6, "1.1.0", "unexpected end of JSON input"},
		{"ADD with a numeric cniVersion", cniEnv("ADD"), conf("", `"cniVersion":1.0`), 6, "1.1.0", "cannot unmarshal number"},
		{"DEL with a relative dataDir", cniEnv("DEL"), conf("1.0.0", `"dataDir":"rel"`), 7, "1.0.0", "must be an absolute path"},
		{"CHECK of a 0.3.1 config", cniEnv("CHECK"), conf("0.3.1"), 1, "0.3.1", "does not allow CHECK"},
		{"CHECK without prevResult", cniEnv("CHECK"), conf("1.0.0"), 7, "1.0.0", "CHECK needs prevResult"},
		{"CHECK with a prevResult that cannot be read", cniEnv("CHECK"), conf("1.0.0", prev), 6, "1.0.0", "prevResult"},
		{"GC of a 1.0.0 config", cniEnv("GC"), conf("1.0.0"), 1, "1.0.0", "does not allow GC"},
		{"GC with an unusable dataDir", cniEnv("GC"), conf("1.1.0", fmt.Sprintf(`"dataDir":%q`, notADir)), 5, "1.1.0", "podnet-cni"},
		{"STATUS of a 1.0.0 config", cniEnv("STATUS"), conf("1.0.0"), 1, "1.0.0", "does not allow STATUS"},
		{"STATUS with an unusable dataDir", cniEnv("STATUS"), conf("1.1.0", fmt.Sprintf(`"dataDir":%q`, notADir)), 50, "1.1.0", "podnet-cni"},
		{"an unknown CNI_COMMAND", cniEnv("FROB"), conf("1.0.0"), 4, "1.0.0", "unknown CNI_COMMAND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := runPlugin(t, tc.env, tc.stdin)
			if p.exit == 0 {
				t.Fatalf("exit 0, want an error; stdout %q", p.stdout)
			}
			e, err := parseError(p.stdout)
			if err != nil {
				t.Fatal(err)
			}
			if e.CNIVersion == nil || *e.CNIVersion != tc.version {
				got := "none"
				if e.CNIVersion != nil {
					got = *e.CNIVersion
				}
				t.Errorf("cniVersion %s, want %s", got, tc.version)
			}
			if e.Code != tc.code || !strings.Contains(e.Msg+" "+e.Details, tc.msg) {
				t.Errorf("error {code %d, %q, %q}, want code %d mentioning %q", e.Code, e.Msg, e.Details, tc.code, tc.msg)
			}
		})
	}
}

// TestVersionEchoesTheRequestedVersion: VERSION's cniVersion is the one
// on stdin (CNI specification, "Version" result); with nothing readable
// there, the newest the plugin speaks.
func TestVersionEchoesTheRequestedVersion(t *testing.T) {
	supported := []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}
	for _, tc := range []struct {
		stdin, want string
	}{
		{`{"cniVersion":"1.0.0"}`, "1.0.0"},
		{`{"cniVersion":"0.4.0"}`, "0.4.0"},
		{`{"cniVersion":"1.1.0"}`, "1.1.0"},
		{`{"cniVersion":"0.2.0"}`, "0.2.0"}, // unsupported: the list says so
		{``, "1.1.0"},
		{`not json`, "1.1.0"},
	} {
		t.Run(fmt.Sprintf("stdin %q", tc.stdin), func(t *testing.T) {
			p := runPlugin(t, []string{"CNI_COMMAND=VERSION"}, []byte(tc.stdin))
			if p.exit != 0 {
				t.Fatalf("exit %d: %s", p.exit, p.stdout)
			}
			var v struct {
				CNIVersion string   `json:"cniVersion"`
				Supported  []string `json:"supportedVersions"`
			}
			dec := json.NewDecoder(bytes.NewReader(p.stdout))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("VERSION result %q: %v", p.stdout, err)
			}
			if v.CNIVersion != tc.want || !slices.Equal(v.Supported, supported) {
				t.Errorf("VERSION = %+v, want cniVersion %s and supportedVersions %v", v, tc.want, supported)
			}
		})
	}
}

// TestWithoutACommandItSaysWhatItIs: run by hand with no CNI_COMMAND, the
// plugin names itself on stderr and exits 0 without reading stdin (a
// terminal nobody types into).
func TestWithoutACommandItSaysWhatItIs(t *testing.T) {
	p := runPlugin(t, nil, nil)
	if p.exit != 0 || len(p.stdout) != 0 || !strings.Contains(string(p.stderr), "podnet-cni") ||
		!strings.Contains(string(p.stderr), "CNI protocol versions supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0") {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 0, nothing on stdout, the name and versions on stderr", p.exit, p.stdout, p.stderr)
	}
}
