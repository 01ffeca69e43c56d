package cni_test

// Fixture conventions for the kernel tests (root only):
//   - every test makes its own "node" network namespace (pnt-node-XXXXXXXX) and
//     runs the plugin there, so nothing touches the machine's root namespace;
//   - pods are namespaces pnt-pod-XXXXXXXX; all are removed in t.Cleanup, also
//     when the test fails (removing the node removes every host-side veth);
//   - pod ranges are 10.250.0.0/24 and fd00:250::/64 unless a test says
//     otherwise; the node has 172.30.250.1/32 on lo as its own address, so it
//     has a source address for node-to-pod traffic;
//   - the plugin runs as a separate process (as a runtime runs it), entered
//     into the node namespace with nsenter.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"

	"github.com/podnet/podnet/internal/ipam"
	"github.com/podnet/podnet/internal/netns"
)

var (
	pluginBin   string // podnet-cni built for these tests
	recorderBin string // testdata/recorder built for these tests
	binDir      string
)

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() == 0 {
			dir, err := os.MkdirTemp("", "podnet-cni-test-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			binDir = dir
			pluginBin = filepath.Join(dir, "podnet-cni")
			recorderBin = filepath.Join(dir, "recorder")
			for out, pkg := range map[string]string{pluginBin: "../../cmd/podnet-cni", recorderBin: "./testdata/recorder"} {
				if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
					fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, b)
					return 1
				}
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: creating network namespaces needs root")
	}
}

type node struct {
	t       *testing.T
	path    string
	dataDir string
	network string
}

const nodeAddr = "172.30.250.1"

func newNode(t *testing.T) *node {
	t.Helper()
	needRoot(t)
	name := netns.UniqueName("pnt-node-")
	path, err := netns.Create(name)
	if err != nil {
		t.Fatalf("create node namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	err = netns.Do(path, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(nodeAddr), Mask: net.CIDRMask(32, 32)}})
	})
	if err != nil {
		t.Fatalf("node address: %v", err)
	}
	return &node{t: t, path: path, dataDir: t.TempDir(), network: "testnet"}
}

type pod struct {
	id   string
	path string
	name string
}

func (n *node) newPod() *pod {
	n.t.Helper()
	name := netns.UniqueName("pnt-pod-")
	path, err := netns.Create(name)
	if err != nil {
		n.t.Fatalf("create pod namespace: %v", err)
	}
	n.t.Cleanup(func() { _ = netns.Delete(name) })
	return &pod{id: "ctr-" + name, path: path, name: name}
}

// conf returns a network config with the given range sets (JSON arrays).
func (n *node) conf(cniVersion string, ranges ...string) string {
	if len(ranges) == 0 {
		ranges = []string{`[{"subnet":"10.250.0.0/24"}]`}
	}
	return fmt.Sprintf(`{"cniVersion":%q,"name":%q,"type":"podnet-cni","dataDir":%q,"ranges":[%s],"dns":{"nameservers":["10.96.0.10"]}}`,
		cniVersion, n.network, n.dataDir, strings.Join(ranges, ","))
}

const dualStack = `[{"subnet":"fd00:250::/64"}]`

// run executes the plugin in the node namespace and returns its stdout and
// exit code.
func (n *node) run(command, id, nsPath, ifName, stdin string, extraEnv ...string) ([]byte, int) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "--net="+n.path, pluginBin)
	cmd.Env = append([]string{
		"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + id, "CNI_NETNS=" + nsPath,
		"CNI_IFNAME=" + ifName, "CNI_PATH=" + binDir,
	}, extraEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		n.t.Fatalf("%s %s: plugin did not finish in 30s (stderr: %s)", command, id, stderr.String())
	}
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			n.t.Fatalf("%s: run plugin: %v", command, err)
		}
		code = ee.ExitCode()
	}
	return stdout.Bytes(), code
}

// add runs ADD and fails the test unless it succeeds.
func (n *node) add(p *pod, conf string) *types100.Result {
	n.t.Helper()
	out, code := n.run("ADD", p.id, p.path, "eth0", conf)
	if code != 0 {
		n.t.Fatalf("ADD %s: exit %d: %s", p.id, code, out)
	}
	return parseResult(n.t, out)
}

