package ipam

// Fixture conventions: every test keeps its store under its own t.TempDir()
// with the network name "podnet", so the store directory is
// <tempdir>/podnet. Subnets are those listed at the top of range_test.go.
// Stores are opened through NewDiskStore only; tests write into the store
// directory by hand only to play a foreign writer or a crashed process.

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const testNetwork = "podnet"

// openDiskStore opens the store of network "podnet" under dataDir and
// closes it when the test ends.
func openDiskStore(t *testing.T, dataDir string) *DiskStore {
	t.Helper()
	s, err := NewDiskStore(dataDir, testNetwork)
	if err != nil {
		t.Fatalf("NewDiskStore(%q, %q): %v", dataDir, testNetwork, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// lockStore locks s and fails the test on error.
func lockStore(t *testing.T, s *DiskStore) {
	t.Helper()
	if err := s.Lock(); err != nil {
		t.Fatalf("Lock: %v", err)
	}
}

func unlockStore(t *testing.T, s *DiskStore) {
	t.Helper()
	if err := s.Unlock(); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
}

func TestNewDiskStore(t *testing.T) {
	tests := []struct {
		name    string
		network string
		wantErr bool
	}{
		{"a plain name is accepted", "podnet", false},
		{"a name with dots, dashes and underscores is accepted", "pod-net_v1.2", false},
		{"a name starting with a dot is accepted", ".podnet", false},
		{"an empty name is rejected", "", true},
		{"a name with a slash is rejected", "pod/net", true},
		{"a name that is only a slash is rejected", "/", true},
		{"a name escaping the data directory is rejected", "../podnet", true},
		{"the parent directory is rejected", "..", true},
		{"the data directory itself is rejected", ".", true},
		{"a name with a NUL byte is rejected", "pod\x00net", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := t.TempDir()
			s, err := NewDiskStore(dataDir, tt.network)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NewDiskStore(%q) = %s, want an error", tt.network, s.Dir())
				}
				if !strings.Contains(err.Error(), "invalid network name") {
					t.Errorf("NewDiskStore(%q) = %q, want it to say the network name is invalid", tt.network, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewDiskStore(%q): %v", tt.network, err)
			}
			if want := filepath.Join(dataDir, tt.network); s.Dir() != want {
				t.Errorf("Dir() = %q, want %q", s.Dir(), want)
			}
			if fi, err := os.Stat(s.Dir()); err != nil || !fi.IsDir() {
				t.Errorf("store directory %q was not created: %v", s.Dir(), err)
			}
		})
	}

	t.Run("missing parents of the data directory are created", func(t *testing.T) {
		dataDir := filepath.Join(t.TempDir(), "var", "lib", "cni")
		s := openDiskStore(t, dataDir)
		if _, err := os.Stat(s.Dir()); err != nil {
			t.Errorf("store directory was not created: %v", err)
		}
	})
}

func TestDiskStoreReserve(t *testing.T) {
	s := openDiskStore(t, t.TempDir())
	lockStore(t, s)
	defer unlockStore(t, s)

	owners := map[netip.Addr]Owner{
		netip.MustParseAddr("10.244.1.2"):       ownerOf("a"),
		netip.MustParseAddr("10.244.1.3"):       {ContainerID: "k8s_pod-1.default.uid-42_0", IfName: "eth0"},
		netip.MustParseAddr("fd00:10:244:1::2"): {ContainerID: "a", IfName: "net1"},
		// A container ID with a slash is kept whole: only the first
		// slash separates the interface name.
		netip.MustParseAddr("10.244.1.4"): {ContainerID: "ns/pod", IfName: "eth0"},
	}
	for _, ip := range slices.SortedFunc(maps.Keys(owners), netip.Addr.Compare) {
		ok, err := s.Reserve(ip, owners[ip])
		if err != nil || !ok {
			t.Fatalf("Reserve(%s, %s) = %v, %v; want true, nil", ip, owners[ip], ok, err)
		}
	}
	checkReservations(t, s, owners)

	t.Run("a second Reserve of the same address returns false and keeps the first owner", func(t *testing.T) {
		ip := netip.MustParseAddr("10.244.1.2")
		ok, err := s.Reserve(ip, ownerOf("b"))
		if err != nil || ok {
			t.Fatalf("Reserve(%s, b) = %v, %v; want false, nil", ip, ok, err)
		}
		checkReservations(t, s, owners)
	})

	t.Run("Release removes exactly one reservation", func(t *testing.T) {
		ip := netip.MustParseAddr("10.244.1.3")
		if err := s.Release(ip); err != nil {
			t.Fatalf("Release(%s): %v", ip, err)
		}
		delete(owners, ip)
		checkReservations(t, s, owners)
		if ok, err := s.Reserve(ip, ownerOf("b")); err != nil || !ok {
			t.Errorf("Reserve(%s) after Release = %v, %v; want true, nil", ip, ok, err)
		}
		owners[ip] = ownerOf("b")
		checkReservations(t, s, owners)
	})

	t.Run("Release of an absent reservation is not an error", func(t *testing.T) {
		if err := s.Release(netip.MustParseAddr("192.0.2.1")); err != nil {
			t.Errorf("Release(192.0.2.1) = %v, want nil", err)
		}
		checkReservations(t, s, owners)
	})
}

func TestDiskStoreLastReserved(t *testing.T) {
	dataDir := t.TempDir()
	s := openDiskStore(t, dataDir)
	lockStore(t, s)

	for set := range 2 {
		got, err := s.LastReserved(set)
		if err != nil || got.IsValid() {
			t.Errorf("LastReserved(%d) of a new store = %v, %v; want the zero Addr", set, got, err)
		}
	}
	want := map[int]netip.Addr{
		0: netip.MustParseAddr("10.244.1.7"),
		1: netip.MustParseAddr("fd00:10:244:1::7"),
	}
	for set, ip := range want {
		// Write twice: the second write replaces the first.
		if err := s.SetLastReserved(set, ip.Prev()); err != nil {
			t.Fatalf("SetLastReserved(%d, %s): %v", set, ip.Prev(), err)
		}
		if err := s.SetLastReserved(set, ip); err != nil {
			t.Fatalf("SetLastReserved(%d, %s): %v", set, ip, err)
		}
	}
	checkLast := func(t *testing.T, s *DiskStore) {
		t.Helper()
		for set, ip := range want {
			got, err := s.LastReserved(set)
			if err != nil || got != ip {
				t.Errorf("LastReserved(%d) = %v, %v; want %s", set, got, err, ip)
			}
		}
	}
	checkLast(t, s)
	unlockStore(t, s)

	t.Run("the position survives reopening the store", func(t *testing.T) {
		s2 := openDiskStore(t, dataDir)
		lockStore(t, s2)
		defer unlockStore(t, s2)
		checkLast(t, s2)
	})

	t.Run("a position that is not an address only restarts the search", func(t *testing.T) {
		path := filepath.Join(s.Dir(), "last_reserved.0")
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("not-an-address", path); err != nil {
			t.Fatal(err)
		}
		lockStore(t, s)
		defer unlockStore(t, s)
		got, err := s.LastReserved(0)
		if err != nil || got.IsValid() {
			t.Errorf("LastReserved(0) of a damaged position = %v, %v; want the zero Addr", got, err)
		}
	})

	t.Run("the position files are not listed as reservations", func(t *testing.T) {
		lockStore(t, s)
		defer unlockStore(t, s)
		checkReservations(t, s, map[netip.Addr]Owner{})
	})
}

func TestDiskStoreListRemovesLeftoverTempFiles(t *testing.T) {
	s := openDiskStore(t, t.TempDir())
	lockStore(t, s)
	defer unlockStore(t, s)

	// A process killed inside SetLastReserved leaves its temporary link;
	// anything else starting with the prefix is ours too.
	leftovers := []string{".tmp-last_reserved.0", ".tmp-last_reserved.1"}
	if err := os.Symlink("10.244.1.9", filepath.Join(s.Dir(), leftovers[0])); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir(), leftovers[1]), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Reserve(netip.MustParseAddr("10.244.1.2"), ownerOf("a")); !ok || err != nil {
		t.Fatalf("Reserve = %v, %v", ok, err)
	}

	checkReservations(t, s, map[netip.Addr]Owner{netip.MustParseAddr("10.244.1.2"): ownerOf("a")})
	for _, name := range leftovers {
		if _, err := os.Lstat(filepath.Join(s.Dir(), name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("leftover %s still exists after List (Lstat: %v)", name, err)
		}
	}
	// The store's own files stay.
	if _, err := os.Lstat(filepath.Join(s.Dir(), "lock")); err != nil {
		t.Errorf("lock file is gone after List: %v", err)
	}
}

func TestDiskStoreForeignEntries(t *testing.T) {
	tests := []struct {
		name      string
		target    string // symlink content written by a foreign process
		wantOwner Owner
	}{
		{"a link without a slash is reserved for an unknown owner", "garbage", Owner{ContainerID: "garbage"}},
		{"a link without an interface name is reserved for an unknown owner", "/abc", Owner{ContainerID: "/abc"}},
		{"a link without a container ID is reserved for an unknown owner", "eth0/", Owner{ContainerID: "eth0/"}},
		{"a well-formed link names its owner", "eth0/abc", ownerOf("abc")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openDiskStore(t, t.TempDir())
			ip := netip.MustParseAddr("10.244.1.2")
			if err := os.Symlink(tt.target, filepath.Join(s.Dir(), ip.String())); err != nil {
				t.Fatal(err)
			}
			lockStore(t, s)
			checkReservations(t, s, map[netip.Addr]Owner{ip: tt.wantOwner})
			unlockStore(t, s)

			// The allocator never hands the address out.
			a := NewAllocator(s, []RangeSet{mustSet(t, "10.244.1.0/24")}, nil)
			if got := allocate(t, a, ownerOf("new")); got != "10.244.1.3" {
				t.Errorf("Allocate = %q, want 10.244.1.3 (10.244.1.2 is taken)", got)
			}
			// GC with no valid owner frees it.
			freed, err := a.GC(nil)
			if err != nil {
				t.Fatalf("GC: %v", err)
			}
			if len(freed) != 2 || freed[0].IP != ip || freed[0].Owner != tt.wantOwner {
				t.Errorf("GC freed %v, want %s=%s first", freed, ip, tt.wantOwner)
			}
		})
	}

	t.Run("entries that are not links named by an address are ignored", func(t *testing.T) {
		s := openDiskStore(t, t.TempDir())
		for _, name := range []string{"README", "10.244.1.x"} {
			if err := os.Symlink("eth0/abc", filepath.Join(s.Dir(), name)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Mkdir(filepath.Join(s.Dir(), "subdir"), 0o755); err != nil {
			t.Fatal(err)
		}
		lockStore(t, s)
		defer unlockStore(t, s)
		checkReservations(t, s, map[netip.Addr]Owner{})
	})
}

func TestDiskStoreLock(t *testing.T) {
	t.Run("locking twice from the same store is an error", func(t *testing.T) {
		s := openDiskStore(t, t.TempDir())
		lockStore(t, s)
		// Without the check, a second flock on a new descriptor would
		// wait for the first forever: bound the wait.
		select {
		case err := <-waitLock(t, s):
			if err == nil {
				t.Fatal("second Lock() = nil, want an error")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("second Lock() from the same store blocked instead of failing")
		}
		// The first lock is still held and can be released.
		unlockStore(t, s)
	})

	t.Run("unlocking without the lock is an error", func(t *testing.T) {
		s := openDiskStore(t, t.TempDir())
		if err := s.Unlock(); err == nil {
			t.Fatal("Unlock() without Lock = nil, want an error")
		}
		lockStore(t, s)
		unlockStore(t, s)
		if err := s.Unlock(); err == nil {
			t.Fatal("second Unlock() = nil, want an error")
		}
	})

	t.Run("Close without the lock is not an error", func(t *testing.T) {
		s, err := NewDiskStore(t.TempDir(), testNetwork)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v, want nil", err)
		}
	})

	t.Run("a second store's Lock blocks until the first unlocks", func(t *testing.T) {
		dataDir := t.TempDir()
		first, second := openDiskStore(t, dataDir), openDiskStore(t, dataDir)
		lockStore(t, first)
		acquired := waitLock(t, second)
		assertNotAcquired(t, acquired)
		unlockStore(t, first)
		assertAcquired(t, acquired)
		unlockStore(t, second)
	})

	t.Run("Close releases the lock for another store", func(t *testing.T) {
		dataDir := t.TempDir()
		first, second := openDiskStore(t, dataDir), openDiskStore(t, dataDir)
		lockStore(t, first)
		acquired := waitLock(t, second)
		assertNotAcquired(t, acquired)
		if err := first.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		assertAcquired(t, acquired)
		unlockStore(t, second)
	})

	t.Run("stores of different networks do not exclude each other", func(t *testing.T) {
		dataDir := t.TempDir()
		first := openDiskStore(t, dataDir)
		other, err := NewDiskStore(dataDir, "other")
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		lockStore(t, first)
		defer unlockStore(t, first)
		assertAcquired(t, waitLock(t, other))
		unlockStore(t, other)
	})
}

// waitLock locks s on a new goroutine; the channel receives Lock's result.
func waitLock(t *testing.T, s *DiskStore) <-chan error {
	t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- s.Lock() }()
	return ch
}

// assertNotAcquired checks, for a short while, that a lock was not taken.
// It can only catch a lock that excludes nothing, which shows at once.
func assertNotAcquired(t *testing.T, acquired <-chan error) {
	t.Helper()
	select {
	case err := <-acquired:
		t.Fatalf("second store acquired the lock while the first held it (Lock = %v)", err)
	case <-time.After(100 * time.Millisecond):
	}
}

func assertAcquired(t *testing.T, acquired <-chan error) {
	t.Helper()
	select {
	case err := <-acquired:
		if err != nil {
			t.Fatalf("Lock = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Lock still blocked 10s after the lock was released")
	}
}

func TestDiskStoreAllocatorIsExclusiveAcrossStores(t *testing.T) {
	// Each goroutine plays one CNI process: its own DiskStore (and so its
	// own lock file descriptor) on the shared directory.
	const n = 50
	dataDir := t.TempDir()
	sets := []RangeSet{mustSet(t, "10.244.1.0/24"), mustSet(t, "fd00:10:244:1::/64")}

	var wg sync.WaitGroup
	results := make([][]Allocation, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s, err := NewDiskStore(dataDir, testNetwork)
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			results[i], errs[i] = NewAllocator(s, sets, nil).Allocate(ownerOf(fmt.Sprintf("ctr%d", i)))
		})
	}
	wg.Wait()

	holder := map[netip.Addr]int{}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("goroutine %d: Allocate: %v", i, errs[i])
			continue
		}
		if len(results[i]) != len(sets) {
			t.Errorf("goroutine %d got %d addresses, want %d", i, len(results[i]), len(sets))
		}
		for _, al := range results[i] {
			if j, dup := holder[al.IP]; dup {
				t.Errorf("%s was handed out to goroutines %d and %d", al.IP, j, i)
			}
			holder[al.IP] = i
		}
	}

	// The disk agrees with what was handed out.
	s := openDiskStore(t, dataDir)
	lockStore(t, s)
	defer unlockStore(t, s)
	want := map[netip.Addr]Owner{}
	for ip, i := range holder {
		want[ip] = ownerOf(fmt.Sprintf("ctr%d", i))
	}
	checkReservations(t, s, want)
	// Addresses were handed out in order, without holes.
	for i := range n {
		for _, ip := range []netip.Addr{
			netip.AddrFrom4([4]byte{10, 244, 1, byte(2 + i)}),
			netip.MustParseAddr(fmt.Sprintf("fd00:10:244:1::%x", 2+i)),
		} {
			if _, ok := want[ip]; !ok {
				t.Errorf("%s was not handed out; round robin left a hole", ip)
			}
		}
	}
}

func TestDiskStoreSurvivesForeignFiles(t *testing.T) {
	dir := t.TempDir()
	s := openDiskStore(t, dir)
	// A regular file where the round-robin position should be, and one
	// named like an address.
	if err := os.WriteFile(filepath.Join(dir, testNetwork, "last_reserved.0"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, testNetwork, "10.244.1.2"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	set := RangeSet{{Subnet: netip.MustParsePrefix("10.244.1.0/24")}}
	if err := set.Validate(); err != nil {
		t.Fatal(err)
	}
	a := NewAllocator(s, []RangeSet{set}, nil)
	got, err := a.Allocate(Owner{ContainerID: "c1", IfName: "eth0"})
	if err != nil {
		t.Fatalf("Allocate with a damaged position file: %v", err)
	}
	if got[0].IP.String() != "10.244.1.3" {
		t.Errorf("got %s, want 10.244.1.3 (10.244.1.2 is taken by a foreign file)", got[0].IP)
	}
	released, err := a.GC([]Owner{{ContainerID: "c1", IfName: "eth0"}})
	if err != nil || len(released) != 1 || released[0].IP.String() != "10.244.1.2" {
		t.Errorf("GC = %v, %v; want the foreign file freed", released, err)
	}
}
