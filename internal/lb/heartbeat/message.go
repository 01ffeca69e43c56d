package heartbeat

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// Kind is what a message says.
type Kind byte

const (
	// Beat says "I am alive".
	Beat Kind = 1
	// Goodbye says "I am leaving: take my VIPs"; peers mark the sender
	// dead at once and answer with an Ack.
	Goodbye Kind = 2
	// Ack answers a Goodbye once the receiver has taken over what it owns
	// in the new view.
	Ack Kind = 3
)

func (k Kind) String() string {
	switch k {
	case Beat:
		return "beat"
	case Goodbye:
		return "goodbye"
	case Ack:
		return "ack"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// Message is one datagram. On the wire:
//
//	"PNHB" | version 1 | kind | epoch u64 | seq u64 | unix nanos i64 |
//	len | MAC | len | node name | HMAC-SHA256 over everything before it
//
// Epoch is the sender's start time (Unix nanos) and Seq counts its
// messages: a receiver drops a message whose (epoch, seq) is not newer than
// the last it accepted from that node, so a recorded message cannot be
// replayed. Time must be within MaxSkew of the receiver's clock, so a
// message recorded before a restart cannot be replayed either.
type Message struct {
	Kind  Kind
	Epoch uint64
	Seq   uint64
	Time  time.Time
	// MAC is the sender's interface address, which announces its VIPs: an
	// announcer that hears another node claim a VIP finds the node (and
	// its rank) by it.
	MAC  net.HardwareAddr
	Node string
}

const (
	magic   = "PNHB"
	version = 1
	macLen  = sha256.Size
	// MaxSkew bounds the difference between a message's time and the
	// receiver's clock.
	MaxSkew = 30 * time.Second
)

// Errors a receiver counts (as heartbeat loss) and drops.
var (
	ErrShort   = errors.New("heartbeat: short or malformed message")
	ErrAuth    = errors.New("heartbeat: bad HMAC")
	ErrSkew    = errors.New("heartbeat: message time too far from the local clock")
	ErrReplay  = errors.New("heartbeat: message not newer than the last one accepted from its node")
	ErrOwnNode = errors.New("heartbeat: message from this node's name")
)

// Marshal encodes m and signs it with key.
func (m Message) Marshal(key []byte) ([]byte, error) {
	if len(m.MAC) > 255 || len(m.Node) > 255 || m.Node == "" {
		return nil, fmt.Errorf("heartbeat: node name %q or MAC %v too long or empty", m.Node, m.MAC)
	}
	b := make([]byte, 0, 64+len(m.Node))
	b = append(b, magic...)
	b = append(b, version, byte(m.Kind))
	b = binary.BigEndian.AppendUint64(b, m.Epoch)
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Time.UnixNano()))
	b = append(b, byte(len(m.MAC)))
	b = append(b, m.MAC...)
	b = append(b, byte(len(m.Node)))
	b = append(b, m.Node...)
	mac := hmac.New(sha256.New, key)
	mac.Write(b)
	return mac.Sum(b), nil
}

// Unmarshal checks b's HMAC with key and decodes it.
func Unmarshal(b, key []byte) (Message, error) {
	var m Message
	if len(b) < len(magic)+2+24+2+macLen || string(b[:4]) != magic || b[4] != version {
		return m, ErrShort
	}
	body, sum := b[:len(b)-macLen], b[len(b)-macLen:]
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), sum) {
		return m, ErrAuth
	}
	m.Kind = Kind(body[5])
	m.Epoch = binary.BigEndian.Uint64(body[6:])
	m.Seq = binary.BigEndian.Uint64(body[14:])
	m.Time = time.Unix(0, int64(binary.BigEndian.Uint64(body[22:])))
	rest := body[30:]
	hw, rest, ok := field(rest)
	if !ok {
		return m, ErrShort
	}
	node, rest, ok := field(rest)
	if !ok || len(rest) != 0 || len(node) == 0 {
		return m, ErrShort
	}
	m.MAC = net.HardwareAddr(hw)
	m.Node = string(node)
	return m, nil
}

// field splits a length-prefixed field off b.
func field(b []byte) (f, rest []byte, ok bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return nil, nil, false
	}
	n := int(b[0])
	return b[1 : 1+n], b[1+n:], true
}
