package image

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Binaries are the static programs of this repository that go into the
// images, by their package's directory name.
var Binaries = map[string]string{
	"podnet":            "./cmd/podnet",
	"podnet-cni":        "./cmd/podnet-cni",
	"podnet-testserver": "./cmd/podnet-testserver",
	"pause":             "./cmd/pause",
}

// GoBuild builds every program of Binaries from the module at repo into
// dir: static (CGO_ENABLED=0), stripped, without build paths or VCS stamps
// (-trimpath -buildvcs=false) and with version as podnet's version, so that
// one commit and one Go toolchain give the same bytes.
func GoBuild(repo, dir, version string) error {
	ldflags := "-s -w -X github.com/podnet/podnet/internal/version.Version=" + version
	for name, pkg := range Binaries {
		cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
	}
	return nil
}

// Output files of WriteOutputs, in its directory.
const (
	PodnetArchive = "podnet.tar"
	TestArchive   = "test.tar"
	VersionsFile  = "versions.txt"
)

// WriteOutputs writes r as dir/podnet.tar, dir/test.tar and
// dir/versions.txt ("package version" lines), each replaced atomically.
func WriteOutputs(dir string, r Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, PodnetArchive), func(f *os.File) error { return WriteArchive(f, r.Podnet) }); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, TestArchive), func(f *os.File) error { return WriteArchive(f, r.Test) }); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, VersionsFile), func(f *os.File) error {
		for _, p := range r.Packages {
			if _, err := fmt.Fprintf(f, "%s %s\n", p.Name, p.Version); err != nil {
				return err
			}
		}
		return nil
	})
}

func writeAtomic(path string, write func(*os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// InputsFrom fills the repository's programs of Inputs from a directory
// GoBuild wrote.
func InputsFrom(dir, version string) Inputs {
	return Inputs{
		Version:    version,
		Podnet:     filepath.Join(dir, "podnet"),
		PodnetCNI:  filepath.Join(dir, "podnet-cni"),
		TestServer: filepath.Join(dir, "podnet-testserver"),
		Pause:      filepath.Join(dir, "pause"),
	}
}
