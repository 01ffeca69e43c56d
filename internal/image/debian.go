package image

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Package is a Debian package whose files went into an image.
type Package struct {
	Name    string // with its architecture qualifier when dpkg gives one (libc6:amd64)
	Version string
}

// PackageDB tells which installed package owns a file.
type PackageDB interface {
	// Owner returns the package that installed path (as dpkg names it).
	Owner(path string) (Package, error)
}

// Dpkg is the host's dpkg database, asked through dpkg-query.
type Dpkg struct{}

var _ PackageDB = Dpkg{}

// Owner asks `dpkg-query -S` for path and, on a merged-/usr system, for its
// other spelling (/lib/... and /usr/lib/... are the same file but dpkg knows
// only the one the package shipped), then the package's version.
func (Dpkg) Owner(p string) (Package, error) {
	var errs []error
	for _, q := range spellings(p) {
		out, err := exec.Command("dpkg-query", "-S", q).Output()
		if err != nil {
			errs = append(errs, fmt.Errorf("dpkg-query -S %s: %w", q, err))
			continue
		}
		name, err := ownerLine(string(out), q)
		if err != nil {
			return Package{}, err
		}
		v, err := exec.Command("dpkg-query", "-W", "-f=${Version}", name).Output()
		if err != nil {
			return Package{}, fmt.Errorf("dpkg-query -W %s: %w", name, err)
		}
		return Package{Name: name, Version: strings.TrimSpace(string(v))}, nil
	}
	return Package{}, fmt.Errorf("no installed package owns %s: %w", p, errors.Join(errs...))
}

// spellings is p, then p with /usr added or removed.
func spellings(p string) []string {
	if rest, ok := strings.CutPrefix(p, "/usr/"); ok {
		return []string{p, "/" + rest}
	}
	return []string{p, "/usr" + p}
}

// ownerLine picks the package from dpkg-query -S output ("pkg:arch: /path"
// or "pkg1, pkg2: /path" for a shared directory; diversions start with
// "diversion by").
func ownerLine(out, p string) (string, error) {
	for _, line := range strings.Split(out, "\n") {
		pkgs, file, ok := strings.Cut(line, ": ")
		if !ok || file != p || strings.HasPrefix(pkgs, "diversion by") {
			continue
		}
		if strings.Contains(pkgs, ",") {
			return "", fmt.Errorf("%s is owned by several packages (%s)", p, pkgs)
		}
		return strings.TrimSpace(pkgs), nil
	}
	return "", fmt.Errorf("dpkg-query -S %s: no owner line in %q", p, out)
}

// DebianFiles adds host files installed by Debian packages to a tree at the
// same paths, keeping symbolic links as links (their targets are added
// too), and remembers each file's package.
type DebianFiles struct {
	DB       PackageDB
	packages map[Package]bool
}

// Add copies the host file p into t unless t has it already. If p is a
// symbolic link, the link is added as it is and its target after it,
// recursively. Directories on the
// way are real directories in the image even where the host links them
// (Debian's merged /usr: /lib -> usr/lib).
func (d *DebianFiles) Add(t *Tree, p string) error {
	for hops := 0; hops < 16; hops++ {
		if t.Has(p) {
			return nil
		}
		pkg, err := d.DB.Owner(p)
		if err != nil {
			return err
		}
		if d.packages == nil {
			d.packages = map[Package]bool{}
		}
		d.packages[pkg] = true
		st, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("image file %s: %w", p, err)
		}
		if st.Mode()&os.ModeSymlink == 0 {
			return t.HostFile(p, p)
		}
		target, err := os.Readlink(p)
		if err != nil {
			return fmt.Errorf("image file %s: %w", p, err)
		}
		if err := t.Symlink(p, target); err != nil {
			return err
		}
		if !filepath.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		p = target
	}
	return fmt.Errorf("image file %s: too many symbolic links", p)
}

// Packages lists the packages of every file added, sorted by name.
func (d *DebianFiles) Packages() []Package {
	out := make([]Package, 0, len(d.packages))
	for p := range d.packages {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
