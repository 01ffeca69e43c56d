package proxy

import (
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/knftables"
)

// Syncer applies rendered tables to one nftables interface.
type Syncer struct {
	// set at construction, read-only
	nft knftables.Interface
}

// NewSyncer returns a syncer over nft (knftables.New for the kernel,
// knftables.NewFake in tests).
func NewSyncer(nft knftables.Interface) *Syncer { return &Syncer{nft: nft} }

// NewNFT returns the real nftables interface for the proxy's table.
func NewNFT() (knftables.Interface, error) {
	return knftables.New(knftables.InetFamily, Table)
}

// SyncResult says what a sync did.
type SyncResult struct {
	Operations int
	Duration   time.Duration
}

// Sync replaces the table's content with the desired state in one
// transaction. On error nothing changed in the kernel.
func (s *Syncer) Sync(ctx context.Context, cfg Config, sps []*ServicePort) (SyncResult, error) {
	start := time.Now()
	existing, err := s.nft.List(ctx, "chains")
	if err != nil && !knftables.IsNotFound(err) {
		return SyncResult{}, fmt.Errorf("list chains: %w", err)
	}
	tx := s.nft.NewTransaction()
	Render(tx, cfg, sps, existing)
	if err := s.nft.Run(ctx, tx); err != nil {
		return SyncResult{}, fmt.Errorf("nftables transaction (%d operations): %w", tx.NumOperations(), err)
	}
	return SyncResult{Operations: tx.NumOperations(), Duration: time.Since(start)}, nil
}
