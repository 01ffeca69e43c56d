package cni_test

// These tests take their input from testdata/containerd-calls.json: the
// CNI calls containerd 2.4.2 made to podnet-cni for one pod (ADD, DEL with
// prevResult, STATUS), recorded by test/e2e's TestContainerdCNICalls,
// which fails when containerd's calls no longer have the fixture's shape.
// Refresh it with that test's -update-cni-fixture (docs/cni.md, "What
// containerd sends"). The replay changes only what belongs to the machine
// the calls were recorded on: the network namespace, dataDir and CNI_PATH.

import (
	"encoding/json"
	"net/netip"
	"slices"
	"sort"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/podnet/podnet/internal/cni"
	"github.com/podnet/podnet/internal/cni/cnicalls"
)

const containerdFixture = "testdata/containerd-calls.json"

func containerdCalls(t *testing.T) (add, del, status cnicalls.Call) {
	t.Helper()
	f, err := cnicalls.Load(containerdFixture)
	if err != nil {
		t.Fatal(err)
	}
	for cmd, dst := range map[string]*cnicalls.Call{"ADD": &add, "DEL": &del, "STATUS": &status} {
		c, ok := f.Example(cmd)
		if !ok {
			t.Fatalf("%s has no %s", containerdFixture, cmd)
		}
		*dst = c
	}
	return add, del, status
}

// withField is c.WithStdinField that fails the test on error.
func withField(t *testing.T, c cnicalls.Call, key string, v any) cnicalls.Call {
	t.Helper()
	c, err := c.WithStdinField(key, v)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestContainerdFixtureConfigsParse: the configs containerd sends are
// valid for the verbs that read them (no root: in-process), DEL's
// prevResult is the ADD's result as a 1.1.0 result, and STATUS succeeds
// on a usable IPAM directory.
func TestContainerdFixtureConfigsParse(t *testing.T) {
	add, del, status := containerdCalls(t)
	for _, c := range []cnicalls.Call{add, del, status} {
		if _, err := cni.ParseConfig(c.Stdin); err != nil {
			t.Errorf("%s config: %v", c.Command(), err)
		}
	}
	var prev, addResult any
	if err := del.StdinField("prevResult", &prev); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(add.Stdout, &addResult); err != nil {
		t.Fatal(err)
	}
	b1, _ := json.Marshal(prev)
	b2, _ := json.Marshal(addResult)
	if string(b1) != string(b2) {
		t.Errorf("DEL's prevResult %s is not the ADD's result %s", b1, b2)
	}
	conf, err := cni.ParseConfig(del.Stdin)
	if err != nil {
		t.Fatal(err)
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		t.Fatalf("DEL's prevResult: %v", err)
	}
	if r, err := types100.GetResult(conf.PrevResult); err != nil || len(r.IPs) != 1 || len(r.Interfaces) != 2 {
		t.Errorf("DEL's prevResult as a 1.1.0 result: %+v, %v; want two interfaces and one address", r, err)
	}
	status = withField(t, status, "dataDir", t.TempDir())
	if err := cni.Status(&skel.CmdArgs{StdinData: status.Stdin}); err != nil {
		t.Errorf("STATUS of containerd's config: %v", err)
	}
}

// env returns a recorded call's environment with overrides (name=value),
// without CNI_PATH (runEnv sets the test's).
func env(c cnicalls.Call, overrides map[string]string) []string {
	var out []string
	for k, v := range c.Env {
		if o, ok := overrides[k]; ok {
			v = o
		}
		if k != "CNI_PATH" {
			out = append(out, k+"="+v)
		}
	}
	sort.Strings(out)
	return out
}

// TestKernelReplaysContainerdCalls runs podnet-cni (the binary, in a node
// namespace) with the environment and stdin containerd sent: STATUS, then
// ADD, then DEL with this ADD's result as prevResult, as containerd takes
// it from its cache. The result has the shape containerd cached, and DEL
// frees everything ADD took, also when repeated without the namespace.
func TestKernelReplaysContainerdCalls(t *testing.T) {
	addCall, delCall, statusCall := containerdCalls(t)
	n := newNode(t)
	if err := addCall.StdinField("name", &n.network); err != nil {
		t.Fatal(err)
	}
	p := n.newPod()
	for _, c := range []*cnicalls.Call{&addCall, &delCall, &statusCall} {
		*c = withField(t, *c, "dataDir", n.dataDir)
	}

	if out, code := n.runEnv(string(statusCall.Stdin), env(statusCall, nil)); code != 0 || len(out) != 0 {
		t.Errorf("STATUS: exit %d, stdout %q; want success and no output", code, out)
	}

	out, code := n.runEnv(string(addCall.Stdin), env(addCall, map[string]string{"CNI_NETNS": p.path}))
	if code != 0 {
		t.Fatalf("ADD: exit %d: %s", code, out)
	}
	res := parseResult(t, out)
	var ranges [][]map[string]string
	if err := addCall.StdinField("ranges", &ranges); err != nil {
		t.Fatal(err)
	}
	if ips := podIPs(res); len(ips) != 1 || !netip.MustParsePrefix(ranges[0][0]["subnet"]).Contains(ips[0]) {
		t.Errorf("ADD: addresses %v, want one from %s", ips, ranges[0][0]["subnet"])
	}
	got, err1 := cnicalls.Paths(out)
	want, err2 := cnicalls.Paths(addCall.Stdout)
	if err1 != nil || err2 != nil || !slices.Equal(got, want) {
		t.Errorf("ADD result has keys %q, the result containerd cached had %q (%v, %v)", got, want, err1, err2)
	}
	if len(n.hostLinks()) != 1 || len(n.reservations()) != 1 {
		t.Fatalf("after ADD: host links %v, reservations %v; want one each", n.hostLinks(), n.reservations())
	}

	var prev any
	if err := json.Unmarshal(out, &prev); err != nil {
		t.Fatal(err)
	}
	delCall = withField(t, delCall, "prevResult", prev)
	netnsOnDel := p.path
	if delCall.Env["CNI_NETNS"] == "" {
		netnsOnDel = ""
	}
	for _, ns := range []string{netnsOnDel, ""} { // containerd sends CNI_NETNS "" once the sandbox's namespace is closed (a second stop)
		if out, code := n.runEnv(string(delCall.Stdin), env(delCall, map[string]string{"CNI_NETNS": ns})); code != 0 || len(out) != 0 {
			t.Errorf("DEL (CNI_NETNS %q): exit %d, stdout %q; want success and no output", ns, code, out)
		}
	}
	if l, r := n.hostLinks(), n.reservations(); len(l) != 0 || len(r) != 0 {
		t.Errorf("after DEL: host links %v, reservations %v; want none", l, r)
	}
}
