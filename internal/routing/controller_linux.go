package routing

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/podnet/podnet/internal/controller"
)

// ControllerConfig configures the routing controller of one node.
type ControllerConfig struct {
	NodeName string
	Mode     string // ModeDirect or ModeVXLAN
	Masq     MasqConfig
	// Tunnel, when set, encrypts: it is synced first and the pod CIDRs of
	// the nodes it reaches are routed into it (package wireguard).
	Tunnel Tunnel
}

// Tunnel is the encryption between nodes, as routing uses it.
type Tunnel interface {
	// Sync configures the tunnel from the Nodes and returns what to route
	// into it. On error, what it returns is still used (it may reach some
	// nodes).
	Sync(ctx context.Context, nodes []*v1.Node) (TunnelRoutes, error)
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
			var tun TunnelRoutes
			var tunErr error
			if cfg.Tunnel != nil {
				if tun, tunErr = cfg.Tunnel.Sync(ctx, all); tunErr != nil {
					tunErr = fmt.Errorf("encryption: %w", tunErr)
				}
			}
			me, peers := Peers(cfg.NodeName, all)
			if err := errors.Join(tunErr, syncer.Sync(ctx, me, peers, tun)); err != nil {
				return fmt.Errorf("routing: %w", err)
			}
			log.Debug("synced", "peers", len(peers))
			return nil
		},
	})
}
