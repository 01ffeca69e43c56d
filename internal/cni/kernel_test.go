package cni_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/podnet/podnet/internal/cni"
	"github.com/podnet/podnet/internal/netns"
)

func TestKernelTwoPodsOnOneNodeReachEachOther(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ranges []string
	}{
		{"over IPv4", nil},
		{"over IPv4 and IPv6 (dual-stack)", []string{`[{"subnet":"10.250.0.0/24"}]`, dualStack}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			conf := n.conf("1.1.0", tc.ranges...)
			p1, p2 := n.newPod(), n.newPod()
			ips1, ips2 := podIPs(n.add(p1, conf)), podIPs(n.add(p2, conf))
			if len(ips1) != len(tc.ranges)+boolInt(tc.ranges == nil) {
				t.Fatalf("pod got %v, want one address per range set", ips1)
			}
			for i := range ips1 {
				ping(t, p1.path, ips2[i])
				if seen := tcpExchange(t, p2.path, p1.path, ips2[i]); seen != ips1[i] {
					t.Errorf("receiver saw client %s, want the sender's pod IP %s (no NAT)", seen, ips1[i])
				}
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestKernelNodeReachesItsPods(t *testing.T) {
	n := newNode(t)
	conf := n.conf("1.1.0", `[{"subnet":"10.250.0.0/24"}]`, dualStack)
	p := n.newPod()
	ips := podIPs(n.add(p, conf))
	for _, ip := range ips {
		ping(t, n.path, ip)
		seen := tcpExchange(t, p.path, n.path, ip)
		if ip.Is4() && seen != netip.MustParseAddr(nodeAddr) {
			t.Errorf("pod saw node connection from %s, want the node's address %s", seen, nodeAddr)
		}
	}
}

func TestKernelResultDescribesTheAttachment(t *testing.T) {
	n := newNode(t)
	p := n.newPod()
	res := n.add(p, n.conf("1.1.0", `[{"subnet":"10.250.0.0/24"}]`, dualStack))
	if len(res.Interfaces) != 2 {
		t.Fatalf("interfaces = %v, want host and container", res.Interfaces)
	}
	host, ctr := res.Interfaces[0], res.Interfaces[1]
	if host.Name != cni.HostIfName(p.id, "eth0") || host.Sandbox != "" {
		t.Errorf("host interface = %+v, want name %s without sandbox", host, cni.HostIfName(p.id, "eth0"))
	}
	if ctr.Name != "eth0" || ctr.Sandbox != p.path || ctr.Mac == "" {
		t.Errorf("container interface = %+v, want eth0 in %s with a MAC", ctr, p.path)
	}
	want := []string{"10.250.0.2/32 gw 169.254.1.1 if 1", "fd00:250::2/128 gw fe80::1 if 1"}
	var got []string
	for _, ip := range res.IPs {
		got = append(got, fmt.Sprintf("%s gw %s if %d", ip.Address.String(), ip.Gateway, *ip.Interface))
	}
	if !slices.Equal(got, want) {
		t.Errorf("ips = %v, want %v", got, want)
	}
	var routes []string
	for _, r := range res.Routes {
		routes = append(routes, r.Dst.String()+" via "+r.GW.String())
	}
	if want := []string{"0.0.0.0/0 via 169.254.1.1", "::/0 via fe80::1"}; !slices.Equal(routes, want) {
		t.Errorf("routes = %v, want %v", routes, want)
	}
	if !slices.Equal(res.DNS.Nameservers, []string{"10.96.0.10"}) {
		t.Errorf("dns = %+v, want the config's nameservers", res.DNS)
	}
	// The kernel agrees with the result.
	var mac string
	err := netns.Do(p.path, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		mac = l.Attrs().HardwareAddr.String()
		if l.Attrs().MTU != cni.DefaultMTU {
			return fmt.Errorf("eth0 mtu %d, want %d", l.Attrs().MTU, cni.DefaultMTU)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if mac != ctr.Mac {
		t.Errorf("eth0 MAC %s, result says %s", mac, ctr.Mac)
	}
}

func TestKernelMTUIsApplied(t *testing.T) {
	n := newNode(t)
	p := n.newPod()
	conf := strings.Replace(n.conf("1.1.0"), `"type"`, `"mtu":1400,"type"`, 1)
	res := n.add(p, conf)
	for _, where := range []struct{ path, link string }{{p.path, "eth0"}, {n.path, res.Interfaces[0].Name}} {
		err := netns.Do(where.path, func() error {
			l, err := netlink.LinkByName(where.link)
			if err == nil && l.Attrs().MTU != 1400 {
				err = fmt.Errorf("%s mtu %d, want 1400", where.link, l.Attrs().MTU)
			}
			return err
		})
		if err != nil {
			t.Error(err)
		}
	}
}

func withPrev(t *testing.T, conf string, prev *types100.Result) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(conf), &m); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(prev)
	if err != nil {
		t.Fatal(err)
	}
	var pm map[string]any
	_ = json.Unmarshal(b, &pm)
	m["prevResult"] = pm
	out, _ := json.Marshal(m)
	return string(out)
}

func TestKernelCheckCatchesChanges(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, n *node, p *pod, res *types100.Result)
		want   string
	}{
		{"an intact attachment passes", nil, ""},
		{"a removed pod address is reported", func(t *testing.T, n *node, p *pod, res *types100.Result) {
			mustRun(t, p.path, "ip", "addr", "del", res.IPs[0].Address.String(), "dev", "eth0")
		}, "address 10.250.0.2 is missing from eth0"},
		{"a removed default route is reported", func(t *testing.T, n *node, p *pod, res *types100.Result) {
			mustRun(t, p.path, "ip", "route", "del", "default")
		}, "default route via 169.254.1.1 is missing from eth0"},
		{"a removed host route is reported", func(t *testing.T, n *node, p *pod, res *types100.Result) {
			mustRun(t, n.path, "ip", "route", "del", "10.250.0.2/32")
		}, "host route to 10.250.0.2"},
		{"a deleted host interface is reported", func(t *testing.T, n *node, p *pod, res *types100.Result) {
			mustRun(t, n.path, "ip", "link", "del", res.Interfaces[0].Name)
		}, "host interface " + "pn"},
		{"a released reservation is reported", func(t *testing.T, n *node, p *pod, res *types100.Result) {
			if err := os.Remove(filepath.Join(n.dataDir, n.network, "10.250.0.2")); err != nil {
				t.Fatal(err)
			}
		}, "not reserved for this container"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			p := n.newPod()
			conf := n.conf("1.1.0")
			res := n.add(p, conf)
			if tc.break_ == nil {
				n.mustSucceed("CHECK", p.id, p.path, "eth0", withPrev(t, conf, res))
				return
			}
			tc.break_(t, n, p, res)
			n.mustFail("CHECK", p.id, p.path, "eth0", withPrev(t, conf, res), cni.ErrCheckFailed, tc.want)
		})
	}
}

