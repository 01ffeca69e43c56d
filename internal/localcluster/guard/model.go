package guard

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/podnet/podnet/internal/localcluster/plan"
)

// Names of one cluster's guard, all derived from its Config (see
// DESIGN-NOTES.md, "Names"): Delete finds them again after a crash from the
// Config alone.

// TablePrefix begins the name of every guard table: podnet-guard-<id>.
const TablePrefix = "podnet-guard-"

// TableName is the cluster's table in the root namespace (family inet):
// podnet-guard-<id>, 19 bytes.
func TableName(cfg *plan.Config) string { return TablePrefix + cfg.ID() }

// GroupName is the cluster's net_cls group: podnet-<cluster name>.
func GroupName(cfg *plan.Config) string { return "podnet-" + cfg.Name }

// MountPoint is where Create mounts the net_cls hierarchy: <state>/net_cls.
func MountPoint(cfg *plan.Config) string { return filepath.Join(cfg.StateDir, "net_cls") }

// ClassIDBase is the high byte of every guard classid ('p'); the low 24
// bits are the cluster's ID, so two clusters never share a classid.
const ClassIDBase = 0x70 << 24

// ClassID is the cluster's net_cls classid: ClassIDBase | the ID read as a
// 24-bit number.
func ClassID(cfg *plan.Config) uint32 {
	b, err := hex.DecodeString(cfg.ID())
	if err != nil || len(b) != 3 {
		panic("guard: plan.Config.ID is not 6 hex digits: " + cfg.ID())
	}
	return ClassIDBase | uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
}

// Model is what the guard table holds: which packets are confined (those
// of sockets whose net_cls classid is ClassID) and where they may go.
type Model struct {
	// Table is the table's name (family inet).
	Table string
	// ClassID selects the confined packets: `meta cgroup ClassID`.
	ClassID uint32
	// Allowed are the destinations confined packets may reach. IPv4 and
	// IPv6 prefixes go to separate sets.
	Allowed []netip.Prefix
	// LogPrefix begins the kernel log line of a dropped packet.
	LogPrefix string
}

// Loopback are the loopback ranges every Model allows (except DNS: see
// the README).
var Loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// ForCluster is the cluster's Model: confined packets may reach loopback,
// the node network, the pod CIDR, the service CIDR and the world network.
func ForCluster(cfg *plan.Config) Model {
	allowed := append([]netip.Prefix{}, Loopback...)
	allowed = append(allowed, cfg.NodeNetwork, cfg.PodCIDR, cfg.ServiceCIDR, cfg.WorldNetwork)
	return Model{
		Table:     TableName(cfg),
		ClassID:   ClassID(cfg),
		Allowed:   allowed,
		LogPrefix: TableName(cfg) + " drop: ",
	}
}

// Validate reports every problem of the model, joined, or nil.
func (m Model) Validate() error {
	var errs []error
	if m.Table == "" || len(m.Table) > 64 {
		errs = append(errs, fmt.Errorf("table name %q: want 1 to 64 bytes", m.Table))
	}
	if m.ClassID == 0 {
		errs = append(errs, fmt.Errorf("classid 0 is every process's: want another"))
	}
	for _, p := range m.Allowed {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("allowed prefix %v: invalid", p))
		}
	}
	if len(m.LogPrefix) > 127 {
		errs = append(errs, fmt.Errorf("log prefix %q: longer than 127 bytes", m.LogPrefix))
	}
	return errors.Join(errs...)
}
