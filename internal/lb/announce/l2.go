package announce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

// L2 answers ARP requests and NDP neighbour solicitations for the VIPs this
// node owns on one interface, sends gratuitous ARP and unsolicited NA, and
// reports other hosts' claims on owned VIPs. The kernel never answers for a
// VIP: it is not an address of the node (packets to it arrive with the
// node's MAC and a non-local destination, and the proxy's prerouting DNAT
// takes them).
type L2 struct {
	// set at construction, read-only
	ifi *net.Interface
	arp *arp.Client // nil without an IPv4 address on ifi
	ndp *ndp.Conn   // nil without an IPv6 link-local address on ifi
	log *slog.Logger

	closed atomic.Bool // set by Close: the read loops end

	// mu guards joined: the solicited-node groups joined for IPv6 VIPs.
	mu     sync.Mutex
	joined map[netip.Addr]int
}

// OpenL2 opens the packet (ARP) and ICMPv6 (NDP) sockets on ifi in the
// caller's network namespace; a family the interface has no address for is
// left out.
func OpenL2(ifi *net.Interface, log *slog.Logger) (*L2, error) {
	l := &L2{ifi: ifi, log: log, joined: map[netip.Addr]int{}}
	c, err := arp.Dial(ifi)
	if err == nil {
		l.arp = c
	} else {
		log.Info("lb announce: no ARP on the interface", "interface", ifi.Name, "err", err)
	}
	// ndp names the interface in the zone of every address it sends to,
	// and Go turns a zone name into an index in the namespace of the
	// thread that sends, which need not be ifi's (a goroutine of a process
	// that opened the socket inside a namespace): a numeric zone is the
	// index itself, valid everywhere.
	byIndex := *ifi
	byIndex.Name = strconv.Itoa(ifi.Index)
	n, _, err := ndp.Listen(&byIndex, ndp.LinkLocal)
	if err == nil {
		l.ndp = n
	} else {
		log.Info("lb announce: no NDP on the interface", "interface", ifi.Name, "err", err)
	}
	if l.arp == nil && l.ndp == nil {
		return nil, fmt.Errorf("lb announce: interface %s has neither IPv4 nor IPv6 link-local address", ifi.Name)
	}
	return l, nil
}

// MAC is the interface's hardware address, the one that answers.
func (l *L2) MAC() net.HardwareAddr { return l.ifi.HardwareAddr }

// Close closes the sockets, which ends Serve.
func (l *L2) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	var errs []error
	if l.arp != nil {
		errs = append(errs, l.arp.Close())
	}
	if l.ndp != nil {
		errs = append(errs, l.ndp.Close())
	}
	return errors.Join(errs...)
}

// Serve answers for the VIPs owns reports until the sockets close, and
// calls heard with a VIP owns reports and the MAC of another host that
// claims it (a gratuitous ARP, an ARP reply, an unsolicited NA).
func (l *L2) Serve(ctx context.Context, owns func(netip.Addr) bool, heard func(netip.Addr, net.HardwareAddr)) {
	var wg sync.WaitGroup
	if l.arp != nil {
		wg.Go(func() { l.serveARP(owns, heard) })
	}
	if l.ndp != nil {
		wg.Go(func() { l.serveNDP(owns, heard) })
	}
	go func() { <-ctx.Done(); _ = l.Close() }()
	wg.Wait()
}

func (l *L2) serveARP(owns func(netip.Addr) bool, heard func(netip.Addr, net.HardwareAddr)) {
	for {
		p, _, err := l.arp.Read()
		if l.closed.Load() {
			return
		}
		if err != nil {
			continue
		}
		if sameMAC(p.SenderHardwareAddr, l.ifi.HardwareAddr) {
			continue
		}
		// Another host saying it has an owned VIP: a gratuitous ARP (both
		// forms) or a reply.
		if owns(p.SenderIP) {
			heard(p.SenderIP, p.SenderHardwareAddr)
			continue
		}
		if p.Operation == arp.OperationRequest && owns(p.TargetIP) {
			if err := l.arp.Reply(p, l.ifi.HardwareAddr, p.TargetIP); err != nil {
				l.log.Debug("lb announce: ARP reply", "vip", p.TargetIP, "err", err)
			}
		}
	}
}

