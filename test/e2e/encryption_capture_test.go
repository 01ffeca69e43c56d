package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// What the encryption tests see on a cluster's node network: every frame
// on the underlay bridge in the root namespace, read by a raw AF_PACKET
// socket bound to that bridge, and sorted by classifyFrame. Only counts,
// and a few short descriptions of the frames that matter, are kept.

// underlayView is what classifyFrame needs to know about a cluster.
type underlayView struct {
	podCIDR netip.Prefix          // the cluster's pod range: an address of it on the wire is a leak
	nodeIPs map[netip.Addr]string // node address -> node name
	wgPort  uint16                // the nodes' WireGuard port
	// control are UDP ports (both ends) of the nodes' own traffic
	// between them, which encryption leaves alone: port -> what it is.
	control map[uint16]string
	marker  []byte // bytes that must never be seen ("" for none)
}

// The VXLAN port of routing's tunnel (routing.VXLANPort): a frame to it is
// opened and its inner frame classified too.
const underlayVXLANPort = 4789

// frameVerdict is what one frame is.
type frameVerdict struct {
	// wireGuard: IPv4 UDP between two node addresses, from and to the
	// WireGuard port, with a WireGuard message header; wgType is its
	// message type (1 initiation, 2 response, 3 cookie, 4 data).
	wireGuard bool
	wgType    byte
	// wireGuardError: an ICMP error between two nodes about a WireGuard
	// packet (a port unreachable while a peer's agent is down): it quotes
	// the start of that packet, which is encrypted.
	wireGuardError bool
	// nodeToNode: IPv4 between two node addresses (WireGuard or not);
	// control: UDP between two nodes on one of the view's control ports.
	nodeToNode, control bool
	// leaks say why the frame shows what encryption must hide: the
	// marker, or a pod address in an IPv4 or ARP header (outer, or inner
	// in VXLAN).
	leaks []string
	// summary is a one-line description ("udp 172.29.40.11:51871 > ...").
	summary string
}

// classifyFrame sorts one Ethernet frame. It never fails: what it cannot
// parse is "other" (and still searched for the marker).
func classifyFrame(frame []byte, v *underlayView) frameVerdict {
	var out frameVerdict
	if len(v.marker) > 0 && bytes.Contains(frame, v.marker) {
		out.leaks = append(out.leaks, "the marker")
	}
	classifyEthernet(frame, v, &out, 0)
	return out
}

func classifyEthernet(frame []byte, v *underlayView, out *frameVerdict, depth int) {
	if len(frame) < 14 {
		out.summary = fmt.Sprintf("short frame of %d bytes", len(frame))
		return
	}
	etherType, payload := binary.BigEndian.Uint16(frame[12:14]), frame[14:]
	for etherType == 0x8100 && len(payload) >= 4 { // 802.1Q tag
		etherType, payload = binary.BigEndian.Uint16(payload[2:4]), payload[4:]
	}
	switch etherType {
	case 0x0800:
		classifyIPv4(payload, v, out, depth)
	case 0x0806:
		classifyARP(payload, v, out)
	default:
		if depth == 0 {
			out.summary = fmt.Sprintf("ethertype %#04x", etherType)
		}
	}
}

func classifyARP(p []byte, v *underlayView, out *frameVerdict) {
	// Ethernet/IPv4 ARP: sender IP at 14, target IP at 24.
	if len(p) < 28 || binary.BigEndian.Uint16(p[2:4]) != 0x0800 || p[5] != 4 {
		out.summary = "arp (not IPv4)"
		return
	}
	sender, target := netip.AddrFrom4([4]byte(p[14:18])), netip.AddrFrom4([4]byte(p[24:28]))
	out.summary = fmt.Sprintf("arp %s asks/tells %s", sender, target)
	for _, a := range []netip.Addr{sender, target} {
		if v.podCIDR.Contains(a) {
			out.leaks = append(out.leaks, "pod address "+a.String()+" in ARP")
		}
	}
}

