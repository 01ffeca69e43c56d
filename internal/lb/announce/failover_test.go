package announce

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/arp"

	"github.com/podnet/podnet/internal/netns"
)

// owners returns the index of the node that owns the fixture's VIP and of
// the other one.
func (f *l2fix) owners() (owner, other int) { return f.ownersOf(f.vip) }

func (f *l2fix) ownersOf(vip netip.Addr) (owner, other int) {
	if Owner(vip, []string{"node-0", "node-1"}) == "node-0" {
		return 0, 1
	}
	return 1, 0
}

// arpAnswers sends one ARP request for the VIP from the client and
// returns the MACs that answered within 300 ms.
func (f *l2fix) arpAnswers(t testing.TB) []string {
	t.Helper()
	var c *arp.Client
	if err := netns.Do(f.client, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err == nil {
			c, err = arp.Dial(ifi)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Request(f.vip); err != nil {
		t.Fatal(err)
	}
	var macs []string
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	for {
		p, _, err := c.Read()
		if err != nil {
			return macs
		}
		// Replies to this request (gratuitous replies go to everyone).
		if p.Operation == arp.OperationReply && p.SenderIP == f.vip && p.TargetHardwareAddr.String() == c.HardwareAddr().String() {
			macs = append(macs, p.SenderHardwareAddr.String())
		}
	}
}

// settle starts both announcers and waits until the client is answered by
// the owner; it checks that exactly the owner answers ARP.
func settle(t *testing.T) (*l2fix, [2]*Announcer, *prober, int, int) {
	f := newL2Fix(t)
	as := [2]*Announcer{f.announcer(t, 0), f.announcer(t, 1)}
	o, x := f.owners()
	p := f.probe(t)
	p.waitNode(t, f.nodeName(o), time.Time{}, 3*time.Second)
	if got := f.arpAnswers(t); len(got) != 1 || got[0] != f.macs[o].String() {
		t.Fatalf("ARP answers for the VIP: %v, want only the owner's %s", got, f.macs[o])
	}
	if announces(as[x], f.vip) {
		t.Fatalf("the other node announces %s too", f.vip)
	}
	return f, as, p, o, x
}

func (f *l2fix) nodeName(i int) string { return []string{"node-0", "node-1"}[i] }

func TestFailoverOnCrash(t *testing.T) {
	f, as, p, o, x := settle(t)
	if mac := f.clientMAC(t); mac.String() != f.macs[o].String() {
		t.Fatalf("client resolves the VIP to %v, want the owner's %v", mac, f.macs[o])
	}
	// The owner's node dies: its agent stops without a goodbye and it
	// leaves the segment.
	crash := time.Now()
	as[o].Crash()
	f.linkDown(t, o)
	first := p.waitNode(t, f.nodeName(x), crash, 3*time.Second)
	moved := time.Since(crash)
	for f.clientMAC(t).String() != f.macs[x].String() && time.Since(crash) < 3*time.Second {
		time.Sleep(time.Millisecond)
	}
	moved = max(moved, time.Since(crash))
	sent, got := p.stop()
	gap, lost := outage(sent, got)
	t.Logf("crash: client's ARP entry on the new owner after %v; first reply %v after the crash; longest gap between replies %v, %d of %d requests lost",
		moved, first.Sub(crash), gap, lost, sent)
	if mac := f.clientMAC(t); mac.String() != f.macs[x].String() {
		t.Fatalf("client resolves the VIP to %v, want the new owner's %v", mac, f.macs[x])
	}
	if moved > time.Second {
		t.Errorf("the ARP entry moved after %v, want within a second", moved)
	}
}

func TestFailoverGracefulLosesNothing(t *testing.T) {
	f, as, p, o, x := settle(t)
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if missing := as[o].Leave(2 * time.Second); len(missing) != 0 {
		t.Fatalf("leave: no ack from %v", missing)
	}
	left := time.Since(start)
	// The node goes away right after its agent: nothing may still depend on it.
	f.linkDown(t, o)
	p.waitNode(t, f.nodeName(x), start, time.Second)
	time.Sleep(300 * time.Millisecond)
	sent, got := p.stop()
	gap, lost := outage(sent, got)
	t.Logf("graceful: leave took %v; longest gap between replies %v; %d of %d requests lost", left, gap, lost, sent)
	if lost != 0 {
		t.Errorf("%d of %d requests lost in a graceful handover", lost, sent)
	}
	if mac := f.clientMAC(t); mac.String() != f.macs[x].String() {
		t.Errorf("client resolves the VIP to %v, want the new owner's %v", mac, f.macs[x])
	}
}

// TestSplitBrainHeals gives the two nodes different heartbeat keys: each
// drops the other's beats, believes it is alone and claims the VIP. On
// hearing each other's gratuitous ARP the lower-ranked one must yield.
func TestSplitBrainHeals(t *testing.T) {
	f := newL2Fix(t)
	a0 := f.announcer(t, 0)
	a1 := f.announcerWithKey(t, 1, []byte("another key"))
	o, x := 0, 1
	if OutranksMAC(f.vip, f.macs[1], f.macs[0]) {
		o, x = 1, 0
	}
	as := [2]*Announcer{a0, a1}
	start := time.Now()
	var healed time.Duration
	for time.Since(start) < 3*time.Second {
		if announces(as[o], f.vip) && !announces(as[x], f.vip) && time.Since(start) > 500*time.Millisecond {
			healed = time.Since(start)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if healed == 0 {
		t.Fatalf("no single owner after 3 s: node-%d %v, node-%d %v", o, as[o].Announced(), x, as[x].Announced())
	}
	if got := f.arpAnswers(t); len(got) != 1 || got[0] != f.macs[o].String() {
		t.Errorf("ARP answers after healing: %v, want only %s", got, f.macs[o])
	}
	t.Logf("split brain healed %v after the start (both claim once DeadAfter, 400 ms, passed)", healed)
}

func (f *l2fix) announcerWithKey(t testing.TB, i int, key []byte) *Announcer {
	t.Helper()
	var a *Announcer
	err := netns.Do(f.nodes[i], func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		a, err = NewAnnouncer(AnnouncerConfig{Node: f.nodeName(i), Interface: ifi, NodeIP: f.ips[i], Key: key})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	a.SetPeers(map[string]netip.Addr{"node-0": f.ips[0], "node-1": f.ips[1]})
	both := []string{"node-0", "node-1"}
	a.SetTargets([]Target{{VIP: f.vip, Service: "default/web", Candidates: both}, {VIP: f.vip6, Service: "default/web", Candidates: both}})
	a.Start()
	t.Cleanup(a.Crash)
	return a
}

func TestFailoverOnCrashIPv6(t *testing.T) {
	f := newL2Fix(t)
	as := [2]*Announcer{f.announcer(t, 0), f.announcer(t, 1)}
	o, x := f.ownersOf(f.vip6)
	p := f.probeVIP(t, f.vip6)
	p.waitNode(t, f.nodeName(o), time.Time{}, 3*time.Second)
	if mac := f.clientMACOf(t, f.vip6); mac.String() != f.macs[o].String() {
		t.Fatalf("client resolves %s to %v, want the owner's %v", f.vip6, mac, f.macs[o])
	}
	crash := time.Now()
	as[o].Crash()
	f.linkDown(t, o)
	first := p.waitNode(t, f.nodeName(x), crash, 3*time.Second)
	for f.clientMACOf(t, f.vip6).String() != f.macs[x].String() && time.Since(crash) < 3*time.Second {
		time.Sleep(time.Millisecond)
	}
	moved := time.Since(crash)
	sent, got := p.stop()
	gap, lost := outage(sent, got)
	t.Logf("IPv6 crash: neighbour entry on the new owner after %v; first reply %v after; longest gap %v, %d of %d lost",
		moved, first.Sub(crash), gap, lost, sent)
	if mac := f.clientMACOf(t, f.vip6); mac.String() != f.macs[x].String() {
		t.Fatalf("client resolves %s to %v, want the new owner's %v", f.vip6, mac, f.macs[x])
	}
	if moved > time.Second {
		t.Errorf("the neighbour entry moved after %v, want within a second", moved)
	}
}

// announces reports whether a announces vip.
func announces(a *Announcer, vip netip.Addr) bool {
	for _, an := range a.Announced() {
		if an.VIP == vip {
			return true
		}
	}
	return false
}
