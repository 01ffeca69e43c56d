package ipam

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	lockFile       = "lock"
	lastPrefix     = "last_reserved."
	tempPrefix     = ".tmp-"
	defaultDirMode = 0o755
)

// DiskStore is a Store in one directory per network:
//
//	<dir>/lock                 flock(2) target; excludes other processes
//	<dir>/10.244.1.7 -> eth0/<containerID>   one symlink per reserved address
//	<dir>/last_reserved.0 -> 10.244.1.7      round-robin position of set 0
//
// A symlink is created in one exclusive, atomic system call, so a crash never
// leaves a half-written reservation.
type DiskStore struct {
	// set at construction, read-only
	dir string

	// lockFD is the open lock file while the lock is held, else -1.
	lockFD int
}

var _ Store = (*DiskStore)(nil)

// NewDiskStore opens (creating if needed) the store directory dataDir/network.
func NewDiskStore(dataDir, network string) (*DiskStore, error) {
	if network == "" || strings.ContainsAny(network, "/\x00") || network == "." || network == ".." {
		return nil, fmt.Errorf("ipam: invalid network name %q", network)
	}
	dir := filepath.Join(dataDir, network)
	if err := os.MkdirAll(dir, defaultDirMode); err != nil {
		return nil, fmt.Errorf("ipam: create store directory: %w", err)
	}
	return &DiskStore{dir: dir, lockFD: -1}, nil
}

// Dir returns the store's directory.
func (d *DiskStore) Dir() string { return d.dir }

func (d *DiskStore) Lock() error {
	if d.lockFD >= 0 {
		return errors.New("store already locked by this process")
	}
	fd, err := unix.Open(filepath.Join(d.dir, lockFile), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("open lock file: %w", err)
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("flock: %w", err)
	}
	d.lockFD = fd
	return nil
}

func (d *DiskStore) Unlock() error {
	if d.lockFD < 0 {
		return errors.New("store not locked")
	}
	fd := d.lockFD
	d.lockFD = -1
	// Closing the descriptor releases the flock.
	return unix.Close(fd)
}

func (d *DiskStore) Close() error {
	if d.lockFD >= 0 {
		return d.Unlock()
	}
	return nil
}

func ownerTarget(o Owner) string { return o.IfName + "/" + o.ContainerID }

func parseTarget(t string) (Owner, bool) {
	ifname, id, ok := strings.Cut(t, "/")
	if !ok || ifname == "" || id == "" {
		return Owner{}, false
	}
	return Owner{ContainerID: id, IfName: ifname}, true
}

func (d *DiskStore) Reserve(ip netip.Addr, owner Owner) (bool, error) {
	err := os.Symlink(ownerTarget(owner), filepath.Join(d.dir, ip.String()))
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

func (d *DiskStore) Release(ip netip.Addr) error {
	err := os.Remove(filepath.Join(d.dir, ip.String()))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// List reads every reservation. It also removes temporary files that a
// process killed in SetLastReserved left behind (the caller holds the lock,
// so no one else is writing them).
func (d *DiskStore) List() ([]Reservation, error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, err
	}
	out := make([]Reservation, 0, len(entries))
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, tempPrefix) {
			_ = os.Remove(filepath.Join(d.dir, name))
			continue
		}
		ip, err := netip.ParseAddr(name)
		if err != nil {
			continue
		}
		if e.Type()&fs.ModeSymlink == 0 {
			// Something else named like an address: keep the address
			// out of use, and let GC remove it.
			out = append(out, Reservation{IP: ip, Owner: Owner{ContainerID: "(not a reservation: " + e.Type().String() + ")"}})
			continue
		}
		target, err := os.Readlink(filepath.Join(d.dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		owner, ok := parseTarget(target)
		if !ok {
			// Unknown content: keep the address reserved (never hand
			// out an address whose owner is unclear); GC frees it.
			owner = Owner{ContainerID: target}
		}
		out = append(out, Reservation{IP: ip, Owner: owner})
	}
	return out, nil
}

func (d *DiskStore) lastPath(set int) string {
	return filepath.Join(d.dir, lastPrefix+strconv.Itoa(set))
}

func (d *DiskStore) LastReserved(set int) (netip.Addr, error) {
	t, err := os.Readlink(d.lastPath(set))
	if err != nil {
		// Missing, or damaged (say, a regular file): the position only
		// says where the search starts, so start from the beginning.
		return netip.Addr{}, nil
	}
	ip, err := netip.ParseAddr(t)
	if err != nil {
		// A damaged position only changes where the search starts.
		return netip.Addr{}, nil
	}
	return ip, nil
}

func (d *DiskStore) SetLastReserved(set int, ip netip.Addr) error {
	tmp := filepath.Join(d.dir, tempPrefix+lastPrefix+strconv.Itoa(set))
	_ = os.Remove(tmp)
	if err := os.Symlink(ip.String(), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, d.lastPath(set)); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}
