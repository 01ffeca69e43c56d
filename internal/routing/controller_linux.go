package routing

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/podnet/podnet/internal/controller"
)

// ControllerConfig configures the routing controller of one node.
type ControllerConfig struct {
	NodeName string
	Mode     string // ModeDirect or ModeVXLAN
	Masq     MasqConfig
}

// NewController returns the routing controller: it reads the Nodes and
// keeps this node's masquerade table, VXLAN device (vxlan mode) and routes
// to the other nodes' pod CIDRs in line with them.
func NewController(d controller.Deps, cfg ControllerConfig) (*controller.Controller, error) {
	nft, err := NewNFT()
	if err != nil {
		return nil, fmt.Errorf("routing: nftables: %w", err)
	}
	syncer, err := NewSyncer(cfg.Mode, cfg.Masq, nft)
	if err != nil {
		return nil, err
	}
	nodes := d.Factory.Core().V1().Nodes()
	log := d.Logger("routing")
	return controller.New(d, controller.Spec{
		Name:        "routing",
		Sources:     []controller.Source{{Informer: nodes.Informer()}},
		MinInterval: 200 * time.Millisecond, MaxInterval: time.Minute,
		FailureEffect: "what is in the kernel stays",
		Sync: func(ctx context.Context) error {
			all, err := nodes.Lister().List(labels.Everything())
			if err != nil {
				return err
			}
			me, peers := Peers(cfg.NodeName, all)
			if err := syncer.Sync(ctx, me, peers); err != nil {
				return fmt.Errorf("routing: %w", err)
			}
			log.Debug("synced", "peers", len(peers))
			return nil
		},
	})
}
