package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/podnet/podnet/internal/atomicfile"
	"github.com/podnet/podnet/internal/controller"
	"github.com/podnet/podnet/internal/routing"
	"github.com/podnet/podnet/internal/wireguard"
)

// CNIConfFile is the conflist the agent writes into the runtime's CNI
// configuration directory.
const CNIConfFile = "10-podnet.conflist"

// CNIConf describes the node's pod network for podnet-cni.
type CNIConf struct {
	Network  string
	PodCIDRs []netip.Prefix
	DataDir  string
	MTU      int
}

// Render returns the conflist JSON.
func (c CNIConf) Render() ([]byte, error) {
	if len(c.PodCIDRs) == 0 {
		return nil, fmt.Errorf("no pod CIDR")
	}
	var ranges [][]map[string]string
	for _, p := range c.PodCIDRs {
		ranges = append(ranges, []map[string]string{{"subnet": p.Masked().String()}})
	}
	plugin := map[string]any{"type": "podnet-cni", "ranges": ranges}
	if c.DataDir != "" {
		plugin["dataDir"] = c.DataDir
	}
	if c.MTU > 0 {
		plugin["mtu"] = c.MTU
	}
	b, err := json.MarshalIndent(map[string]any{
		"cniVersion": "1.1.0",
		"name":       c.Network,
		"plugins":    []any{plugin},
	}, "", "  ")
	return append(b, '\n'), err
}

// WriteCNIConf writes the conflist into dir atomically (temporary file,
// fsync and rename), only when its content changes. It reports whether it
// wrote.
func WriteCNIConf(dir string, c CNIConf) (bool, error) {
	b, err := c.Render()
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	return atomicfile.WriteIfChanged(filepath.Join(dir, CNIConfFile), b, 0o644)
}

// newCNIConfController writes the conflist once this node has pod CIDRs,
// and again whenever they (or the file) change.
func newCNIConfController(d controller.Deps, cfg Config) (*controller.Controller, error) {
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = 1500
		switch {
		case cfg.Encryption != "":
			mtu -= wireguard.Overhead // every remote pod is reached through the tunnel
		case cfg.RoutingMode == routing.ModeVXLAN:
			mtu -= routing.VXLANOverhead
		}
	}
	nodes := d.Factory.Core().V1().Nodes()
	log := d.Logger("cni-config")
	return controller.New(d, controller.Spec{
		Name:        "cni-config",
		Sources:     []controller.Source{{Informer: nodes.Informer()}},
		MinInterval: 200 * time.Millisecond, MaxInterval: time.Minute,
		FailureEffect: "the previous conflist stays",
		Sync: func(context.Context) error {
			n, err := nodes.Lister().Get(cfg.NodeName)
			if apierrors.IsNotFound(err) {
				return nil // not registered yet: its add event pokes
			}
			if err != nil {
				return err
			}
			cidrs := routing.PodCIDRs(n)
			if len(cidrs) == 0 {
				return nil // no pod CIDR yet: the runtime reports the network not ready
			}
			wrote, err := WriteCNIConf(cfg.CNIConfDir, CNIConf{Network: cfg.CNINetwork, PodCIDRs: cidrs, DataDir: cfg.CNIDataDir, MTU: mtu})
			if err != nil {
				return fmt.Errorf("cni config: %w", err)
			}
			if wrote {
				log.Info("wrote CNI configuration", "dir", cfg.CNIConfDir, "podCIDRs", cidrs)
			}
			return nil
		},
	})
}
