package guard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/podnet/podnet/internal/localcluster/plan"
)

// Guard is a cluster's installed guard: its table and its group.
type Guard struct {
	Model Model
	Group *Group
}

// Do runs fn with the processes it starts confined (Group.Do).
func (g *Guard) Do(fn func() error) error { return g.Group.Do(fn) }

// Holds returns an error unless pid is confined (Group.Holds).
func (g *Guard) Holds(pid int) error { return g.Group.Holds(pid) }

// Create installs the cluster's table in the calling thread's network
// namespace (the root one, for podnet up), then mounts the net_cls
// hierarchy at MountPoint and makes the cluster's group with its classid.
// Nothing is in the group yet: processes enter it through Do. On failure,
// the caller removes what was made with Delete.
func Create(ctx context.Context, cfg *plan.Config) (*Guard, error) {
	m := ForCluster(cfg)
	nft, err := NewNFT(m.Table)
	if err != nil {
		return nil, err
	}
	if err := Install(ctx, nft, m); err != nil {
		return nil, err
	}
	g, err := CreateGroup(MountPoint(cfg), GroupName(cfg), m.ClassID)
	if err != nil {
		return nil, err
	}
	return &Guard{Model: m, Group: g}, nil
}

// groupExitWait bounds how long Delete waits for the processes of a
// stopped cluster to leave the group.
const groupExitWait = 5 * time.Second

// Delete removes the cluster's guard, found by its exact names from cfg
// alone, so that it works after a crash: the table podnet-guard-<id>, the
// group podnet-<cluster> and the mount at MountPoint. It is idempotent; it
// keeps going after an error and returns them all, joined. Stop the
// cluster's processes first: a group with live processes cannot be removed.
func Delete(cfg *plan.Config) error {
	if err := plan.ValidateName(cfg.Name); err != nil {
		return fmt.Errorf("delete guard: %w", err)
	}
	var errs []error
	nft, err := NewNFT(TableName(cfg))
	if err == nil {
		err = Remove(context.Background(), nft)
	}
	if err != nil {
		errs = append(errs, err)
	}
	if err := deleteGroup(MountPoint(cfg), GroupName(cfg)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete guard of cluster %q: %w", cfg.Name, err)
	}
	return nil
}

// deleteGroup removes the group name and unmounts mount. When nothing is
// mounted there (a crash after the unmount, or a state directory removed
// by hand) but the net_cls hierarchy exists, it mounts the hierarchy at a
// temporary directory to remove the group.
func deleteGroup(mount, name string) error {
	if isCgroupMount(mount) {
		return errors.Join(rmdirWait(filepath.Join(mount, name), groupExitWait), unmountAll(mount))
	}
	if _, err := os.Stat(mount); err == nil {
		if err := unmountAll(mount); err != nil {
			return err
		}
	}
	if mounted, err := netClsHierarchy(); err != nil || !mounted {
		return err // no hierarchy: no group
	}
	tmp, err := os.MkdirTemp("", "podnet-guard-")
	if err != nil {
		return fmt.Errorf("guard: %w", err)
	}
	if err := mountNetCls(tmp); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return errors.Join(rmdirWait(filepath.Join(tmp, name), groupExitWait), unmountAll(tmp))
}

// netClsHierarchy reports whether the kernel has a net_cls hierarchy (one
// that is or was mounted), from /proc/cgroups.
func netClsHierarchy() (bool, error) {
	hierarchy, _, err := netClsLine()
	return hierarchy != "0" && hierarchy != "", err
}

// netClsLine reads the net_cls line of /proc/cgroups (parseNetCls).
func netClsLine() (hierarchy string, enabled bool, err error) {
	f, err := os.Open("/proc/cgroups")
	if err != nil {
		return "", false, fmt.Errorf("guard: %w", err)
	}
	defer f.Close()
	return parseNetCls(f)
}

// parseNetCls finds the net_cls line of a /proc/cgroups text: its
// hierarchy ID ("0": not mounted since boot) and whether it is enabled. A
// kernel without the controller has no line: "", false.
func parseNetCls(r io.Reader) (hierarchy string, enabled bool, err error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// subsys_name hierarchy num_cgroups enabled
		fields := strings.Fields(sc.Text())
		if len(fields) == 4 && fields[0] == "net_cls" {
			return fields[1], fields[3] == "1", nil
		}
	}
	return "", false, sc.Err()
}

// ErrUnsupported is returned (wrapped) by Supported when the kernel cannot
// confine processes with a net_cls group.
var ErrUnsupported = errors.New("the kernel cannot confine processes by net_cls group")

// Supported checks that the kernel can mount a cgroup v1 net_cls hierarchy
// (CONFIG_CGROUP_NET_CLASSID, not disabled with cgroup_no_v1=) by mounting
// it at a temporary directory and unmounting it again.
func Supported() error {
	_, enabled, err := netClsLine()
	if err != nil {
		return err
	}
	if !enabled {
		return fmt.Errorf("%w: no enabled net_cls controller in /proc/cgroups (kernel option CONFIG_CGROUP_NET_CLASSID)", ErrUnsupported)
	}
	tmp, err := os.MkdirTemp("", "podnet-guard-check-")
	if err != nil {
		return fmt.Errorf("guard: %w", err)
	}
	if err := mountNetCls(tmp); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	return unmountAll(tmp)
}

// Stats is what `podnet status` shows of the guard.
type Stats struct {
	// Table is the table in the root namespace: "inet podnet-guard-<id>".
	Table string `json:"table"`
	// Installed is whether the table exists.
	Installed bool `json:"installed"`
	// Group is the net_cls group's directory, ClassID its classid.
	Group   string `json:"group"`
	ClassID string `json:"classID"`
	// Processes is how many processes are in the group (0 when it is not
	// mounted).
	Processes int `json:"processes"`
	// DroppedPackets and DroppedBytes are the table's counter: what the
	// confined processes tried to send outside the cluster.
	DroppedPackets uint64 `json:"droppedPackets"`
	DroppedBytes   uint64 `json:"droppedBytes"`
	// Error says why the rest could not be read, if it could not.
	Error string `json:"error,omitempty"`
}

// Read reads the guard of cfg from the calling thread's network namespace
// (the root one, for podnet status): ReadWith on the real nftables.
func Read(ctx context.Context, cfg *plan.Config) Stats {
	nft, err := NewNFT(TableName(cfg))
	if err != nil {
		s := stats(cfg)
		s.Error = err.Error()
		return s
	}
	return ReadWith(ctx, nft, cfg)
}

// ReadWith reads the guard of cfg: the counter through nft (for
// TableName(cfg)) and the group's processes from its mount.
func ReadWith(ctx context.Context, nft knftables.Interface, cfg *plan.Config) Stats {
	s := stats(cfg)
	var err error
	s.DroppedPackets, s.DroppedBytes, s.Installed, err = Dropped(ctx, nft)
	errs := []error{err}
	if g := (Group{Mount: MountPoint(cfg), Name: GroupName(cfg)}); isCgroupMount(g.Mount) {
		pids, err := g.Procs()
		s.Processes = len(pids)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		s.Error = err.Error()
	}
	return s
}

// stats are the names of cfg's guard, with nothing read yet.
func stats(cfg *plan.Config) Stats {
	g := Group{Mount: MountPoint(cfg), Name: GroupName(cfg)}
	return Stats{Table: "inet " + TableName(cfg), Group: g.Dir(), ClassID: fmt.Sprintf("%#x", ClassID(cfg))}
}
