package flow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mdlayher/netlink"
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

	nfulnlCfgCmdBind = 1
	nfulnlCopyPacket = 2

	nfulaPayload = 9
	nfulaPrefix  = 10
)

// copyRange is how much of each packet the kernel copies: the network
// and transport headers (IPv6 40 + TCP 60).
const copyRange = 128

// NFLOG reads the packets podnet's tables log.
type NFLOG struct {
	conn *netfilter.Conn
}

// OpenNFLOG binds NFLOG group logrule.Group in the current network
// namespace. Only one socket in a namespace can bind a group.
func OpenNFLOG() (*NFLOG, error) {
	c, err := netfilter.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("nflog: %w", err)
	}
	mode := make([]byte, 6)
	binary.BigEndian.PutUint32(mode, copyRange)
	mode[4] = nfulnlCopyPacket
	attrs := []netfilter.Attribute{
		{Type: nfulaCfgCmd, Data: []byte{nfulnlCfgCmdBind}},
		{Type: nfulaCfgMode, Data: mode},
		// Send each packet at once instead of batching for a second.
		{Type: nfulaCfgQThresh, Data: netfilter.Uint32Bytes(1)},
		{Type: nfulaCfgTimeout, Data: netfilter.Uint32Bytes(0)},
	}
	h := netfilter.Header{SubsystemID: netfilter.NFSubsysULOG, MessageType: nfulnlMsgConfig,
		Family: netfilter.ProtoUnspec, ResourceID: logrule.Group, Flags: netlink.Request | netlink.Acknowledge}
	msg, err := netfilter.MarshalNetlink(h, attrs)
	if err == nil {
		_, err = c.Query(msg)
	}
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("nflog: bind group %d: %w", logrule.Group, err)
	}
	_ = c.SetReadBuffer(4 << 20)
	return &NFLOG{conn: c}, nil
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
		}
	}
	return p, true
}

// isClosed says whether err comes from reading a closed socket.
func isClosed(err error) bool {
	var op *netlink.OpError
	return errors.Is(err, unix.EBADF) || (errors.As(err, &op) && strings.Contains(op.Err.Error(), "closed"))
}
