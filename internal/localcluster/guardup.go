package localcluster

import (
	"context"
	"strings"

	"github.com/podnet/podnet/internal/localcluster/controlplane"
	"github.com/podnet/podnet/internal/localcluster/guard"
)

// The guard is what confines the control plane.
var _ controlplane.Confiner = (*guard.Guard)(nil)

// createGuard installs the cluster's guard (package guard) before any
// root-namespace process starts: the table that drops what they send
// outside the cluster's ranges, and the net_cls group they start in.
func createGuard(ctx context.Context, cfg *Config, o UpOptions) (*guard.Guard, error) {
	g, err := guard.Create(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var allowed []string
	for _, p := range g.Model.Allowed {
		allowed = append(allowed, p.String())
	}
	o.say("confining the root-namespace processes: net_cls group %s (classid %#x); table inet %s drops what they send outside %s",
		g.Group.Dir(), g.Model.ClassID, g.Model.Table, strings.Join(allowed, ", "))
	return g, nil
}
