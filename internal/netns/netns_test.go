package netns

import (
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCreateDoDelete(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("kernel test: creating network namespaces needs root")
	}
	name := UniqueName("pnt-netns-")
	path, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Delete(name) })
	if path != Path(name) {
		t.Errorf("path %s, want %s", path, Path(name))
	}
	if _, err := Create(name); err == nil {
		t.Error("creating a namespace whose name is taken succeeded")
	}

	var rootIno, insideIno uint64
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	rootIno = st.Ino
	var loUp bool
	err = Do(path, func() error {
		if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
			return err
		}
		insideIno = st.Ino
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		loUp = lo.Flags&net.FlagUp != 0
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if insideIno == rootIno {
		t.Error("Do ran the function in the caller's namespace")
	}
	if !loUp {
		t.Error("loopback is down in a new namespace")
	}
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil || st.Ino != rootIno {
		t.Errorf("after Do the goroutine is in namespace %d, want %d", st.Ino, rootIno)
	}
	if err := Delete(name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Delete: %v", path, err)
	}
	if err := Delete(name); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

func TestCreateRejectsPathNames(t *testing.T) {
	for _, name := range []string{"", "a/b", "../x"} {
		if _, err := Create(name); err == nil {
			t.Errorf("Create(%q) succeeded", name)
		}
	}
}
