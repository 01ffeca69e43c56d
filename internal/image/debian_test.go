package image

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestOwnerLine(t *testing.T) {
	cases := []struct {
		name, out, path, want string
		wantErr               bool
	}{
		{"one owner with its architecture", "libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6\n", "/lib/x86_64-linux-gnu/libc.so.6", "libc6:amd64", false},
		{"a diversion line is not the owner", "diversion by dash from: /bin/sh\ndash: /bin/sh\n", "/bin/sh", "dash", false},
		{"a directory of several packages is refused", "libc6:amd64, libnftables1:amd64: /lib/x86_64-linux-gnu\n", "/lib/x86_64-linux-gnu", "", true},
		{"a line for another path is not an answer", "nftables: /usr/sbin/nft-other\n", "/usr/sbin/nft", "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ownerLine(c.out, c.path)
			if got != c.want || (err != nil) != c.wantErr {
				t.Fatalf("ownerLine: %q, %v; want %q, error %v", got, err, c.want, c.wantErr)
			}
		})
	}
	if got := spellings("/lib/x/libc.so.6"); !slices.Equal(got, []string{"/lib/x/libc.so.6", "/usr/lib/x/libc.so.6"}) {
		t.Errorf("spellings of /lib/...: %v", got)
	}
	if got := spellings("/usr/sbin/nft"); !slices.Equal(got, []string{"/usr/sbin/nft", "/sbin/nft"}) {
		t.Errorf("spellings of /usr/sbin/nft: %v", got)
	}
}

// nft is Debian's nftables, which make deps installs and the agent needs.
func TestSharedObjectsOfNft(t *testing.T) {
	objs, err := SharedObjects("/usr/sbin/nft")
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(objs, " ")
	for _, want := range []string{"/lib64/ld-linux-x86-64.so.2", "/libnftables.so.1", "/libnftnl.so.11", "/libmnl.so.0", "/libc.so.6"} {
		if !strings.Contains(joined, want) {
			t.Errorf("SharedObjects(nft) = %v, lacks %s", objs, want)
		}
	}
	if objs[0] != "/lib64/ld-linux-x86-64.so.2" {
		t.Errorf("the loader comes first: %v", objs)
	}
	static, err := SharedObjects("/bin/busybox")
	if err != nil || len(static) != 0 {
		t.Errorf("a static busybox needs no shared object: %v %v", static, err)
	}
}

type fakeDB map[string]Package

func (f fakeDB) Owner(p string) (Package, error) {
	if pkg, ok := f[p]; ok {
		return pkg, nil
	}
	return Package{}, fmt.Errorf("no package owns %s", p)
}

// The loader's path is a symbolic link on Debian: the image gets the link
// and the file it points to, and both files' package.
func TestDebianFilesFollowsLinks(t *testing.T) {
	const loader = "/lib64/ld-linux-x86-64.so.2"
	target, err := os.Readlink(loader)
	if err != nil {
		t.Fatalf("%s on this Debian machine: %v", loader, err)
	}
	libc6 := Package{Name: "libc6:amd64", Version: "2.36-9"}
	deb := &DebianFiles{DB: fakeDB{loader: libc6, target: libc6}}
	tr := NewTree()
	if err := deb.Add(tr, loader); err != nil {
		t.Fatal(err)
	}
	if err := deb.Add(tr, loader); err != nil {
		t.Fatalf("adding a file the tree has is a no-op: %v", err)
	}
	if !tr.Has(loader) || !tr.Has(target) {
		t.Errorf("tree %v lacks %s or its target %s", tr.Paths(), loader, target)
	}
	if got := deb.Packages(); len(got) != 1 || got[0] != libc6 {
		t.Errorf("packages %v, want [%v]", got, libc6)
	}
	if err := deb.Add(tr, "/usr/sbin/nft"); err == nil || !strings.Contains(err.Error(), "no package owns") {
		t.Errorf("a file the database does not know: %v, want an error", err)
	}
}
