package ipam

import (
	"fmt"
	"net/netip"
)

// Owner identifies an attachment: one interface of one container.
type Owner struct {
	ContainerID string
	IfName      string
}

func (o Owner) String() string { return fmt.Sprintf("%s/%s", o.ContainerID, o.IfName) }

// Reservation is one reserved address and its owner.
type Reservation struct {
	IP    netip.Addr
	Owner Owner
}

// Store persists reservations. Every method other than Lock, Unlock and Close
// must be called with the lock held; the lock excludes other processes too.
type Store interface {
	Lock() error
	Unlock() error
	// Reserve records ip as owned by owner. It returns false, and changes
	// nothing, when ip is already reserved.
	Reserve(ip netip.Addr, owner Owner) (bool, error)
	// Release removes the reservation of ip; an absent one is not an error.
	Release(ip netip.Addr) error
	// List returns every reservation, in no particular order.
	List() ([]Reservation, error)
	// LastReserved returns the address last reserved from range set i, or
	// the zero Addr when none was.
	LastReserved(set int) (netip.Addr, error)
	SetLastReserved(set int, ip netip.Addr) error
	Close() error
}
