package e2e

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/podnet/podnet/internal/agent"
	"github.com/podnet/podnet/internal/cni/cnicalls"
	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/localcluster/crinode"
)

// updateCNIFixture makes TestContainerdCNICalls write what it recorded
// as the fixture podnet-cni's tests replay, instead of comparing with it.
var updateCNIFixture = flag.Bool("update-cni-fixture", false,
	"TestContainerdCNICalls: write the recorded containerd CNI calls to "+cniFixture)

// cniFixture is the shape of containerd's CNI calls that podnet-cni's
// tests replay (internal/cni TestContainerdFixtureConfigsParse and
// TestKernelReplaysContainerdCalls).
const cniFixture = "internal/cni/testdata/containerd-calls.json"

const cniRecPod = `
apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: podnet/test, ports: [{containerPort: 80}]}]
`

// TestContainerdCNICalls records the CNI calls containerd makes on node 1
// for one pod's life (ADD, DEL, and the STATUS calls of the kubelet's
// runtime status polls), checks each against what the agent's conflist
// and the pod say it must carry, checks podnet-cni's answers, and compares
// their shape with the fixture podnet-cni's unit tests replay. Refresh
// the fixture with -update-cni-fixture (docs/cni.md, "What containerd
// sends").
func TestContainerdCNICalls(t *testing.T) {
	c := containerdCluster(t)
	cfg, err := localcluster.Load(c.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	node := cfg.NodeName(1)
	rec := installCNIRecorder(t, cfg, 1)
	// containerd calls the recorder once it has loaded its conflist: the
	// kubelet asks for the runtime's status every 5 s, and containerd runs
	// STATUS for it (the conflist says cniVersion 1.1.0).
	rec.waitFor(t, 60*time.Second, "a STATUS call through the recorder", func(calls []cnicalls.Call) bool {
		return len(withCommand(calls, "STATUS")) > 0
	})

	pod := "cnirec-" + randHex(3)
	c.apply(t, fmt.Sprintf(cniRecPod, pod, node))
	t.Cleanup(func() { _, _ = c.podnet("kubectl", "--", "delete", "pod", pod, "--ignore-not-found", "--wait=false") })
	c.kubectl(t, "wait", "--for=condition=Ready", "pod/"+pod, "--timeout=120s")
	uid := c.kubectl(t, "get", "pod", pod, "-o", "jsonpath={.metadata.uid}")
	podIP := c.kubectl(t, "get", "pod", pod, "-o", "jsonpath={.status.podIP}")
	c.kubectl(t, "delete", "pod", pod, "--wait=true")
	rec.waitFor(t, 60*time.Second, "the pod's DEL and a STATUS call after it", func(calls []cnicalls.Call) bool {
		add := podCalls(calls, pod, "ADD")
		if len(add) == 0 {
			return false
		}
		i := lastIndex(calls, func(c cnicalls.Call) bool {
			return c.Command() == "DEL" && c.Env["CNI_CONTAINERID"] == add[0].Env["CNI_CONTAINERID"]
		})
		return i >= 0 && len(withCommand(calls[i:], "STATUS")) > 0
	})
	calls := rec.remove(t)
	logCNICalls(t, calls)

	want := expectedCNICalls{conflist: rec.conflist, plugin: rec.plugin, recType: rec.pluginType, pod: pod, uid: uid, podIP: podIP}
	want.check(t, calls)
	calls = normalizeRecorded(t, calls, rec.pluginType)
	compareCNIFixture(t, c, calls, fixtureExamples(calls, pod))
}

// cniRecorder is the recorder installed on one node: a copy of the
// agent's conflist that sorts first and names the recorder as its
// plugin, and the recorder (cnicalls.RecorderScript) in the node's CNI
// bin directory, which runs the real podnet-cni.
type cniRecorder struct {
	dir        string         // where the calls are recorded (host's path)
	conf       string         // the recorder's conflist
	script     string         // the recorder
	conflist   map[string]any // the agent's conflist
	plugin     map[string]any // the agent's podnet-cni plugin object in it
	pluginType string         // the recorder's plugin type (its file name)

	once  sync.Once
	calls []cnicalls.Call
}

// installCNIRecorder installs the recorder on node i, and removes it in
// t.Cleanup unless the test has (remove).
func installCNIRecorder(t *testing.T, cfg *localcluster.Config, i int) *cniRecorder {
	t.Helper()
	cniDir := filepath.Join(cfg.NodeDir(i), "cni") // the node's /etc/cni/net.d, /opt/cni/bin, /var/lib/cni
	typ := "podnet-cni-rec-" + randHex(3)
	rec := &cniRecorder{pluginType: typ, dir: filepath.Join(cniDir, "lib", typ),
		conf: filepath.Join(cniDir, "net.d", "05-"+typ+".conflist"), script: filepath.Join(cniDir, "bin", typ)}
	agentConf := filepath.Join(cniDir, "net.d", agent.CNIConfFile)
	if rec.conf >= agentConf {
		t.Fatalf("%s does not sort before the agent's %s: containerd would not take it", rec.conf, agentConf)
	}
	rec.conflist, rec.plugin = agentConflist(t, agentConf)
	t.Cleanup(func() { rec.remove(t) })

	if err := os.MkdirAll(rec.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := cnicalls.RecorderScript(filepath.Join(crinode.HostCNILibDir, typ), filepath.Join(crinode.HostCNIBinDir, "podnet-cni"))
	if err := os.WriteFile(rec.script, script, 0o755); err != nil {
		t.Fatal(err)
	}
	rec.plugin["type"] = typ
	b, err := json.MarshalIndent(rec.conflist, "", "  ")
	rec.plugin["type"] = "podnet-cni"
	if err != nil {
		t.Fatal(err)
	}
	// Written in place, not renamed into the directory: containerd
	// reloads on a write, a removal or a rename away, not on a creation.
	if err := os.WriteFile(rec.conf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorder %s installed on %s", typ, cfg.NodeName(i))
	return rec
}

// agentConflist reads the agent's conflist and finds its podnet-cni plugin.
func agentConflist(t *testing.T, path string) (conflist, plugin map[string]any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the agent's conflist: %v", err)
	}
	if err := json.Unmarshal(b, &conflist); err != nil {
		t.Fatalf("the agent's conflist %s: %v", path, err)
	}
	plugins, _ := conflist["plugins"].([]any)
	for _, p := range plugins {
		if m, ok := p.(map[string]any); ok && m["type"] == "podnet-cni" {
			if plugin != nil {
				t.Fatalf("the agent's conflist has podnet-cni twice:\n%s", b)
			}
			plugin = m
		}
	}
	if plugin == nil {
		t.Fatalf("the agent's conflist has no podnet-cni plugin:\n%s", b)
	}
	return conflist, plugin
}

// remove uninstalls the recorder (once) and returns every call it
// recorded. It removes the conflist first, waits until containerd has
// made no call through the recorder for 12 s (two status polls: containerd
// reloads its configuration on the removal), and only then removes the
// recorder, so the node never names a plugin that is not there. If
// containerd keeps calling it, the recorder stays and the test fails.
func (r *cniRecorder) remove(t *testing.T) []cnicalls.Call {
	t.Helper()
	r.once.Do(func() {
		if err := os.Remove(r.conf); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("remove the recorder's conflist: %v", err)
			return
		}
		count := func() int { e, _ := os.ReadDir(r.dir); return len(e) }
		last, quietSince, deadline := count(), time.Now(), time.Now().Add(90*time.Second)
		for time.Since(quietSince) < 12*time.Second {
			if time.Now().After(deadline) {
				t.Errorf("containerd still calls the recorder 90 s after its conflist went; leaving %s in place", r.script)
				return
			}
			time.Sleep(500 * time.Millisecond)
			if n := count(); n != last {
				last, quietSince = n, time.Now()
			}
		}
		if err := os.Remove(r.script); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("remove the recorder: %v", err)
		}
		calls, err := cnicalls.ReadDir(r.dir)
		if err != nil {
			t.Errorf("read the recorded calls: %v", err)
		}
		r.calls = calls
		if err := os.RemoveAll(r.dir); err != nil {
			t.Errorf("remove the recorded calls: %v", err)
		}
	})
	return r.calls
}