func mustRun(t *testing.T, nsPath, name string, args ...string) {
	t.Helper()
	if out, err := inNS(nsPath, name, args...); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func TestKernelDelIsIdempotent(t *testing.T) {
	t.Run("DEL twice succeeds and frees the address and the interface", func(t *testing.T) {
		n := newNode(t)
		p := n.newPod()
		conf := n.conf("1.1.0")
		n.add(p, conf)
		n.mustSucceed("DEL", p.id, p.path, "eth0", conf)
		n.mustSucceed("DEL", p.id, p.path, "eth0", conf)
		if l := n.hostLinks(); len(l) != 0 {
			t.Errorf("host links left: %v", l)
		}
		if r := n.reservations(); len(r) != 0 {
			t.Errorf("reservations left: %v", r)
		}
	})
	t.Run("DEL after the network namespace is gone succeeds", func(t *testing.T) {
		n := newNode(t)
		p := n.newPod()
		conf := n.conf("1.1.0")
		n.add(p, conf)
		if err := netns.Delete(p.name); err != nil {
			t.Fatal(err)
		}
		n.mustSucceed("DEL", p.id, p.path, "eth0", conf)
		if r := n.reservations(); len(r) != 0 {
			t.Errorf("reservations left: %v", r)
		}
		if l := n.hostLinks(); len(l) != 0 {
			t.Errorf("host links left: %v", l)
		}
	})
	t.Run("DEL of an unknown container succeeds and frees nothing else", func(t *testing.T) {
		n := newNode(t)
		p := n.newPod()
		conf := n.conf("1.1.0")
		n.add(p, conf)
		n.mustSucceed("DEL", "never-added", "/run/netns/does-not-exist", "eth0", conf)
		n.mustSucceed("DEL", "never-added", "", "eth0", conf)
		if r := n.reservations(); len(r) != 1 {
			t.Errorf("reservations = %v, want the other pod's one", r)
		}
	})
	t.Run("DEL releases exactly the container's own addresses", func(t *testing.T) {
		n := newNode(t)
		conf := n.conf("1.1.0", `[{"subnet":"10.250.0.0/24"}]`, dualStack)
		p1, p2 := n.newPod(), n.newPod()
		n.add(p1, conf)
		keep := podIPs(n.add(p2, conf))
		n.mustSucceed("DEL", p1.id, p1.path, "eth0", conf)
		var left []netip.Addr
		for _, r := range n.reservations() {
			if r.Owner.ContainerID != p2.id {
				t.Errorf("reservation of %s left behind: %v", r.Owner, r.IP)
			}
			left = append(left, r.IP)
		}
		slices.SortFunc(left, netip.Addr.Compare)
		if !slices.Equal(left, keep) {
			t.Errorf("reservations %v, want the other pod's %v", left, keep)
		}
	})
}

func TestKernelConcurrentAddsFromSeparateProcessesNeverShareAnAddress(t *testing.T) {
	const pods = 200
	n := newNode(t)
	conf := n.conf("1.1.0")
	ps := make([]*pod, pods)
	for i := range ps {
		ps[i] = n.newPod()
	}
	results := make([]*types100.Result, pods)
	var wg sync.WaitGroup
	errs := make(chan error, pods)
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, code := n.run("ADD", p.id, p.path, "eth0", conf)
			if code != 0 {
				errs <- fmt.Errorf("ADD %s: exit %d: %s", p.id, code, out)
				return
			}
			var v struct{}
			if err := json.Unmarshal(out, &v); err != nil {
				errs <- err
				return
			}
			results[i] = parseResult(t, out)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	owner := map[netip.Addr]string{}
	for i, r := range results {
		ip := podIPs(r)[0]
		if prev, dup := owner[ip]; dup {
			t.Errorf("%s handed to both %s and %s", ip, prev, ps[i].id)
		}
		owner[ip] = ps[i].id
	}
	if len(owner) != pods {
		t.Errorf("%d distinct addresses for %d pods", len(owner), pods)
	}
	for _, r := range n.reservations() {
		if owner[r.IP] != r.Owner.ContainerID {
			t.Errorf("store says %s belongs to %s, result said %s", r.IP, r.Owner.ContainerID, owner[r.IP])
		}
	}
	if got := len(n.hostLinks()); got != pods {
		t.Errorf("%d host interfaces, want %d", got, pods)
	}
}

func TestKernelKilledPluginsNeverLeaveTwoOwners(t *testing.T) {
	n := newNode(t)
	conf := n.conf("1.1.0", `[{"subnet":"10.250.0.0/24"}]`, dualStack)
	const rounds = 40
	used := map[string]bool{}
	for i := range rounds {
		p := n.newPod()
		used[p.id] = true
		cmd := exec.Command("nsenter", "--net="+n.path, pluginBin)
		cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + p.id, "CNI_NETNS=" + p.path, "CNI_IFNAME=eth0", "CNI_PATH=" + binDir}
		cmd.Stdin = strings.NewReader(conf)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill at a different moment each round, from before the plugin
		// has started up to after it has finished.
		time.Sleep(time.Duration(rand.IntN(6000)+i*50) * time.Microsecond)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		// nsenter execs the plugin in place, so the pid is the plugin's.
	}
	list := n.reservations()
	perIP := map[netip.Addr]int{}
	for _, r := range list {
		perIP[r.IP]++
		if !used[r.Owner.ContainerID] || r.Owner.IfName != "eth0" {
			t.Errorf("reservation %s has a damaged owner %+v", r.IP, r.Owner)
		}
	}
	for ip, c := range perIP {
		if c > 1 {
			t.Errorf("%s has %d owners", ip, c)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(n.dataDir, n.network))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp") {
			continue // cleaned by the next locked List
		}
		if e.Type()&os.ModeSymlink == 0 && e.Name() != "lock" {
			t.Errorf("unexpected file %s in the store", e.Name())
		}
	}
	t.Logf("after %d killed ADDs: %d reservations, %d host links", rounds, len(list), len(n.hostLinks()))

	// The lock is free (flock dies with its holder) and the network still
	// works: new pods get addresses nobody else holds.
	taken := map[netip.Addr]bool{}
	for _, r := range list {
		taken[r.IP] = true
	}
	for range 3 {
		p := n.newPod()
		for _, ip := range podIPs(n.add(p, conf)) {
			if taken[ip] {
				t.Errorf("new pod got %s, which a killed ADD still holds", ip)
			}
			taken[ip] = true
		}
	}
	// GC with no valid attachment frees everything the killed ADDs left.
	n.mustSucceed("GC", "", "", "", gcConf(t, conf, nil))
	if r := n.reservations(); len(r) != 0 {
		t.Errorf("reservations after GC: %v", r)
	}
	if l := n.hostLinks(); len(l) != 0 {
		t.Errorf("host links after GC: %v", l)
	}
}

