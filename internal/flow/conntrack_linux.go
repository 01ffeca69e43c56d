package flow

import (
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
)

// ConntrackEvents reads conntrack NEW and DESTROY events. DESTROY events
// carry byte and packet counters only where conntrack accounting is on
// (sysctl net.netfilter.nf_conntrack_acct, per network namespace; the
// agent does not change it).
type ConntrackEvents struct {
	conn *netfilter.Conn
}

// OpenConntrackEvents joins the conntrack event groups in the current
// network namespace.
func OpenConntrackEvents() (*ConntrackEvents, error) {
	c, err := netfilter.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("conntrack events: %w", err)
	}
	if err := c.JoinGroups([]netfilter.NetlinkGroup{netfilter.GroupCTNew, netfilter.GroupCTDestroy}); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("conntrack events: %w", err)
	}
	_ = c.SetReadBuffer(4 << 20)
	return &ConntrackEvents{conn: c}, nil
}

// Close stops Read.
func (e *ConntrackEvents) Close() error { return e.conn.Close() }

// Read calls add for every event and lost for every time the socket's
// buffer overflowed, until Close.
func (e *ConntrackEvents) Read(add func(time.Time, conntrack.Event), lost func()) error {
	return receive(e.conn, "conntrack events", lost, func(now time.Time, m netlink.Message) {
		var ev conntrack.Event
		if ev.Unmarshal(m) == nil {
			add(now, ev)
		}
	})
}
