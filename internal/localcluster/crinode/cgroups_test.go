package crinode

import (
	"slices"
	"testing"
)

// hybridMountinfo is /proc/self/mountinfo of this machine kind: cgroup v1
// hierarchies and the cgroup2 one ("unified") under /sys/fs/cgroup, and a
// v1 hierarchy mounted elsewhere.
const hybridMountinfo = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
49 27 0:40 / /var/lib/other/net_cls rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,net_cls
`

func TestHierarchiesOfAHybridMachine(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fstypes []string
		want    []string
	}{
		{"the node's processes join the v1 hierarchies", []string{"cgroup"}, []string{"cpu", "cpuset", "pids", "systemd"}},
		{"deletion also reaches cgroup2, where runc makes containers' cgroups", []string{"cgroup", "cgroup2"}, []string{"cpu", "cpuset", "pids", "systemd", "unified"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseHierarchies(hybridMountinfo, tc.fstypes...); !slices.Equal(got, tc.want) {
				t.Errorf("parseHierarchies(%v) = %v, want %v", tc.fstypes, got, tc.want)
			}
		})
	}
}
