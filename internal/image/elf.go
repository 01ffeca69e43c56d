package image

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
)

// multiarch is Debian's library directory name for each machine.
var multiarch = map[elf.Machine]string{
	elf.EM_X86_64:  "x86_64-linux-gnu",
	elf.EM_AARCH64: "aarch64-linux-gnu",
}

// libDirs are the directories the loader searches without an ld.so.cache,
// in its order (Debian's glibc: multiarch first).
func libDirs(m elf.Machine) ([]string, error) {
	triplet, ok := multiarch[m]
	if !ok {
		return nil, fmt.Errorf("no multiarch directory known for ELF machine %v", m)
	}
	return []string{"/lib/" + triplet, "/usr/lib/" + triplet, "/lib64", "/usr/lib64", "/lib", "/usr/lib"}, nil
}

// elfDeps reads a program's interpreter (PT_INTERP; empty when static)
// and the libraries it names in DT_NEEDED.
func elfDeps(file string) (interp string, needed []string, machine elf.Machine, err error) {
	f, err := elf.Open(file)
	if err != nil {
		return "", nil, 0, fmt.Errorf("read ELF %s: %w", file, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return "", nil, 0, fmt.Errorf("read ELF %s interpreter: %w", file, err)
		}
		interp = strings.TrimRight(string(b), "\x00")
	}
	needed, err = f.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return "", nil, 0, fmt.Errorf("read ELF %s DT_NEEDED: %w", file, err)
	}
	return interp, needed, f.Machine, nil
}

// SharedObjects returns what the dynamic loader maps to run the ELF program
// prog: its interpreter and every library named by DT_NEEDED, transitively,
// each as the path the loader opens (often a symbolic link, such as
// /lib/x86_64-linux-gnu/libc.so.6). A static program needs none. Libraries
// are looked up the way ld.so does without a cache (RUNPATH is not read:
// Debian's packaged programs do not use it).
func SharedObjects(prog string) ([]string, error) {
	interp, needed, machine, err := elfDeps(prog)
	if err != nil || interp == "" {
		return nil, err
	}
	dirs, err := libDirs(machine)
	if err != nil {
		return nil, err
	}
	out := []string{interp}
	seen := map[string]bool{}
	for len(needed) > 0 {
		name := needed[0]
		needed = needed[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		lib, err := findLib(name, dirs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", prog, err)
		}
		if lib == interp || path.Base(lib) == path.Base(interp) {
			continue
		}
		out = append(out, lib)
		_, more, _, err := elfDeps(lib)
		if err != nil {
			return nil, err
		}
		needed = append(needed, more...)
	}
	return out, nil
}

func findLib(name string, dirs []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, d := range dirs {
		p := path.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("shared library %s not found in %v", name, dirs)
}
