package proxy

import (
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/knftables"
)

// Syncer applies rendered tables to one nftables interface. One runner
// calls Sync or Apply at a time.
type Syncer struct {
	// set at construction, read-only
	nft knftables.Interface
	ct  Conntrack

	// ports are the desired Service ports by key, with every change
	// applied (also the changes of a sync that failed, which the next
	// full sync writes); endpoints counts their endpoints.
	ports     map[string]*ServicePort
	endpoints int
	// programmed holds, for each key changed since the last successful
	// sync, the version that sync programmed (nil: none), for the stale
	// conntrack entries of the change.
	programmed map[string]*ServicePort
	// synced says a sync succeeded since the start: before that nothing
	// is known to be stale, so a restart deletes no conntrack entry.
	synced bool
	// written is the table content the previous successful sync left; nil
	// forces a full sync (after a start or a failure).
	written *State
	// slots keeps every Service port's endpoint slots in place.
	slots *SlotAllocator
	// elems writes element-only changes without nft (nil: always nft).
	elems ElementWriter
}

// WithElementWriter makes element-only syncs go through w.
func (s *Syncer) WithElementWriter(w ElementWriter) *Syncer {
	s.elems = w
	return s
}

// NewSyncer returns a syncer over nft (knftables.New for the kernel,
// knftables.NewFake in tests) that cleans stale UDP conntrack entries
// through ct (nil: no cleaning).
func NewSyncer(nft knftables.Interface, ct Conntrack) *Syncer {
	return &Syncer{nft: nft, ct: ct, slots: NewSlotAllocator(), ports: map[string]*ServicePort{}, programmed: map[string]*ServicePort{}}
}

// NewNFT returns the real nftables interface for the proxy's table.
func NewNFT() (knftables.Interface, error) {
	return knftables.New(knftables.InetFamily, Table)
}

// SyncResult says what a sync did.
type SyncResult struct {
	// Full is true when the whole table was rewritten, false when only the
	// difference to the previous sync was written.
	Full bool
	// Netlink is true when the changes went through the ElementWriter.
	Netlink    bool
	Operations int
	Duration   time.Duration
	// ConntrackDeleted counts stale UDP entries removed.
	ConntrackDeleted int
	// ServicePorts and Endpoints count what the table holds (the desired
	// Service ports and their endpoints).
	ServicePorts, Endpoints int
}

// Sync makes the table hold the desired state, sps being every Service
// port. It finds what changed by comparing sps with the previous call's by
// pointer (a Service port passed as the same pointer as last time is
// unchanged by contract) and does what Apply does; the comparison walks
// sps, so a caller that knows what changed calls Apply instead.
func (s *Syncer) Sync(ctx context.Context, cfg Config, sps []*ServicePort) (SyncResult, error) {
	seen := make(map[string]bool, len(sps))
	var changes []PortChange
	for _, sp := range sps {
		key := sp.Key()
		seen[key] = true
		if s.ports[key] != sp {
			changes = append(changes, PortChange{Key: key, Port: sp})
		}
	}
	for key := range s.ports {
		if !seen[key] {
			changes = append(changes, PortChange{Key: key})
		}
	}
	return s.apply(ctx, cfg, changes, sps)
}

// Apply makes the table hold the desired state after changes (on the first
// call, every Service port). After a start or a failed sync it rewrites
// the whole table in one transaction; otherwise it writes only what
// changed since the last successful sync (element updates, the chains of
// changed Services), and its work follows the changes, not the number of
// Services. On error nothing changed in the kernel and the next sync is a
// full one; the changes are kept.
func (s *Syncer) Apply(ctx context.Context, cfg Config, changes []PortChange) (SyncResult, error) {
	return s.apply(ctx, cfg, changes, nil)
}

