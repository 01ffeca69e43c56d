package e2e

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

// The capture's classifier on frames built here, so that a capture that
// sees nothing wrong is known to be able to see it. Addresses: nodes
// 172.29.40.11-12, root (API server) .1, pods 10.140.0.0/16.

func testView() *underlayView {
	return &underlayView{
		podCIDR: netip.MustParsePrefix("10.140.0.0/16"),
		nodeIPs: map[netip.Addr]string{netip.MustParseAddr("172.29.40.11"): "n1", netip.MustParseAddr("172.29.40.12"): "n2"},
		wgPort:  51871,
		control: map[uint16]string{7947: "heartbeat"},
		marker:  []byte("pnmk-0123456789ab"),
	}
}

var (
	tn1   = netip.MustParseAddr("172.29.40.11")
	tn2   = netip.MustParseAddr("172.29.40.12")
	troot = netip.MustParseAddr("172.29.40.1")
	tpod1 = netip.MustParseAddr("10.140.0.5")
	tpod2 = netip.MustParseAddr("10.140.1.7")
)

// ethFrame is an Ethernet frame of etherType around payload.
func ethFrame(etherType uint16, payload []byte) []byte {
	f := make([]byte, 14, 14+len(payload))
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 1})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 2})
	binary.BigEndian.PutUint16(f[12:14], etherType)
	return append(f, payload...)
}

// ipv4Packet is an IPv4 packet (no options) with an L4 header of proto
// (UDP or TCP: ports; UDP gets its 8-byte header, TCP 20 bytes) and data.
func ipv4Packet(proto byte, src, dst netip.Addr, sport, dport uint16, data []byte) []byte {
	l4len := 8
	if proto == 6 {
		l4len = 20
	}
	p := make([]byte, 20+l4len, 20+l4len+len(data))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:4], uint16(20+l4len+len(data)))
	p[8], p[9] = 64, proto
	s, d := src.As4(), dst.As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	binary.BigEndian.PutUint16(p[20:22], sport)
	binary.BigEndian.PutUint16(p[22:24], dport)
	if proto == 17 {
		binary.BigEndian.PutUint16(p[24:26], uint16(8+len(data)))
	} else {
		p[32] = 5 << 4
	}
	return append(p, data...)
}

func udpFrame(src, dst netip.Addr, sport, dport uint16, data []byte) []byte {
	return ethFrame(0x0800, ipv4Packet(17, src, dst, sport, dport, data))
}

func tcpFrame(src, dst netip.Addr, sport, dport uint16, data []byte) []byte {
	return ethFrame(0x0800, ipv4Packet(6, src, dst, sport, dport, data))
}

func vxlanFrame(src, dst netip.Addr, inner []byte) []byte {
	hdr := []byte{0x08, 0, 0, 0, 0, 0, 1, 0} // flags, VNI 1
	return udpFrame(src, dst, 40000, underlayVXLANPort, append(hdr, inner...))
}

// icmpFrame is an ICMP message of typ/code from src to dst quoting
// quoted (an IPv4 packet, for errors).
func icmpFrame(src, dst netip.Addr, typ, code byte, quoted []byte) []byte {
	p := make([]byte, 28, 28+len(quoted))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:4], uint16(28+len(quoted)))
	p[8], p[9] = 64, 1
	s, d := src.As4(), dst.As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	p[20], p[21] = typ, code
	return ethFrame(0x0800, append(p, quoted...))
}

func arpFrame(sender, target netip.Addr) []byte {
	p := make([]byte, 28)
	binary.BigEndian.PutUint16(p[0:2], 1)
	binary.BigEndian.PutUint16(p[2:4], 0x0800)
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:8], 1)
	s, tg := sender.As4(), target.As4()
	copy(p[14:18], s[:])
	copy(p[24:28], tg[:])
	return ethFrame(0x0806, p)
}

// wgData is the start of a WireGuard transport data message.
func wgMessage(typ byte) []byte {
	return append([]byte{typ, 0, 0, 0}, make([]byte, 28)...)
}

