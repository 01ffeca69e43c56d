package policy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"sigs.k8s.io/knftables"
)

// Syncer applies the desired set contents to the policy table. One runner
// calls Sync at a time.
type Syncer struct {
	// set at construction, read-only
	nft knftables.Interface

	// written is what the last successful sync left in the sets; nil
	// forces a full sync (after a start or a failure).
	written Desired
}

// NewSyncer returns a syncer over nft (NewNFT for the kernel,
// knftables.NewFake in tests).
func NewSyncer(nft knftables.Interface) *Syncer { return &Syncer{nft: nft} }

// NewNFT returns the real nftables interface for the policy table.
func NewNFT() (knftables.Interface, error) {
	return knftables.New(knftables.InetFamily, Table)
}

// SyncResult says what a sync did.
type SyncResult struct {
	Full       bool
	Operations int
	Duration   time.Duration
}

// Sync makes the table hold want. The first sync after a start or a failure
// rewrites the table (declarations, emptied sets, every element) in one
// transaction; later ones add and delete only the elements that changed.
// On error the kernel keeps what it had, and the next sync is a full one.
func (s *Syncer) Sync(ctx context.Context, want Desired) (SyncResult, error) {
	start := time.Now()
	tx := s.nft.NewTransaction()
	full := s.written == nil
	if full {
		declare(tx)
		for _, set := range setNames() {
			for _, k := range want[set] {
				tx.Add(element(set, k))
			}
		}
	} else {
		// Deletions first: an interval set refuses an element that
		// overlaps one still in it.
		for _, set := range setNames() {
			keep := toSet(want[set])
			for _, k := range s.written[set] {
				if !keep[k] {
					tx.Delete(element(set, k))
				}
			}
		}
		for _, set := range setNames() {
			old := toSet(s.written[set])
			for _, k := range want[set] {
				if !old[k] {
					tx.Add(element(set, k))
				}
			}
		}
	}
	res := SyncResult{Full: full, Operations: tx.NumOperations()}
	if tx.NumOperations() > 0 {
		if err := s.nft.Run(ctx, tx); err != nil {
			s.written = nil
			return res, fmt.Errorf("nftables transaction (%d operations): %w", tx.NumOperations(), err)
		}
	}
	s.written = want
	res.Duration = time.Since(start)
	return res, nil
}

func element(set, key string) *knftables.Element {
	return &knftables.Element{Set: set, Key: strings.Split(key, " . ")}
}

// setNames lists the table's sets in a fixed order.
func setNames() []string {
	var out []string
	for _, s := range allSets() {
		out = append(out, s.name)
	}
	return out
}

func toSet(keys []string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}