func (l *L2) serveNDP(owns func(netip.Addr) bool, heard func(netip.Addr, net.HardwareAddr)) {
	for {
		m, _, src, err := l.ndp.ReadFrom()
		if l.closed.Load() {
			return
		}
		if err != nil {
			continue
		}
		switch m := m.(type) {
		case *ndp.NeighborSolicitation:
			if !owns(m.TargetAddress) {
				continue
			}
			dst := src
			if src.IsUnspecified() { // duplicate address detection
				dst = netip.IPv6LinkLocalAllNodes()
			}
			if err := l.sendNA(m.TargetAddress, dst, !src.IsUnspecified()); err != nil {
				l.log.Debug("lb announce: NA", "vip", m.TargetAddress, "err", err)
			}
		case *ndp.NeighborAdvertisement:
			if !owns(m.TargetAddress) {
				continue
			}
			for _, o := range m.Options {
				if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target && !sameMAC(lla.Addr, l.ifi.HardwareAddr) {
					heard(m.TargetAddress, lla.Addr)
				}
			}
		}
	}
}

func (l *L2) sendNA(vip, dst netip.Addr, solicited bool) error {
	na := &ndp.NeighborAdvertisement{
		Solicited: solicited, Override: true, TargetAddress: vip,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: l.ifi.HardwareAddr}},
	}
	return l.ndp.WriteTo(na, nil, dst)
}

// Gratuitous tells the segment that vip is at this interface: for IPv4 a
// gratuitous ARP request and a gratuitous ARP reply (hosts and switches
// differ in which they honour), for IPv6 an unsolicited NA with the
// override flag to all nodes.
func (l *L2) Gratuitous(vip netip.Addr) error {
	if l.closed.Load() {
		return nil // stopping: nothing to tell any more
	}
	mac := l.ifi.HardwareAddr
	if vip.Is4() {
		if l.arp == nil {
			return fmt.Errorf("lb announce: no ARP on %s for %s", l.ifi.Name, vip)
		}
		req, err := arp.NewPacket(arp.OperationRequest, mac, vip, ethernet.Broadcast, vip)
		if err != nil {
			return err
		}
		// The request form carries a zero target MAC; the reply form the
		// sender's (Linux takes a reply as gratuitous only then).
		req.TargetHardwareAddr = make(net.HardwareAddr, len(mac))
		rep, err := arp.NewPacket(arp.OperationReply, mac, vip, mac, vip)
		if err != nil {
			return err
		}
		return errors.Join(l.arp.WriteTo(req, ethernet.Broadcast), l.arp.WriteTo(rep, ethernet.Broadcast))
	}
	if l.ndp == nil {
		return fmt.Errorf("lb announce: no NDP on %s for %s", l.ifi.Name, vip)
	}
	return l.sendNA(vip, netip.IPv6LinkLocalAllNodes(), false)
}

// Join makes the interface receive the neighbour solicitations for an
// IPv6 vip (its solicited-node multicast group); Leave undoes it. Both
// count, so VIPs sharing a group are safe. IPv4 VIPs need nothing.
func (l *L2) Join(vip netip.Addr) error { return l.group(vip, 1) }

// Leave undoes one Join.
func (l *L2) Leave(vip netip.Addr) error { return l.group(vip, -1) }

func (l *L2) group(vip netip.Addr, d int) error {
	if !vip.Is6() || l.ndp == nil {
		return nil
	}
	g, err := ndp.SolicitedNodeMulticast(vip)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	before := l.joined[g]
	l.joined[g] = before + d
	switch {
	case before == 0 && d > 0:
		return l.ndp.JoinGroup(g)
	case before == 1 && d < 0:
		delete(l.joined, g)
		return l.ndp.LeaveGroup(g)
	}
	return nil
}

func sameMAC(a, b net.HardwareAddr) bool { return string(a) == string(b) }