// waitFor waits until the calls recorded so far (all finished) satisfy ok.
func (r *cniRecorder) waitFor(t *testing.T, timeout time.Duration, what string, ok func([]cnicalls.Call) bool) {
	t.Helper()
	eventually(t, timeout, what, func() error {
		calls, err := cnicalls.ReadDir(r.dir)
		if err != nil {
			return err
		}
		if !ok(calls) {
			return fmt.Errorf("not among the %d calls recorded so far", len(calls))
		}
		return nil
	})
}

// callsWhere returns the calls that match.
func callsWhere(calls []cnicalls.Call, match func(cnicalls.Call) bool) []cnicalls.Call {
	var out []cnicalls.Call
	for _, c := range calls {
		if match(c) {
			out = append(out, c)
		}
	}
	return out
}

func withCommand(calls []cnicalls.Call, cmd string) []cnicalls.Call {
	return callsWhere(calls, func(c cnicalls.Call) bool { return c.Command() == cmd })
}

// podCalls are the calls of a command whose CNI_ARGS name the pod.
func podCalls(calls []cnicalls.Call, pod, cmd string) []cnicalls.Call {
	return callsWhere(calls, func(c cnicalls.Call) bool { return c.Command() == cmd && c.Args()["K8S_POD_NAME"] == pod })
}