func TestCaptureClassifierSortsFrames(t *testing.T) {
	v := testView()
	marker := string(v.marker)
	for _, tc := range []struct {
		name          string
		frame         []byte
		wireGuard     bool
		nodeToNode    bool
		control       bool
		wgError       bool
		leaks         []string // substrings, one per expected leak, in order
		summaryPrefix string
	}{
		{name: "WireGuard data between two nodes is WireGuard",
			frame: udpFrame(tn1, tn2, 51871, 51871, wgMessage(4)), wireGuard: true, nodeToNode: true,
			summaryPrefix: "udp 172.29.40.11:51871 > 172.29.40.12:51871"},
		{name: "a handshake initiation is WireGuard too",
			frame: udpFrame(tn2, tn1, 51871, 51871, wgMessage(1)), wireGuard: true, nodeToNode: true},
		{name: "UDP on the WireGuard port without a WireGuard header is not WireGuard",
			frame: udpFrame(tn1, tn2, 51871, 51871, []byte("hello, in the clear")), nodeToNode: true},
		{name: "WireGuard from another port is not WireGuard",
			frame: udpFrame(tn1, tn2, 40000, 51871, wgMessage(4)), nodeToNode: true},
		{name: "a heartbeat between two nodes on a control port is node control",
			frame: udpFrame(tn1, tn2, 7947, 7947, []byte("hb")), nodeToNode: true, control: true},
		{name: "a control port on one end only is not node control",
			frame: udpFrame(tn1, tn2, 7947, 7070, []byte("hb")), nodeToNode: true},
		{name: "a control port from the root namespace is not node control",
			frame: udpFrame(troot, tn2, 7947, 7947, []byte("hb"))},
		{name: "the WireGuard port from the root namespace is not between nodes",
			frame: udpFrame(troot, tn1, 51871, 51871, wgMessage(4))},
		{name: "pod to pod in the clear leaks both pod addresses",
			frame: udpFrame(tpod1, tpod2, 40000, 7070, []byte("x")), leaks: []string{"pod address 10.140.0.5", "pod address 10.140.1.7"}},
		{name: "the marker between the API server and a node is a leak",
			frame: tcpFrame(troot, tn1, 6443, 50000, []byte("..."+marker+"...")), leaks: []string{"the marker"},
			summaryPrefix: "tcp 172.29.40.1:6443 > 172.29.40.11:50000"},
		{name: "VXLAN between nodes with a pod packet inside leaks its inner addresses and the marker",
			frame:      vxlanFrame(tn1, tn2, udpFrame(tpod1, tpod2, 40000, 7070, []byte(marker))),
			nodeToNode: true, leaks: []string{"the marker", "pod address 10.140.0.5 inside VXLAN", "pod address 10.140.1.7 inside VXLAN"},
			summaryPrefix: "udp 172.29.40.11:40000 > 172.29.40.12:4789; inner udp 10.140.0.5:40000 > 10.140.1.7:7070"},
		{name: "VXLAN of node traffic is between nodes and no leak",
			frame: vxlanFrame(tn1, tn2, tcpFrame(tn1, troot, 1, 2, nil)), nodeToNode: true},
		{name: "a port unreachable about a WireGuard packet between nodes is WireGuard's",
			frame:      icmpFrame(tn2, tn1, 3, 3, ipv4Packet(17, tn1, tn2, 51871, 51871, wgMessage(1))),
			nodeToNode: true, wgError: true, summaryPrefix: "ip proto 1 172.29.40.12 > 172.29.40.11 (icmp type 3 code 3 about proto 17 172.29.40.11:51871 > 172.29.40.12:51871)"},
		{name: "a port unreachable about other UDP between nodes is not WireGuard's",
			frame: icmpFrame(tn2, tn1, 3, 3, ipv4Packet(17, tn1, tn2, 40000, 51871, nil)), nodeToNode: true},
		{name: "a port unreachable about a heartbeat between nodes is node control",
			frame: icmpFrame(tn2, tn1, 3, 3, ipv4Packet(17, tn1, tn2, 7947, 7947, nil)), nodeToNode: true, control: true},
		{name: "an ICMP error quoting a pod packet leaks its addresses",
			frame:      icmpFrame(tn2, tn1, 3, 1, ipv4Packet(17, tpod1, tpod2, 40000, 7070, nil)),
			nodeToNode: true, leaks: []string{"pod address 10.140.0.5 quoted in ICMP", "pod address 10.140.1.7 quoted in ICMP"}},
		{name: "an echo request between nodes is no error", frame: icmpFrame(tn1, tn2, 8, 0, make([]byte, 32)), nodeToNode: true,
			summaryPrefix: "ip proto 1 172.29.40.11 > 172.29.40.12"},
		{name: "ARP for a node address is no leak", frame: arpFrame(tn1, tn2)},
		{name: "ARP for a pod address is a leak", frame: arpFrame(tn1, tpod2), leaks: []string{"pod address 10.140.1.7 in ARP"}},
		{name: "an API server connection is other traffic", frame: tcpFrame(tn1, troot, 50000, 6443, []byte("tls"))},
		{name: "a truncated frame is other traffic", frame: udpFrame(tn1, tn2, 51871, 51871, wgMessage(4))[:20],
			summaryPrefix: "malformed IPv4"},
		{name: "a frame shorter than an Ethernet header is other traffic", frame: []byte{1, 2, 3}},
		{name: "IPv6 is other traffic", frame: ethFrame(0x86dd, make([]byte, 40)), summaryPrefix: "ethertype 0x86dd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classifyFrame(tc.frame, v)
			if got.wireGuard != tc.wireGuard || got.nodeToNode != tc.nodeToNode || got.control != tc.control || got.wireGuardError != tc.wgError {
				t.Errorf("wireGuard %v nodeToNode %v control %v wireGuardError %v, want %v %v %v %v (%s)", got.wireGuard, got.nodeToNode, got.control,
					got.wireGuardError, tc.wireGuard, tc.nodeToNode, tc.control, tc.wgError, got.summary)
			}
			if len(got.leaks) != len(tc.leaks) {
				t.Fatalf("leaks %q, want %d like %q", got.leaks, len(tc.leaks), tc.leaks)
			}
			for i, want := range tc.leaks {
				if !strings.HasPrefix(got.leaks[i], want) {
					t.Errorf("leak %d is %q, want %q", i, got.leaks[i], want)
				}
			}
			if !strings.HasPrefix(got.summary, tc.summaryPrefix) {
				t.Errorf("summary %q, want it to start with %q", got.summary, tc.summaryPrefix)
			}
		})
	}
}

