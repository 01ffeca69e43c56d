// Package atomicfile replaces files so that a reader (a container runtime
// loading a CNI conflist, a kubelet executing a CNI plugin) sees the old
// content or the new one, never a part: the new content goes to a
// temporary file in the same directory, is synced to disk, and is renamed
// over the old name. A process still running the old file keeps its inode.
//
// Dangerous: the temporary file must be in the same directory (a rename
// across file systems fails); a crash may leave a ".NAME.tmp-*" file
// behind, which the next write does not clean up.
package atomicfile

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteIfChanged makes path hold data with mode perm and reports whether it
// wrote: a file that already holds data with that mode is left alone. The
// directory must exist.
func WriteIfChanged(path string, data []byte, perm fs.FileMode) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		if st, err := os.Stat(path); err == nil && st.Mode().Perm() == perm {
			return false, nil
		}
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := write(tmp, data, perm); err != nil {
		return false, fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return false, err
	}
	// The rename itself is durable once the directory is synced.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return true, nil
}

// write fills f, sets its mode, syncs and closes it.
func write(f *os.File, data []byte, perm fs.FileMode) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
