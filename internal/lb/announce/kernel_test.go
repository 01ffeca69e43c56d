package announce

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/netns"
)

// Kernel fixture: a "switch" namespace with bridge br0; two node
// namespaces (eth0 172.31.<r>.11 and .12/24, fd00:<r>::11 and ::12/64) and
// a client namespace (172.31.<r>.2/24, fd00:<r>::2/64) each joined to it by
// a veth pair; DAD is off, so addresses are usable at once. The VIPs are
// 172.31.<r>.200 and fd00:<r>::c8: each node DNATs them to its own
// addresses in prerouting (as the proxy does) and answers UDP on port 9000
// with its name. <r> is random per test; every namespace has a unique name
// and is removed in Cleanup.
type l2fix struct {
	nodes  [2]string // namespace paths
	client string
	ips    [2]netip.Addr
	macs   [2]net.HardwareAddr
	vip    netip.Addr
	ips6   [2]netip.Addr
	vip6   netip.Addr
}

func newL2Fix(t testing.TB) *l2fix {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: creating network namespaces needs root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("kernel test: the nft binary is missing (Debian package nftables)")
	}
	r := 100 + rand.IntN(100)
	f := &l2fix{vip: netip.MustParseAddr(fmt.Sprintf("172.31.%d.200", r)), vip6: netip.MustParseAddr(fmt.Sprintf("fd00:%d::c8", r))}
	sw := mkns(t, "pnt-lbsw-")
	if err := netns.Do(sw, func() error {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
		if err := netlink.LinkAdd(br); err != nil {
			return err
		}
		return netlink.LinkSetUp(br)
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		f.nodes[i] = mkns(t, "pnt-lbn-")
		f.ips[i] = netip.MustParseAddr(fmt.Sprintf("172.31.%d.%d", r, 11+i))
		f.ips6[i] = netip.MustParseAddr(fmt.Sprintf("fd00:%d::%d", r, 11+i))
		f.macs[i] = attach(t, sw, f.nodes[i], i, f.ips[i], f.ips6[i])
		nodeServe(t, f.nodes[i], [2]netip.Addr{f.ips[i], f.ips6[i]}, [2]netip.Addr{f.vip, f.vip6}, fmt.Sprintf("node-%d", i))
	}
	f.client = mkns(t, "pnt-lbc-")
	attach(t, sw, f.client, 2, netip.MustParseAddr(fmt.Sprintf("172.31.%d.2", r)), netip.MustParseAddr(fmt.Sprintf("fd00:%d::2", r)))
	return f
}

func mkns(t testing.TB, prefix string) string {
	t.Helper()
	name := netns.UniqueName(prefix)
	path, err := netns.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Delete(name) })
	// No duplicate address detection: links moved in later are usable at once.
	if err := netns.Do(path, func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/default/accept_dad", []byte("0"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	return path
}