func gcConf(t *testing.T, conf string, valid []types.GCAttachment) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(conf), &m); err != nil {
		t.Fatal(err)
	}
	if valid == nil {
		valid = []types.GCAttachment{}
	}
	m["cni.dev/valid-attachments"] = valid
	out, _ := json.Marshal(m)
	return string(out)
}

func TestKernelExhaustionFailsCleanly(t *testing.T) {
	n := newNode(t)
	// A /30 has one address to hand out: .0 network, .1 gateway, .3 broadcast.
	conf := n.conf("1.1.0", `[{"subnet":"10.250.0.0/30"}]`)
	p1, p2 := n.newPod(), n.newPod()
	n.mustSucceed("STATUS", "", "", "", conf)
	n.add(p1, conf)
	linksBefore := n.hostLinks()
	n.mustFail("ADD", p2.id, p2.path, "eth0", conf, types.ErrTryAgainLater, "no free address in range set 0")
	if l := n.hostLinks(); !slices.Equal(l, linksBefore) {
		t.Errorf("failed ADD changed host links: %v -> %v", linksBefore, l)
	}
	if r := n.reservations(); len(r) != 1 || r[0].Owner.ContainerID != p1.id {
		t.Errorf("failed ADD changed reservations: %v", r)
	}
	if out, err := inNS(p2.path, "ip", "link", "show", "eth0"); err == nil {
		t.Errorf("failed ADD left eth0 in the pod: %s", out)
	}
	n.mustFail("STATUS", "", "", "", conf, types.ErrPluginNotAvailable, "no free address")
	n.mustSucceed("DEL", p1.id, p1.path, "eth0", conf)
	n.mustSucceed("STATUS", "", "", "", conf)
	n.add(p2, conf)
}