// apply is Sync and Apply; order, when not nil, is every Service port in
// the order a full sync gives out endpoint slots (else the keys' order).
func (s *Syncer) apply(ctx context.Context, cfg Config, changes []PortChange, order []*ServicePort) (SyncResult, error) {
	start := time.Now()
	for _, c := range changes {
		s.record(c)
	}
	tx := s.nft.NewTransaction()
	full := s.written == nil
	var cur *State
	if full {
		if order == nil {
			order = make([]*ServicePort, 0, len(s.ports))
			for _, key := range sortedKeys(s.ports) {
				order = append(order, s.ports[key])
			}
		}
		s.slots = NewSlotAllocator() // a full sync starts from a clean slot map
		cur = build(cfg, order, s.slots)
		existing, err := s.nft.List(ctx, "chains")
		if err != nil && !knftables.IsNotFound(err) {
			return SyncResult{}, fmt.Errorf("list chains: %w", err)
		}
		existingSets, err := s.nft.List(ctx, "sets")
		if err != nil && !knftables.IsNotFound(err) {
			return SyncResult{}, fmt.Errorf("list sets: %w", err)
		}
		emitFull(tx, cur, existing, existingSets)
	} else {
		cur = s.written
		cur.update(cfg, changes, s.slots)
		d := diffStates(s.written, cur)
		if picks, ok := s.elementWriterTakes(d); ok {
			if err := s.elems.Write(ctx, d.removed, d.added, picks); err != nil {
				s.written = nil
				return SyncResult{}, fmt.Errorf("element update over netlink (%d changes): %w", len(d.removed)+len(d.added), err)
			}
			return s.finish(start, cur, SyncResult{Netlink: true, Operations: len(d.removed) + len(d.added) + len(picks)})
		}
		d.emit(tx)
	}
	if tx.NumOperations() > 0 {
		if err := s.nft.Run(ctx, tx); err != nil {
			s.written = nil
			return SyncResult{Full: full}, fmt.Errorf("nftables transaction (%d operations): %w", tx.NumOperations(), err)
		}
	}
	return s.finish(start, cur, SyncResult{Full: full, Operations: tx.NumOperations()})
}

// record applies one change to the desired Service ports.
func (s *Syncer) record(c PortChange) {
	old, had := s.ports[c.Key]
	if _, ok := s.programmed[c.Key]; !ok {
		s.programmed[c.Key] = old
	}
	if had {
		s.endpoints -= len(old.Endpoints)
	}
	if c.Port == nil {
		delete(s.ports, c.Key)
		return
	}
	s.ports[c.Key] = c.Port
	s.endpoints += len(c.Port.Endpoints)
}

// elementWriterTakes says whether d goes through the element writer, and
// with which slot picks.
func (s *Syncer) elementWriterTakes(d *diff) ([]SlotPick, bool) {
	if s.elems == nil {
		return nil, false
	}
	picks, ok := d.elementsOnly()
	if !ok || len(d.removed)+len(d.added)+len(picks) == 0 {
		return nil, false
	}
	for _, l := range [][]Element{d.removed, d.added} {
		for _, c := range l {
			if !s.elems.Supports(c) {
				return nil, false
			}
		}
	}
	return picks, true
}

// finish records a successful sync and cleans stale conntrack entries.
func (s *Syncer) finish(start time.Time, cur *State, res SyncResult) (SyncResult, error) {
	s.written = cur
	res.ServicePorts, res.Endpoints = len(s.ports), s.endpoints
	// Only after the new rules are in: an entry deleted earlier could be
	// recreated by a packet still matching the old rules.
	var dels []ConntrackDeletion
	for key, old := range s.programmed {
		dels = append(dels, staleUDPOf(old, s.ports[key], !s.synced)...)
	}
	// A new map, not clear: a map keeps the room of its largest size
	// (every Service after a full sync), and walking or clearing it costs
	// that room at every sync after.
	s.programmed = map[string]*ServicePort{}
	s.synced = true
	if s.ct != nil && len(dels) > 0 {
		n, err := s.ct.DeleteUDP(dels)
		res.ConntrackDeleted = n
		if err != nil {
			res.Duration = time.Since(start)
			return res, fmt.Errorf("delete stale UDP conntrack entries: %w", err)
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}