func classifyIPv4(p []byte, v *underlayView, out *frameVerdict, depth int) {
	if len(p) < 20 || p[0]>>4 != 4 {
		out.summary = "malformed IPv4"
		return
	}
	ihl := int(p[0]&0x0f) * 4
	if ihl < 20 || len(p) < ihl {
		out.summary = "malformed IPv4"
		return
	}
	proto := p[9]
	src, dst := netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
	where := ""
	if depth > 0 {
		where = " inside VXLAN"
	}
	for _, a := range []netip.Addr{src, dst} {
		if v.podCIDR.Contains(a) {
			out.leaks = append(out.leaks, "pod address "+a.String()+where)
		}
	}
	_, srcNode := v.nodeIPs[src]
	_, dstNode := v.nodeIPs[dst]
	l4 := p[ihl:]
	desc := fmt.Sprintf("ip proto %d %s > %s", proto, src, dst)
	var sport, dport uint16
	if (proto == unix.IPPROTO_UDP || proto == unix.IPPROTO_TCP) && len(l4) >= 4 {
		sport, dport = binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
		name := "udp"
		if proto == unix.IPPROTO_TCP {
			name = "tcp"
		}
		desc = fmt.Sprintf("%s %s > %s", name, netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport))
	}
	if depth > 0 {
		out.summary += "; inner " + desc
		return
	}
	out.summary = desc
	out.nodeToNode = srcNode && dstNode
	if proto == unix.IPPROTO_ICMP {
		classifyICMPError(l4, v, out)
		return
	}
	if proto != unix.IPPROTO_UDP || len(l4) < 8 {
		return
	}
	udpPayload := l4[8:]
	if out.nodeToNode && sport == v.wgPort && dport == v.wgPort && len(udpPayload) >= 4 &&
		udpPayload[0] >= 1 && udpPayload[0] <= 4 && udpPayload[1] == 0 && udpPayload[2] == 0 && udpPayload[3] == 0 {
		out.wireGuard, out.wgType = true, udpPayload[0]
	}
	if _, ok := v.control[sport]; ok && out.nodeToNode && sport == dport {
		out.control = true
	}
	if dport == underlayVXLANPort && len(udpPayload) >= 8 {
		classifyEthernet(udpPayload[8:], v, out, depth+1)
	}
}

// classifyICMPError looks into the packet an ICMP error (destination
// unreachable, time exceeded) quotes: pod addresses there are a leak, and
// an error about WireGuard, or the nodes' control traffic, between nodes
// belongs to it.
func classifyICMPError(icmp []byte, v *underlayView, out *frameVerdict) {
	if len(icmp) < 8+20 || (icmp[0] != 3 && icmp[0] != 11) {
		return
	}
	q := icmp[8:]
	ihl := int(q[0]&0x0f) * 4
	if q[0]>>4 != 4 || ihl < 20 || len(q) < ihl+4 {
		return
	}
	src, dst := netip.AddrFrom4([4]byte(q[12:16])), netip.AddrFrom4([4]byte(q[16:20]))
	sport, dport := binary.BigEndian.Uint16(q[ihl:ihl+2]), binary.BigEndian.Uint16(q[ihl+2:ihl+4])
	out.summary += fmt.Sprintf(" (icmp type %d code %d about proto %d %s > %s)", icmp[0], icmp[1], q[9],
		netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport))
	for _, a := range []netip.Addr{src, dst} {
		if v.podCIDR.Contains(a) {
			out.leaks = append(out.leaks, "pod address "+a.String()+" quoted in ICMP")
		}
	}
	_, srcNode := v.nodeIPs[src]
	_, dstNode := v.nodeIPs[dst]
	if !out.nodeToNode || q[9] != unix.IPPROTO_UDP || !srcNode || !dstNode || sport != dport {
		return
	}
	_, control := v.control[sport]
	out.wireGuardError = sport == v.wgPort
	out.control = control
}

// captureReport sums up a capture.
type captureReport struct {
	Frames, Bytes int64
	// Drops are frames the kernel dropped from the socket's queue
	// (PACKET_STATISTICS): a capture with drops may have missed a leak.
	Drops int64
	// WireGuard frames and their bytes, by message type (index 1..4); a
	// frame may hold several messages (UDP GSO). WireGuardErrors are ICMP
	// errors about WireGuard packets between nodes.
	WireGuard, WireGuardBytes, WireGuardErrors int64
	WireGuardType                              [5]int64
	// NodeControl are frames of the nodes' own traffic between them on a
	// control port; NodeToNodeOther are the other IPv4 frames between two
	// node addresses that are not WireGuard; Other is the rest (API
	// server, ARP ...).
	NodeControl, NodeToNodeOther, Other int64
	// LeakFrames are frames with a leak; MarkerFrames those with the
	// marker. Leaks and NodeToNodeSamples describe the first few.
	LeakFrames, MarkerFrames int64
	Leaks                    []string
	NodeToNodeSamples        []string
}

// maxSamples bounds the descriptions a report keeps.
const maxSamples = 12

