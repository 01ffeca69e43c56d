package flow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/flow/logrule"
)

// NFLOG (nfnetlink_log) message types and attributes, from
// linux/netfilter/nfnetlink_log.h.
const (
	nfulnlMsgPacket = 0
	nfulnlMsgConfig = 1

	nfulaCfgCmd     = 1
	nfulaCfgMode    = 2
	nfulaCfgTimeout = 4
	nfulaCfgQThresh = 5
	nfulaCfgFlags   = 6

	nfulnlCfgCmdBind    = 1
	nfulnlCopyPacket    = 2
	nfulnlCfgFConntrack = 0x0004 // NFULNL_CFG_F_CONNTRACK
	ctnetlinkMsgCTNew   = 0

	nfulaPayload = 9
	nfulaPrefix  = 10
	nfulaCT      = 18
)

// copyRange is how much of each packet the kernel copies: the network
// and transport headers (IPv6 40 + TCP 60).
const copyRange = 128

// NFLOG reads the packets podnet's tables log.
type NFLOG struct {
	conn *netfilter.Conn
	// WithConntrack is true when the kernel attaches each packet's
	// conntrack entry (its original tuple names a Service after DNAT);
	// ConntrackErr says why not (EOPNOTSUPP: a kernel built without
	// CONFIG_NETFILTER_NETLINK_GLUE_CT).
	WithConntrack bool
	ConntrackErr  error
}

// OpenNFLOG binds NFLOG group logrule.Group in the current network
// namespace, asking for each packet's conntrack entry too where the
// kernel can give it (nf_conntrack_netlink). Only one socket in a
// namespace can bind a group.
func OpenNFLOG() (*NFLOG, error) {
	c, err := netfilter.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("nflog: %w", err)
	}
	n := &NFLOG{conn: c, WithConntrack: true}
	err = n.bind(nfulnlCfgFConntrack)
	if errors.Is(err, unix.EAGAIN) { // the kernel just loaded ctnetlink
		err = n.bind(nfulnlCfgFConntrack)
	}
	if err != nil {
		n.WithConntrack, n.ConntrackErr = false, err
		err = n.bind(0)
	}
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("nflog: bind group %d: %w", logrule.Group, err)
	}
	_ = c.SetReadBuffer(4 << 20)
	return n, nil
}

// bind binds the group with the configuration flags.
func (n *NFLOG) bind(flags uint16) error {
	mode := make([]byte, 6)
	binary.BigEndian.PutUint32(mode, copyRange)
	mode[4] = nfulnlCopyPacket
	attrs := []netfilter.Attribute{
		{Type: nfulaCfgCmd, Data: []byte{nfulnlCfgCmdBind}},
		{Type: nfulaCfgMode, Data: mode},
		// Send each packet at once instead of batching for a second.
		{Type: nfulaCfgQThresh, Data: netfilter.Uint32Bytes(1)},
		{Type: nfulaCfgTimeout, Data: netfilter.Uint32Bytes(0)},
		{Type: nfulaCfgFlags, Data: netfilter.Uint16Bytes(flags)},
	}
	h := netfilter.Header{SubsystemID: netfilter.NFSubsysULOG, MessageType: nfulnlMsgConfig,
		Family: netfilter.ProtoUnspec, ResourceID: logrule.Group, Flags: netlink.Request | netlink.Acknowledge}
	msg, err := netfilter.MarshalNetlink(h, attrs)
	if err == nil {
		_, err = n.conn.Query(msg)
	}
	return err
}

// Close stops Read.
func (n *NFLOG) Close() error { return n.conn.Close() }

// Read calls add for every logged packet and lost for every time the
// socket's buffer overflowed, until Close.
func (n *NFLOG) Read(add func(LoggedPacket), lost func()) error {
	return receive(n.conn, "nflog", lost, func(now time.Time, m netlink.Message) {
		if p, ok := decodeNFLOG(m, now); ok {
			add(p)
		}
	})
}

// receive reads messages from c until it is closed, handing each to
// handle with the time it came; an overflow of the socket's buffer
// (ENOBUFS: the kernel dropped messages) calls lost and reading goes on.
func receive(c *netfilter.Conn, what string, lost func(), handle func(time.Time, netlink.Message)) error {
	for {
		msgs, err := c.Receive()
		if errors.Is(err, unix.ENOBUFS) {
			lost()
			continue
		}
		if err != nil {
			if isClosed(err) {
				return nil
			}
			return fmt.Errorf("%s: receive: %w", what, err)
		}
		now := time.Now()
		for _, m := range msgs {
			handle(now, m)
		}
	}
}

// decodeNFLOG reads one NFLOG packet message.
func decodeNFLOG(m netlink.Message, now time.Time) (LoggedPacket, bool) {
	h, attrs, err := netfilter.UnmarshalNetlink(m)
	if err != nil || h.SubsystemID != netfilter.NFSubsysULOG || h.MessageType != nfulnlMsgPacket {
		return LoggedPacket{}, false
	}
	p := LoggedPacket{Time: now}
	for _, a := range attrs {
		switch a.Type {
		case nfulaPrefix:
			p.Prefix = strings.TrimRight(string(a.Data), "\x00")
		case nfulaPayload:
			p.Payload = a.Data
		case nfulaCT:
			p.Conntrack = decodeCT(h.Family, a.Data)
		}
	}
	return p, true
}

// decodeCT reads NFULA_CT, the packet's conntrack entry in ctnetlink's
// attribute format, as ti-mo/conntrack reads an event (nil when it cannot).
func decodeCT(family netfilter.ProtoFamily, attrs []byte) *conntrack.Flow {
	data := append([]byte{byte(family), 0, 0, 0}, attrs...) // nfgenmsg, then the attributes
	m := netlink.Message{Header: netlink.Header{
		Type:  netlink.HeaderType(uint16(netfilter.NFSubsysCTNetlink)<<8 | ctnetlinkMsgCTNew),
		Flags: netlink.Create}, Data: data}
	var ev conntrack.Event
	if ev.Unmarshal(m) != nil {
		return nil
	}
	return ev.Flow
}

// isClosed says whether err comes from reading a closed socket.
func isClosed(err error) bool {
	var op *netlink.OpError
	return errors.Is(err, unix.EBADF) || (errors.As(err, &op) && strings.Contains(op.Err.Error(), "closed"))
}