// attach joins ns to the bridge in sw with a veth (eth0 in ns, with ip/24
// and ip6/64) and returns eth0's MAC.
func attach(t testing.TB, sw, ns string, i int, ip, ip6 netip.Addr) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	err := netns.Do(sw, func() error {
		peer, err := os.Open(ns)
		if err != nil {
			return err
		}
		defer peer.Close()
		port := fmt.Sprintf("p%d", i)
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: port}, PeerName: "eth0", PeerNamespace: netlink.NsFd(peer.Fd())}
		if err := netlink.LinkAdd(v); err != nil {
			return err
		}
		l, err := netlink.LinkByName(port)
		if err != nil {
			return err
		}
		br, err := netlink.LinkByName("br0")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetMaster(l, br); err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = netns.Do(ns, func() error {
		eth, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		mac = eth.Attrs().HardwareAddr
		a := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(24, 32)}}
		if err := netlink.AddrAdd(eth, a); err != nil {
			return err
		}
		a6 := &netlink.Addr{IPNet: &net.IPNet{IP: ip6.AsSlice(), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
		if err := netlink.AddrAdd(eth, a6); err != nil {
			return err
		}
		return netlink.LinkSetUp(eth)
	})
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// nodeServe DNATs each VIP to the address of its family in ns's prerouting
// and answers UDP on those addresses, port 9000, with name until the test
// ends.
func nodeServe(t testing.TB, ns string, ips, vips [2]netip.Addr, name string) {
	t.Helper()
	rules := fmt.Sprintf("table ip pnt-lb {\n chain pre {\n  type nat hook prerouting priority -100;\n  ip daddr %s dnat to %s\n }\n}\n", vips[0], ips[0]) +
		fmt.Sprintf("table ip6 pnt-lb {\n chain pre {\n  type nat hook prerouting priority -100;\n  ip6 daddr %s dnat to %s\n }\n}\n", vips[1], ips[1])
	cmd := exec.Command("ip", "netns", "exec", nsName(ns), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v: %s", ns, err, out)
	}
	for _, ip := range ips {
		var conn *net.UDPConn
		if err := netns.Do(ns, func() (err error) {
			conn, err = net.ListenUDP("udp", &net.UDPAddr{IP: ip.AsSlice(), Port: 9000})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		go func() {
			buf := make([]byte, 64)
			for {
				n, from, err := conn.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				_, _ = conn.WriteToUDPAddrPort(append([]byte(name+" "), buf[:n]...), from)
			}
		}()
	}
}

func nsName(path string) string { return path[strings.LastIndex(path, "/")+1:] }

// announcer starts node i's announcer (interval 100 ms) for the VIP.
func (f *l2fix) announcer(t testing.TB, i int) *Announcer {
	t.Helper()
	return f.announcerWithKey(t, i, []byte("test key"))
}

// clientMAC is the client's neighbour entry for the IPv4 VIP (nil when none).
func (f *l2fix) clientMAC(t testing.TB) net.HardwareAddr { return f.clientMACOf(t, f.vip) }

// clientMACOf is the client's neighbour entry for vip (nil when none).
func (f *l2fix) clientMACOf(t testing.TB, vip netip.Addr) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	family := netlink.FAMILY_V4
	if vip.Is6() {
		family = netlink.FAMILY_V6
	}
	err := netns.Do(f.client, func() error {
		ns, err := netlink.NeighList(0, family)
		for _, n := range ns {
			if n.IP.Equal(vip.AsSlice()) && n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) == 0 {
				mac = n.HardwareAddr
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// prober sends a UDP request to the VIP every 10 ms from the client and
// records who answered when.
type prober struct {
	conn *net.UDPConn
	sent int
	mu   sync.Mutex
	got  []reply
	done chan struct{}
}

type reply struct {
	at   time.Time
	node string
	seq  int
}

func (f *l2fix) probe(t testing.TB) *prober { return f.probeVIP(t, f.vip) }

func (f *l2fix) probeVIP(t testing.TB, vip netip.Addr) *prober {
	t.Helper()
	p := &prober{done: make(chan struct{})}
	if err := netns.Do(f.client, func() (err error) {
		p.conn, err = net.DialUDP("udp", nil, &net.UDPAddr{IP: vip.AsSlice(), Port: 9000})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.conn.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := p.conn.Read(buf)
			if err != nil {
				if !strings.Contains(err.Error(), "refused") {
					return
				}
				continue
			}
			var r reply
			if _, err := fmt.Sscanf(string(buf[:n]), "%s %d", &r.node, &r.seq); err == nil {
				r.at = time.Now()
				p.mu.Lock()
				p.got = append(p.got, r)
				p.mu.Unlock()
			}
		}
	}()
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				p.sent++
				_, _ = fmt.Fprintf(p.conn, "%d", p.sent)
			}
		}
	}()
	return p
}

// stop ends sending, waits for the last replies and returns them.
func (p *prober) stop() (sent int, got []reply) {
	close(p.done)
	time.Sleep(50 * time.Millisecond)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent, slices.Clone(p.got)
}

// waitNode waits until a reply from node arrives (after from).
func (p *prober) waitNode(t testing.TB, node string, from time.Time, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, r := range p.got {
			if r.node == node && r.at.After(from) {
				p.mu.Unlock()
				return r.at
			}
		}
		p.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no reply from %s within %v", node, within)
	return time.Time{}
}

// outage is the failover time: the longest gap between consecutive
// replies, and how many requests got no reply.
func outage(sent int, got []reply) (gap time.Duration, lost int) {
	seen := map[int]bool{}
	for i, r := range got {
		seen[r.seq] = true
		if i > 0 && r.at.Sub(got[i-1].at) > gap {
			gap = r.at.Sub(got[i-1].at)
		}
	}
	for s := 1; s <= sent; s++ {
		if !seen[s] {
			lost++
		}
	}
	return gap, lost
}

// linkDown takes node i off the segment, as a dead node.
func (f *l2fix) linkDown(t testing.TB, i int) {
	t.Helper()
	if err := netns.Do(f.nodes[i], func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		return netlink.LinkSetDown(l)
	}); err != nil {
		t.Fatal(err)
	}
}
