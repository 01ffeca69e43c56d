package proxy

import (
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/knftables"
)

// Syncer applies rendered tables to one nftables interface. One runner
// calls Sync at a time.
type Syncer struct {
	// set at construction, read-only
	nft knftables.Interface
	ct  Conntrack

	// last is what the previous successful sync programmed; nil after a
	// start, so a restart deletes no conntrack entry.
	last []*ServicePort
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
	return &Syncer{nft: nft, ct: ct, slots: NewSlotAllocator()}
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
}

// Sync makes the table hold the desired state. After a start or a failed
// sync it rewrites the whole table in one transaction; otherwise it writes
// only what changed since the last successful sync (element updates, the
// chains of changed Services). On error nothing changed in the kernel and
// the next sync is a full one.
func (s *Syncer) Sync(ctx context.Context, cfg Config, sps []*ServicePort) (SyncResult, error) {
	start := time.Now()
	if s.written == nil {
		s.slots = NewSlotAllocator() // a full sync starts from a clean slot map
	}
	cur := BuildWith(cfg, sps, s.slots, s.written)
	tx := s.nft.NewTransaction()
	full := s.written == nil
	if full {
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
		d := diffStates(s.written, cur)
		if picks, ok := s.elementWriterTakes(d); ok {
			if err := s.elems.Write(ctx, d.removed, d.added, picks); err != nil {
				s.written = nil
				return SyncResult{}, fmt.Errorf("element update over netlink (%d changes): %w", len(d.removed)+len(d.added), err)
			}
			return s.finish(start, cur, sps, SyncResult{Netlink: true, Operations: len(d.removed) + len(d.added) + len(picks)})
		}
		d.emit(tx)
	}
	if tx.NumOperations() > 0 {
		if err := s.nft.Run(ctx, tx); err != nil {
			s.written = nil
			return SyncResult{Full: full}, fmt.Errorf("nftables transaction (%d operations): %w", tx.NumOperations(), err)
		}
	}
	return s.finish(start, cur, sps, SyncResult{Full: full, Operations: tx.NumOperations()})
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
func (s *Syncer) finish(start time.Time, cur *State, sps []*ServicePort, res SyncResult) (SyncResult, error) {
	s.written = cur
	// Only after the new rules are in: an entry deleted earlier could be
	// recreated by a packet still matching the old rules.
	dels := StaleUDP(s.last, sps)
	s.last = sps
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