func lastIndex(calls []cnicalls.Call, match func(cnicalls.Call) bool) int {
	for i := len(calls) - 1; i >= 0; i-- {
		if match(calls[i]) {
			return i
		}
	}
	return -1
}

// logCNICalls logs the recorded calls as a table.
func logCNICalls(t *testing.T, calls []cnicalls.Call) {
	t.Helper()
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "#\tstart\tcommand\tcontainer\tnetns\tifname\tpod\texit\tstdout")
	for i, c := range calls {
		id := c.Env["CNI_CONTAINERID"]
		if len(id) > 12 {
			id = id[:12]
		}
		args := c.Args()
		pod := ""
		if args["K8S_POD_NAME"] != "" {
			pod = args["K8S_POD_NAMESPACE"] + "/" + args["K8S_POD_NAME"]
		}
		out := string(c.Stdout)
		if len(out) > 60 {
			out = out[:60] + "..."
		}
		fmt.Fprintf(w, "%d\t+%.1fs\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", i, c.Start.Sub(calls[0].Start).Seconds(), c.Command(), id, c.Env["CNI_NETNS"], c.Env["CNI_IFNAME"], pod, c.Exit, out)
	}
	_ = w.Flush()
	t.Logf("%d CNI calls containerd made through the recorder:\n%s", len(calls), b.String())
}

// expectedCNICalls is what the recorded calls must carry: the agent's
// conflist (with the recorder's plugin type) and the pod's identity.
type expectedCNICalls struct {
	conflist, plugin map[string]any
	recType          string
	pod, uid, podIP  string
}