func TestKernelDualStackExhaustionReleasesTheOtherFamily(t *testing.T) {
	n := newNode(t)
	conf := n.conf("1.1.0", `[{"subnet":"10.250.0.0/24"}]`, `[{"subnet":"fd00:250::/64","rangeEnd":"fd00:250::2"}]`)
	p1, p2 := n.newPod(), n.newPod()
	n.add(p1, conf) // takes fd00:250::2, the only IPv6 address (::1 is the gateway)
	n.mustFail("ADD", p2.id, p2.path, "eth0", conf, types.ErrTryAgainLater, "range set 1")
	if r := n.reservations(); len(r) != 2 {
		t.Errorf("reservations = %v, want only the first pod's two", r)
	}
}

func TestKernelGC(t *testing.T) {
	n := newNode(t)
	conf := n.conf("1.1.0")
	p1, p2, p3 := n.newPod(), n.newPod(), n.newPod()
	res1 := n.add(p1, conf)
	n.add(p2, conf)
	n.add(p3, conf)
	// An orphan host interface of this network with no reservation, and one
	// of another network that GC must leave alone.
	orphan, foreign := "pnorphan000001", "pnforeign00001"
	err := netns.Do(n.path, func() error {
		for name, alias := range map[string]string{orphan: "podnet:" + n.network + ":eth0/ghost", foreign: "podnet:othernet:eth0/ghost"} {
			la := netlink.NewLinkAttrs()
			la.Name = name
			l := &netlink.Veth{LinkAttrs: la, PeerName: "x" + name[2:]}
			if err := netlink.LinkAdd(l); err != nil {
				return err
			}
			if err := netlink.LinkSetAlias(l, alias); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n.mustSucceed("GC", "", "", "", gcConf(t, conf, []types.GCAttachment{{ContainerID: p1.id, IfName: "eth0"}}))
	r := n.reservations()
	if len(r) != 1 || r[0].Owner.ContainerID != p1.id {
		t.Errorf("reservations after GC = %v, want only %s's", r, p1.id)
	}
	links := n.hostLinks()
	slices.Sort(links)
	want := []string{cni.HostIfName(p1.id, "eth0"), foreign}
	slices.Sort(want)
	if !slices.Equal(links, want) {
		t.Errorf("host links after GC = %v, want %v", links, want)
	}
	n.mustSucceed("CHECK", p1.id, p1.path, "eth0", withPrev(t, conf, res1))
}

func TestKernelBadInputGetsAnErrorAndChangesNothing(t *testing.T) {
	n := newNode(t)
	good := n.conf("1.1.0")
	p := n.newPod()
	n.add(p, good) // something that must survive every bad call
	q := n.newPod()
	for _, tc := range []struct {
		name   string
		stdin  string
		env    map[string]string
		code   uint
		substr string
	}{
		// The error's cniVersion is the config's (1.1.0); malformed JSON
		// has none and gets the newest, 1.1.0 too; 7.0.0 is echoed.
		{"malformed JSON", `{"cniVersion":"1.1.0","name":`, nil, types.ErrDecodingFailure, "unexpected end of JSON input"},
		{"a range with host bits", strings.Replace(good, "10.250.0.0/24", "10.250.0.7/24", 1), nil, types.ErrInvalidNetworkConfig, "has host bits set"},
		{"a range start outside its subnet", strings.Replace(good, `"subnet":"10.250.0.0/24"`, `"subnet":"10.250.0.0/24","rangeStart":"10.9.9.9"`, 1), nil, types.ErrInvalidNetworkConfig, "rangeStart 10.9.9.9 is not in subnet"},
		{"no ranges", strings.Replace(good, `"ranges":[[{"subnet":"10.250.0.0/24"}]]`, `"ranges":[]`, 1), nil, types.ErrInvalidNetworkConfig, "ranges is missing"},
		{"an ipam section", strings.Replace(good, `"type"`, `"ipam":{"type":"host-local"},"type"`, 1), nil, types.ErrInvalidNetworkConfig, "ipam type \"host-local\" is not supported"},
		{"an unknown cniVersion", strings.Replace(good, "1.1.0", "7.0.0", 1), nil, types.ErrIncompatibleCNIVersion, "incompatible CNI versions"},
		{"a missing CNI_CONTAINERID", good, map[string]string{"CNI_CONTAINERID": ""}, types.ErrInvalidEnvironmentVariables, "CNI_CONTAINERID"},
		{"a missing CNI_NETNS", good, map[string]string{"CNI_NETNS": ""}, types.ErrInvalidEnvironmentVariables, "CNI_NETNS"},
		{"a missing CNI_IFNAME", good, map[string]string{"CNI_IFNAME": ""}, types.ErrInvalidEnvironmentVariables, "CNI_IFNAME"},
		{"an interface name over 15 bytes", good, map[string]string{"CNI_IFNAME": "eth0123456789abc"}, types.ErrInvalidEnvironmentVariables, "interface name is too long"},
		{"a network namespace that does not exist", good, map[string]string{"CNI_NETNS": "/run/netns/pnt-none-such"}, types.ErrUnknownContainer, "cannot open network namespace"},
		// skel checks this only after ADD has wired the pod and printed
		// its result.
		{"the plugin's own network namespace", good, map[string]string{"CNI_NETNS": n.path}, types.ErrInvalidNetNS, "is the plugin's own network namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": q.id, "CNI_NETNS": q.path, "CNI_IFNAME": "eth0"}
			for k, v := range tc.env {
				env[k] = v
			}
			var extra []string
			for k, v := range env {
				if v != "" {
					extra = append(extra, k+"="+v)
				}
			}
			linksBefore, resBefore := n.hostLinks(), n.reservations()
			// run() sets the standard variables first; clear them and
			// use ours (later entries win in exec's environment).
			out, code := n.runEnv(tc.stdin, extra)
			if code == 0 {
				t.Fatalf("exit 0, want an error: %s", out)
			}
			var e types.Error
			if err := json.Unmarshal(out, &e); err != nil {
				t.Fatalf("output is not a CNI error: %v: %q", err, out)
			}
			if e.Code != tc.code || !strings.Contains(e.Msg+" "+e.Details, tc.substr) {
				t.Errorf("error = {code %d, %q, %q}, want code %d mentioning %q", e.Code, e.Msg, e.Details, tc.code, tc.substr)
			}
			wantVersion := "1.1.0"
			if tc.code == types.ErrIncompatibleCNIVersion {
				wantVersion = "7.0.0"
			}
			checkErrorVersion(t, out, wantVersion)
			if strings.Contains(e.Msg, "\n") {
				t.Errorf("error message spans lines: %q", e.Msg)
			}
			if l := n.hostLinks(); !slices.Equal(l, linksBefore) {
				t.Errorf("host links changed: %v -> %v", linksBefore, l)
			}
			if r := n.reservations(); len(r) != len(resBefore) {
				t.Errorf("reservations changed: %v -> %v", resBefore, r)
			}
		})
	}
}

// runEnv runs the plugin with exactly the given environment.
func (n *node) runEnv(stdin string, env []string) ([]byte, int) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "--net="+n.path, pluginBin)
	cmd.Env = append(env, "CNI_PATH="+binDir)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return out, ee.ExitCode()
		}
		n.t.Fatal(err)
	}
	return out, 0
}

