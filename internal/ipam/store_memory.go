package ipam

import (
	"net/netip"
	"sync"
)

// MemoryStore is a Store kept in memory, for tests and for callers that
// persist nothing. Its lock excludes goroutines, not processes.
type MemoryStore struct {
	lock sync.Mutex

	// mu guards the fields below; held only inside single calls so that
	// tests can inspect the store while no allocation runs.
	mu       sync.Mutex
	reserved map[netip.Addr]Owner
	last     map[int]netip.Addr
	// FailReserve, when set, is returned by Reserve (to test error paths).
	FailReserve error
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{reserved: map[netip.Addr]Owner{}, last: map[int]netip.Addr{}}
}

func (m *MemoryStore) Lock() error   { m.lock.Lock(); return nil }
func (m *MemoryStore) Unlock() error { m.lock.Unlock(); return nil }
func (m *MemoryStore) Close() error  { return nil }

func (m *MemoryStore) Reserve(ip netip.Addr, owner Owner) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.FailReserve != nil {
		return false, m.FailReserve
	}
	if _, taken := m.reserved[ip]; taken {
		return false, nil
	}
	m.reserved[ip] = owner
	return true, nil
}

func (m *MemoryStore) Release(ip netip.Addr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.reserved, ip)
	return nil
}

func (m *MemoryStore) List() ([]Reservation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Reservation, 0, len(m.reserved))
	for ip, o := range m.reserved {
		out = append(out, Reservation{IP: ip, Owner: o})
	}
	return out, nil
}

func (m *MemoryStore) LastReserved(set int) (netip.Addr, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last[set], nil
}

func (m *MemoryStore) SetLastReserved(set int, ip netip.Addr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last[set] = ip
	return nil
}