// containerd's pod network namespaces (netns_mounts_under_state_dir: its
// CRI plugin's state directory) and sandbox IDs.
var (
	criNetNS     = regexp.MustCompile(`^/run/containerd/io\.containerd\.grpc\.v1\.cri/netns/cni-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	criSandboxID = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func (e expectedCNICalls) check(t *testing.T, calls []cnicalls.Call) {
	adds := podCalls(calls, e.pod, "ADD")
	if len(adds) != 1 {
		t.Fatalf("%d ADD calls for %s, want 1", len(adds), e.pod)
	}
	add := adds[0]
	t.Run("ADD", func(t *testing.T) { e.checkAdd(t, add) })
	id := add.Env["CNI_CONTAINERID"]
	dels := callsWhere(calls, func(c cnicalls.Call) bool { return c.Command() == "DEL" && c.Env["CNI_CONTAINERID"] == id })
	t.Run("DEL", func(t *testing.T) {
		if len(dels) == 0 {
			t.Fatalf("no DEL for the sandbox %s", id)
		}
		for _, del := range dels {
			e.checkDel(t, add, del)
		}
	})
	t.Run("STATUS", func(t *testing.T) {
		for _, st := range withCommand(calls, "STATUS") {
			e.checkStatus(t, st)
		}
	})
	t.Run("no other command", func(t *testing.T) {
		for _, c := range calls {
			switch c.Command() {
			case "ADD", "DEL", "STATUS":
			default:
				// containerd 2.4.2 (go-cni v1.1.14) never calls GC or CHECK.
				t.Errorf("containerd sent %s (podnet-cni answered exit %d %s): check podnet-cni's answer, then refresh the fixture",
					c.Command(), c.Exit, c.Stdout)
			}
		}
	})
}

// wantStdin is the config a call of the recorder's plugin must get
// (before prevResult and runtimeConfig): the plugin's object with the
// list's name and cniVersion, as libcni builds it.
func (e expectedCNICalls) wantStdin() map[string]any {
	m := map[string]any{"cniVersion": e.conflist["cniVersion"], "name": e.conflist["name"]}
	for k, v := range e.plugin {
		m[k] = v
	}
	m["type"] = e.recType
	return m
}

func (e expectedCNICalls) checkAdd(t *testing.T, add cnicalls.Call) {
	id := add.Env["CNI_CONTAINERID"]
	checkCNIEnv(t, add, map[string]string{"CNI_COMMAND": "ADD", "CNI_IFNAME": "eth0", "CNI_PATH": crinode.HostCNIBinDir})
	if !criSandboxID.MatchString(id) {
		t.Errorf("ADD: CNI_CONTAINERID %q is not a sandbox ID", id)
	}
	if !criNetNS.MatchString(add.Env["CNI_NETNS"]) {
		t.Errorf("ADD: CNI_NETNS %q is not a network namespace under containerd's state directory (%s)", add.Env["CNI_NETNS"], criNetNS)
	}
	wantArgs := map[string]string{"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": e.pod,
		"K8S_POD_INFRA_CONTAINER_ID": id, "K8S_POD_UID": e.uid}
	if got := add.Args(); !reflect.DeepEqual(got, wantArgs) {
		t.Errorf("ADD: CNI_ARGS %q, want %v", add.Env["CNI_ARGS"], wantArgs)
	}
	stdin := decodeJSON(t, "ADD stdin", add.Stdin)
	if _, ok := e.plugin["capabilities"]; !ok && stdin["runtimeConfig"] != nil {
		t.Errorf("ADD: runtimeConfig %v, but the plugin declares no capabilities", stdin["runtimeConfig"])
	}
	delete(stdin, "runtimeConfig")
	if want := e.wantStdin(); !reflect.DeepEqual(stdin, want) {
		t.Errorf("ADD stdin:\n%s\nwant the agent's plugin with the list's name and cniVersion:\n%s", add.Stdin, mustJSON(t, want))
	}
	var res struct {
		CNIVersion string `json:"cniVersion"`
		IPs        []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(add.Stdout, &res); add.Exit != 0 || err != nil {
		t.Fatalf("ADD: exit %d, stdout %s (%v)", add.Exit, add.Stdout, err)
	}
	if res.CNIVersion != e.conflist["cniVersion"] || len(res.IPs) != 1 || !strings.HasPrefix(res.IPs[0].Address, e.podIP+"/") {
		t.Errorf("ADD result %s: want cniVersion %v and the pod's IP %s", add.Stdout, e.conflist["cniVersion"], e.podIP)
	}
}

func (e expectedCNICalls) checkDel(t *testing.T, add, del cnicalls.Call) {
	checkCNIEnv(t, del, map[string]string{"CNI_COMMAND": "DEL", "CNI_IFNAME": "eth0", "CNI_PATH": crinode.HostCNIBinDir,
		"CNI_ARGS": del.Env["CNI_ARGS"]})
	if ns := del.Env["CNI_NETNS"]; ns != "" && ns != add.Env["CNI_NETNS"] {
		t.Errorf("DEL: CNI_NETNS %q, want the ADD's %q or none", ns, add.Env["CNI_NETNS"])
	}
	if !reflect.DeepEqual(del.Args(), add.Args()) {
		t.Errorf("DEL: CNI_ARGS %q, the ADD had %q", del.Env["CNI_ARGS"], add.Env["CNI_ARGS"])
	}
	stdin := decodeJSON(t, "DEL stdin", del.Stdin)
	prev, ok := stdin["prevResult"]
	if !ok {
		t.Errorf("DEL has no prevResult: %s", del.Stdin)
	} else if want := decodeJSON(t, "ADD stdout", add.Stdout); !reflect.DeepEqual(prev, any(want)) {
		t.Errorf("DEL prevResult %s, want the ADD's result %s", mustJSON(t, prev), add.Stdout)
	}
	delete(stdin, "prevResult")
	if want := decodeJSON(t, "ADD stdin", add.Stdin); !reflect.DeepEqual(stdin, want) {
		t.Errorf("DEL stdin without prevResult:\n%s\nwant the ADD's:\n%s", mustJSON(t, stdin), add.Stdin)
	}
	if del.Exit != 0 || len(del.Stdout) != 0 {
		t.Errorf("DEL: exit %d, stdout %s; want success and no output", del.Exit, del.Stdout)
	}
}

// checkStatus: STATUS carries the plugin's config and no attachment, and
// podnet-cni answered it as the specification says a ready plugin does:
// exit 0, nothing on stdout.
func (e expectedCNICalls) checkStatus(t *testing.T, st cnicalls.Call) {
	checkCNIEnv(t, st, map[string]string{"CNI_COMMAND": "STATUS", "CNI_CONTAINERID": "", "CNI_NETNS": "", "CNI_IFNAME": "",
		"CNI_ARGS": "", "CNI_PATH": crinode.HostCNIBinDir})
	if got, want := decodeJSON(t, "STATUS stdin", st.Stdin), e.wantStdin(); !reflect.DeepEqual(got, want) {
		t.Errorf("STATUS stdin:\n%s\nwant:\n%s", st.Stdin, mustJSON(t, want))
	}
	if st.Exit != 0 || len(st.Stdout) != 0 {
		t.Errorf("STATUS: exit %d, stdout %s; want success and no output", st.Exit, st.Stdout)
	}
}

// checkCNIEnv checks the call's CNI_* variables: want's values, and no
// variable beyond the six libcni sets.
func checkCNIEnv(t *testing.T, c cnicalls.Call, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got, ok := c.Env[k]; !ok || got != v {
			t.Errorf("%s: %s=%q (set: %v), want %q", c.Command(), k, got, ok, v)
		}
	}
	for k := range c.Env {
		switch k {
		case "CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH":
		default:
			t.Errorf("%s: unexpected variable %s=%q", c.Command(), k, c.Env[k])
		}
	}
}

func decodeJSON(t *testing.T, what string, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %q: %v", what, b, err)
	}
	return m
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// normalizeRecorded names podnet-cni as the plugin type in the calls'
// stdin, where the recorder's conflist named the recorder: what containerd
// sends podnet-cni through the agent's own conflist.
func normalizeRecorded(t *testing.T, calls []cnicalls.Call, recType string) []cnicalls.Call {
	t.Helper()
	out := make([]cnicalls.Call, len(calls))
	for i, c := range calls {
		var typ string
		if err := c.StdinField("type", &typ); err != nil || typ != recType {
			t.Fatalf("call %d (%s): plugin type %q (%v), want the recorder's %s", i, c.Command(), typ, err, recType)
		}
		var err error
		if out[i], err = c.WithStdinField("type", "podnet-cni"); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// fixtureExamples picks one call of each command for the fixture: the
// pod's ADD and the DEL of its sandbox, and the first of any other command,
// in the order they came.
func fixtureExamples(calls []cnicalls.Call, pod string) []cnicalls.Call {
	var out []cnicalls.Call
	var sandbox string
	seen := map[string]bool{}
	for _, c := range calls {
		switch cmd := c.Command(); {
		case cmd == "ADD" && c.Args()["K8S_POD_NAME"] == pod && sandbox == "":
			sandbox = c.Env["CNI_CONTAINERID"]
		case cmd == "DEL" && sandbox != "" && c.Env["CNI_CONTAINERID"] == sandbox && !seen[cmd]:
		case cmd != "ADD" && cmd != "DEL" && !seen[cmd]:
		default:
			continue
		}
		seen[c.Command()] = true
		out = append(out, c)
	}
	return out
}

// compareCNIFixture fails when the recorded calls differ in shape from
// the fixture podnet-cni's tests replay, or were made by another runtime
// version; with -update-cni-fixture it writes examples as the new fixture.
func compareCNIFixture(t *testing.T, c *cluster, calls, examples []cnicalls.Call) {
	runtime := strings.TrimSpace(c.kubectl(t, "get", "node", "-o", "jsonpath={.items[0].status.nodeInfo.containerRuntimeVersion}"))
	path := filepath.Join(repoRoot, cniFixture)
	if *updateCNIFixture {
		f := &cnicalls.Fixture{Runtime: runtime, Comment: fixtureComment, Calls: examples}
		if err := f.Save(path); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s: %d calls recorded from %s", cniFixture, len(f.Calls), runtime)
		return
	}
	f, err := cnicalls.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	diffs, err := cnicalls.Compare(calls, f.Calls)
	if err != nil {
		t.Fatal(err)
	}
	if f.Runtime != runtime {
		diffs = append(diffs, fmt.Sprintf("the fixture was recorded from %s, the nodes run %s", f.Runtime, runtime))
	}
	if len(diffs) > 0 {
		t.Errorf("containerd's CNI calls differ from %s, which podnet-cni's tests assume:\n  %s\n"+
			"check podnet-cni against what containerd sends now, then refresh the fixture: %s",
			cniFixture, strings.Join(diffs, "\n  "), fixtureRefresh)
	}
}

const (
	fixtureRefresh = "make build image && go test ./test/e2e -run TestContainerdCNICalls -update-cni-fixture"
	fixtureComment = "CNI calls containerd made to podnet-cni for one pod on a `podnet up --node-runtime containerd` node " +
		"(one of each command, in the order they came), recorded by test/e2e TestContainerdCNICalls with the plugin type " +
		"set back to podnet-cni. internal/cni's tests replay them; TestContainerdCNICalls fails when containerd's calls " +
		"change shape. Refresh: " + fixtureRefresh + " (docs/cni.md, \"What containerd sends\")."
)