func TestKernelAnswersInTheRequestedVersion(t *testing.T) {
	n := newNode(t)
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run("cniVersion "+v, func(t *testing.T) {
			p := n.newPod()
			conf := n.conf(v)
			out, code := n.run("ADD", p.id, p.path, "eth0", conf)
			if code != 0 {
				t.Fatalf("ADD: exit %d: %s", code, out)
			}
			var head struct {
				CNIVersion string `json:"cniVersion"`
			}
			if err := json.Unmarshal(out, &head); err != nil || head.CNIVersion != v {
				t.Fatalf("result cniVersion %q (%v), want %q", head.CNIVersion, err, v)
			}
			if ips := podIPs(parseResult(t, out)); len(ips) != 1 || !netip.MustParsePrefix("10.250.0.0/24").Contains(ips[0]) {
				t.Errorf("result ips %v", ips)
			}
			n.mustSucceed("DEL", p.id, p.path, "eth0", conf)
		})
	}
}

func TestKernelVersionVerb(t *testing.T) {
	n := newNode(t)
	out, code := n.run("VERSION", "", "", "", `{"cniVersion":"1.0.0"}`)
	if code != 0 {
		t.Fatalf("VERSION: exit %d: %s", code, out)
	}
	var v struct {
		CNIVersion string   `json:"cniVersion"`
		Supported  []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	if want := []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}; !slices.Equal(v.Supported, want) {
		t.Errorf("supportedVersions = %v, want %v", v.Supported, want)
	}
	if v.CNIVersion != "1.0.0" {
		t.Errorf("cniVersion = %q, want 1.0.0, the version asked in", v.CNIVersion)
	}
}