// The report counts what the classifier says, and keeps a bounded number
// of descriptions.
func TestCaptureReportCountsAndBoundsSamples(t *testing.T) {
	v := testView()
	var r captureReport
	for range 3 {
		r.add(udpFrame(tn1, tn2, 51871, 51871, wgMessage(4)), v)
	}
	r.add(udpFrame(tn1, tn2, 51871, 51871, wgMessage(1)), v)
	r.add(tcpFrame(tn1, troot, 50000, 6443, nil), v)
	r.add(udpFrame(tn2, tn1, 7947, 7947, nil), v)
	r.add(icmpFrame(tn2, tn1, 3, 3, ipv4Packet(17, tn1, tn2, 51871, 51871, wgMessage(4))), v)
	for range maxSamples + 5 {
		r.add(vxlanFrame(tn1, tn2, udpFrame(tpod1, tpod2, 1, 2, v.marker)), v)
	}
	if r.Frames != int64(4+3+maxSamples+5) || r.NodeControl != 1 || r.WireGuardErrors != 1 || r.WireGuardBytes != 4*(14+28+32) || r.WireGuard != 4 || r.WireGuardType[4] != 3 || r.WireGuardType[1] != 1 {
		t.Errorf("counts: %s", r)
	}
	if r.Other != 1 || r.NodeToNodeOther != int64(maxSamples+5) || r.LeakFrames != int64(maxSamples+5) || r.MarkerFrames != int64(maxSamples+5) {
		t.Errorf("counts: %s", r)
	}
	if len(r.Leaks) != maxSamples || len(r.NodeToNodeSamples) != maxSamples {
		t.Errorf("kept %d leak and %d node samples, want %d each", len(r.Leaks), len(r.NodeToNodeSamples), maxSamples)
	}
	if !strings.Contains(r.Leaks[0], "inside VXLAN") || !strings.Contains(r.String(), "4 WireGuard (296 bytes; 1 initiations, 0 responses, 0 cookies, 3 data; 1 ICMP errors about it), 1 node control, 17 other between nodes, 1 other") {
		t.Errorf("report: %s\n%s", r, r.Leaks[0])
	}
}