func (r *captureReport) add(frame []byte, v *underlayView) {
	r.Frames++
	r.Bytes += int64(len(frame))
	fv := classifyFrame(frame, v)
	switch {
	case fv.wireGuard:
		r.WireGuard++
		r.WireGuardBytes += int64(len(frame))
		r.WireGuardType[fv.wgType]++
	case fv.wireGuardError:
		r.WireGuardErrors++
	case fv.control:
		r.NodeControl++
	case fv.nodeToNode:
		r.NodeToNodeOther++
		if len(r.NodeToNodeSamples) < maxSamples {
			r.NodeToNodeSamples = append(r.NodeToNodeSamples, fv.summary)
		}
	default:
		r.Other++
	}
	if len(fv.leaks) == 0 {
		return
	}
	r.LeakFrames++
	for _, l := range fv.leaks {
		if l == "the marker" {
			r.MarkerFrames++
		}
	}
	if len(r.Leaks) < maxSamples {
		head := frame[:min(len(frame), 64)]
		r.Leaks = append(r.Leaks, fmt.Sprintf("%s: %s (first bytes %s)", strings.Join(fv.leaks, ", "), fv.summary, hex.EncodeToString(head)))
	}
}

func (r captureReport) String() string {
	return fmt.Sprintf("%d frames (%d bytes, %d dropped by the kernel): %d WireGuard (%d bytes; %d initiations, %d responses, %d cookies, %d data; "+
		"%d ICMP errors about it), %d node control, %d other between nodes, %d other; %d with a leak (%d with the marker)",
		r.Frames, r.Bytes, r.Drops, r.WireGuard, r.WireGuardBytes, r.WireGuardType[1], r.WireGuardType[2], r.WireGuardType[3], r.WireGuardType[4],
		r.WireGuardErrors, r.NodeControl, r.NodeToNodeOther, r.Other, r.LeakFrames, r.MarkerFrames)
}

// capture reads every frame of one interface of the root namespace until
// stop is called.
type capture struct {
	fd   int
	view *underlayView
	done chan struct{}
	// stopping is closed by stop; the reader drains the queue and ends.
	stopping chan struct{}
	once     sync.Once

	mu     sync.Mutex // guards report and err
	report captureReport
	err    error
}

// captureBufSize holds the largest frame a bridge passes up (a GRO or GSO
// packet of up to 64 KiB, and more with BIG TCP).
const captureBufSize = 256 << 10

// startCapture opens a raw AF_PACKET socket on ifname, in promiscuous mode
// (a bridge passes frames it forwards between its ports up to its own
// device only then), and classifies every frame until stop. It is stopped
// when the test ends too.
func startCapture(t *testing.T, ifname string, view *underlayView) *capture {
	t.Helper()
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	// Protocol 0 receives nothing until bind names the protocol and the
	// interface, so no frame of another interface gets in.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("capture: socket: %v", err)
	}
	all := htons(unix.ETH_P_ALL)
	setup := func() error {
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: all, Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("bind to %s: %w", ifname, err)
		}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP,
			&unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}); err != nil {
			return fmt.Errorf("promiscuous mode on %s: %w", ifname, err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20); err != nil {
			return fmt.Errorf("receive buffer: %w", err)
		}
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000})
	}
	if err := setup(); err != nil {
		unix.Close(fd)
		t.Fatalf("capture: %v", err)
	}
	c := &capture{fd: fd, view: view, done: make(chan struct{}), stopping: make(chan struct{})}
	go c.read()
	t.Cleanup(func() { c.stop() })
	return c
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *capture) read() {
	defer close(c.done)
	defer unix.Close(c.fd)
	buf := make([]byte, captureBufSize)
	stopping := false
	for {
		if !stopping {
			select {
			case <-c.stopping:
				stopping = true
				// Drain what is queued without waiting for more.
				if err := unix.SetNonblock(c.fd, true); err != nil {
					c.fail(err)
					return
				}
			default:
			}
		}
		n, _, err := unix.Recvfrom(c.fd, buf, unix.MSG_TRUNC)
		switch {
		case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
			if stopping {
				return
			}
			continue
		case err != nil:
			c.fail(err)
			return
		}
		if n > len(buf) { // MSG_TRUNC returns the frame's real length
			c.fail(fmt.Errorf("a frame of %d bytes does not fit the %d-byte buffer", n, len(buf)))
			n = len(buf)
		}
		c.mu.Lock()
		c.report.add(buf[:n], c.view)
		c.mu.Unlock()
	}
}

func (c *capture) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

// stop ends the capture (after reading what the kernel has queued) and
// returns its report; later calls return the same.
func (c *capture) stop() (captureReport, error) {
	c.once.Do(func() {
		// Frames in flight when the senders finished are queued within a
		// few milliseconds.
		time.Sleep(200 * time.Millisecond)
		if st, err := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			c.mu.Lock()
			c.report.Drops += int64(st.Drops)
			c.mu.Unlock()
		}
		close(c.stopping)
		<-c.done
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.report, c.err
}

// snapshot is the report so far, while the capture goes on.
func (c *capture) snapshot() captureReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.report
}