// TestKernelFirstPluginOfAConflist drives the plugin through libcni exactly
// as a container runtime does, with a second plugin chained after it.
func TestKernelFirstPluginOfAConflist(t *testing.T) {
	n := newNode(t)
	p := n.newPod()
	record := filepath.Join(t.TempDir(), "calls.jsonl")
	list, err := libcni.NetworkConfFromBytes(fmt.Appendf(nil, `{"cniVersion":"1.1.0","name":%q,"plugins":[
		{"type":"podnet-cni","dataDir":%q,"ranges":[[{"subnet":"10.250.0.0/24"}],[{"subnet":"fd00:250::/64"}]]},
		{"type":"recorder","out":%q}]}`, n.network, n.dataDir, record))
	if err != nil {
		t.Fatal(err)
	}
	// Rename the binaries to what the conflist calls them.
	pathDir := t.TempDir()
	for _, b := range []string{pluginBin, recorderBin} {
		if err := os.Symlink(b, filepath.Join(pathDir, filepath.Base(b))); err != nil {
			t.Fatal(err)
		}
	}
	cn := libcni.NewCNIConfigWithCacheDir([]string{pathDir}, t.TempDir(), nil)
	rt := &libcni.RuntimeConf{ContainerID: p.id, NetNS: p.path, IfName: "eth0"}
	ctx := context.Background()

	var res types.Result
	err = netns.Do(n.path, func() (err error) {
		// Children inherit this locked thread's namespace: the node.
		res, err = cn.AddNetworkList(ctx, list, rt)
		return err
	})
	if err != nil {
		t.Fatalf("AddNetworkList: %v", err)
	}
	final, err := types100.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	calls := readCalls(t, record)
	if len(calls) != 1 || calls[0].Command != "ADD" {
		t.Fatalf("recorder calls = %+v, want one ADD", calls)
	}
	prev, err := types100.NewResult(calls[0].Stdin.PrevResult)
	if err != nil {
		t.Fatalf("recorder's prevResult: %v (%s)", err, calls[0].Stdin.PrevResult)
	}
	prev100 := prev.(*types100.Result)
	if len(prev100.Interfaces) != 2 || prev100.Interfaces[1].Sandbox != p.path || len(prev100.IPs) != 2 {
		t.Errorf("chained plugin got prevResult %s, want both interfaces and both addresses", calls[0].Stdin.PrevResult)
	}
	if fmt.Sprint(podIPs(final)) != fmt.Sprint(podIPs(prev100)) {
		t.Errorf("final result %v differs from podnet-cni's %v", podIPs(final), podIPs(prev100))
	}

	err = netns.Do(n.path, func() error {
		if err := cn.CheckNetworkList(ctx, list, rt); err != nil {
			return fmt.Errorf("CheckNetworkList: %w", err)
		}
		if err := cn.GetStatusNetworkList(ctx, list); err != nil {
			return fmt.Errorf("GetStatusNetworkList: %w", err)
		}
		if err := cn.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: p.id, IfName: "eth0"}}}); err != nil {
			return fmt.Errorf("GCNetworkList: %w", err)
		}
		if err := cn.CheckNetworkList(ctx, list, rt); err != nil {
			return fmt.Errorf("CheckNetworkList after GC: %w", err)
		}
		return cn.DelNetworkList(ctx, list, rt)
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := n.reservations(); len(r) != 0 {
		t.Errorf("reservations after DelNetworkList: %v", r)
	}
	var cmds []string
	for _, c := range readCalls(t, record) {
		cmds = append(cmds, c.Command)
	}
	if want := []string{"ADD", "CHECK", "STATUS", "GC", "CHECK", "DEL"}; !slices.Equal(cmds, want) {
		t.Errorf("chained plugin saw %v, want %v", cmds, want)
	}
}