func parseResult(t *testing.T, out []byte) *types100.Result {
	t.Helper()
	var v struct {
		CNIVersion string `json:"cniVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("result is not JSON: %v: %s", err, out)
	}
	r, err := version.NewResult(v.CNIVersion, out)
	if err != nil {
		t.Fatalf("parse result: %v: %s", err, out)
	}
	r100, err := types100.NewResultFromResult(r)
	if err != nil {
		t.Fatalf("convert result: %v", err)
	}
	return r100
}

// mustFail runs a verb that must fail with code and a message containing msg.
func (n *node) mustFail(command, id, nsPath, ifName, stdin string, code uint, msg string, extraEnv ...string) {
	n.t.Helper()
	out, exit := n.run(command, id, nsPath, ifName, stdin, extraEnv...)
	if exit == 0 {
		n.t.Fatalf("%s succeeded, want error code %d: %s", command, code, out)
	}
	var e types.Error
	if err := json.Unmarshal(out, &e); err != nil {
		n.t.Fatalf("%s: error output is not JSON: %v: %q", command, err, out)
	}
	var conf struct {
		CNIVersion string `json:"cniVersion"`
	}
	if err := json.Unmarshal([]byte(stdin), &conf); err != nil || conf.CNIVersion == "" {
		n.t.Fatalf("mustFail needs a config with a cniVersion: %v", err)
	}
	checkErrorVersion(n.t, out, conf.CNIVersion)
	if e.Code != code {
		n.t.Errorf("%s: error code %d, want %d (msg %q)", command, e.Code, code, e.Msg)
	}
	if !strings.Contains(e.Msg+" "+e.Details, msg) {
		n.t.Errorf("%s: error message %q does not mention %q", command, e.Msg, msg)
	}
}

// checkErrorVersion checks that a CNI error object says cniVersion want.
func checkErrorVersion(t *testing.T, out []byte, want string) {
	t.Helper()
	var v struct {
		CNIVersion *string `json:"cniVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.CNIVersion == nil || *v.CNIVersion != want {
		t.Errorf("error object %q: cniVersion is not %q (%v)", out, want, err)
	}
}

func (n *node) mustSucceed(command, id, nsPath, ifName, stdin string) {
	n.t.Helper()
	if out, code := n.run(command, id, nsPath, ifName, stdin); code != 0 {
		n.t.Fatalf("%s %s: exit %d: %s", command, id, code, out)
	}
}

// podIPs returns the addresses of the result.
func podIPs(r *types100.Result) []netip.Addr {
	var out []netip.Addr
	for _, ip := range r.IPs {
		a, _ := netip.AddrFromSlice(ip.Address.IP)
		out = append(out, a.Unmap())
	}
	return out
}

// hostLinks lists the names of the node's podnet host interfaces.
func (n *node) hostLinks() []string {
	n.t.Helper()
	var names []string
	err := netns.Do(n.path, func() error {
		links, err := netlink.LinkList()
		for _, l := range links {
			if strings.HasPrefix(l.Attrs().Name, "pn") {
				names = append(names, l.Attrs().Name)
			}
		}
		return err
	})
	if err != nil {
		n.t.Fatalf("list node links: %v", err)
	}
	return names
}

// reservations lists the IPAM store of the node's network.
func (n *node) reservations() []ipam.Reservation {
	n.t.Helper()
	st, err := ipam.NewDiskStore(n.dataDir, n.network)
	if err != nil {
		n.t.Fatal(err)
	}
	defer st.Close()
	if err := st.Lock(); err != nil {
		n.t.Fatal(err)
	}
	defer st.Unlock()
	list, err := st.List()
	if err != nil {
		n.t.Fatal(err)
	}
	return list
}

// inNS runs a command inside a namespace and returns its combined output
// and error.
func inNS(path string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + path, name}, args...)...).CombinedOutput()
}

func ping(t *testing.T, fromNS string, to netip.Addr) {
	t.Helper()
	args := []string{"-c", "1", "-W", "2", to.String()}
	if to.Is6() {
		args = append([]string{"-6"}, args...)
	}
	// A first echo to a pod wired a moment ago is lost now and then on a
	// loaded machine (seen 2 times in about 150 runs; not understood yet:
	// see the session notes), so up to three echoes, 2 s apart, and the
	// loss is logged; no answer to any of them fails the test.
	var out []byte
	var err error
	for try := 1; try <= 3; try++ {
		if out, err = inNS(fromNS, "ping", args...); err == nil {
			return
		}
		t.Logf("ping %s, echo %d of 3 unanswered: %v", to, try, err)
	}
	t.Fatalf("ping %s: %v\n%s", to, err, out)
}

// tcpExchange listens in serverNS on ip and connects from clientNS; it
// returns the address the server saw the client at.
func tcpExchange(t *testing.T, serverNS, clientNS string, ip netip.Addr) netip.Addr {
	t.Helper()
	seen, err := netns.TCPSeen(serverNS, clientNS, ip, netip.Addr{}, 3*time.Second)
	if err != nil {
		t.Fatalf("connect to %s: %v", ip, err)
	}
	return seen
}
