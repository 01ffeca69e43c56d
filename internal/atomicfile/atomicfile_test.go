package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteIfChangedWritesOnlyADifference(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "podnet-cni")
	steps := []struct {
		name  string
		data  string
		perm  os.FileMode
		wrote bool
	}{
		{"a new file is written", "v1", 0o755, true},
		{"the same content is left alone", "v1", 0o755, false},
		{"new content replaces it", "v2", 0o755, true},
		{"a mode change alone rewrites it", "v2", 0o644, true},
	}
	for _, s := range steps {
		var before os.FileInfo
		if st, err := os.Stat(path); err == nil {
			before = st
		}
		wrote, err := WriteIfChanged(path, []byte(s.data), s.perm)
		if err != nil || wrote != s.wrote {
			t.Fatalf("%s: wrote %v, %v; want %v", s.name, wrote, err, s.wrote)
		}
		b, err := os.ReadFile(path)
		st, serr := os.Stat(path)
		if err != nil || serr != nil || string(b) != s.data || st.Mode().Perm() != s.perm {
			t.Fatalf("%s: %q %v, %v %v", s.name, b, st, err, serr)
		}
		if !s.wrote && !os.SameFile(before, st) {
			t.Errorf("%s: the file was replaced", s.name)
		}
		if s.wrote && before != nil && os.SameFile(before, st) {
			t.Errorf("%s: written in place, not renamed over", s.name)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("left in the directory: %v", ents)
	}
}

func TestWriteIntoAMissingDirectoryFails(t *testing.T) {
	if _, err := WriteIfChanged(filepath.Join(t.TempDir(), "no", "f"), []byte("x"), 0o644); err == nil {
		t.Error("no error")
	}
}