type call struct {
	Command string `json:"command"`
	Stdin   struct {
		PrevResult json.RawMessage `json:"prevResult"`
	} `json:"stdin"`
}

func readCalls(t *testing.T, path string) []call {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []call
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var c call
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("record line %q: %v", line, err)
		}
		out = append(out, c)
	}
	return out
}

func TestKernelASecondInterfaceLeavesTheDefaultRouteToTheFirst(t *testing.T) {
	n := newNode(t)
	p := n.newPod()
	conf := n.conf("1.1.0")
	n.add(p, conf)
	out, code := n.run("ADD", p.id, p.path, "net1", conf)
	if code != 0 {
		t.Fatalf("ADD of a second interface: exit %d: %s", code, out)
	}
	res := parseResult(t, out)
	if len(res.Routes) != 0 {
		t.Errorf("second interface's result claims routes %v; the default route stays on eth0", res.Routes)
	}
	routes, err := inNS(p.path, "ip", "route", "show", "default")
	if err != nil || !strings.Contains(string(routes), "dev eth0") || strings.Contains(string(routes), "net1") {
		t.Errorf("default routes in the pod: %s %v", routes, err)
	}
	n.mustSucceed("CHECK", p.id, p.path, "net1", withPrev(t, conf, res))
	n.mustSucceed("DEL", p.id, p.path, "net1", conf)
}
