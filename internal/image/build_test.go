package image

// These tests build the real images from this repository's programs (go
// build, CGO_ENABLED=0: minutes the first time, seconds from the build cache)
// and the host's Debian files (nftables and busybox-static, which make deps
// installs), then look inside them and run their programs in a chroot of
// the image's root file system: the image's own loader and libraries, never
// the host's.

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

const testVersion = "v0.0.0-imagetest"

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error

	resultOnce sync.Once
	result     Result
	resultErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// repoRoot is the module's directory (two up from this package).
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// realInputs builds the repository's programs once per test binary and
// returns the inputs make image uses.
func realInputs(t *testing.T) Inputs {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "podnet-imagetest-"); buildErr == nil {
			buildErr = GoBuild(repoRoot(t), binDir, testVersion)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	in := InputsFrom(binDir, testVersion)
	in.Busybox, in.Nft, in.DB = "/bin/busybox", "/usr/sbin/nft", Dpkg{}
	in.Created = time.Unix(1700000000, 0)
	return in
}

func buildAll(t *testing.T) Result {
	t.Helper()
	r, err := BuildAll(realInputs(t))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// built is one build shared by the tests that only look at it.
func built(t *testing.T) Result {
	t.Helper()
	in := realInputs(t)
	resultOnce.Do(func() { result, resultErr = BuildAll(in) })
	if resultErr != nil {
		t.Fatal(resultErr)
	}
	return result
}

func TestImagesBuiltTwiceHaveTheSameDigests(t *testing.T) {
	sums := make([]string, 2)
	var digests [2][]string
	for i := range sums {
		r := built(t)
		if i > 0 {
			r = buildAll(t)
		}
		h := sha256.New()
		if err := WriteArchive(h, append(r.Podnet, r.Test...)); err != nil {
			t.Fatal(err)
		}
		sums[i] = fmt.Sprintf("%x", h.Sum(nil))
		for _, n := range append(r.Podnet, r.Test...) {
			d, err := n.Image.Digest()
			if err != nil {
				t.Fatal(err)
			}
			digests[i] = append(digests[i], n.Name+"@"+d.String())
		}
	}
	if sums[0] != sums[1] || strings.Join(digests[0], " ") != strings.Join(digests[1], " ") {
		t.Fatalf("two builds differ:\n%s %v\n%s %v", sums[0], digests[0], sums[1], digests[1])
	}
	t.Logf("archive sha256 %s; %v", sums[0], digests[0])
}

func TestImageNamesAndConfigs(t *testing.T) {
	r := built(t)
	want := map[string]string{
		PodnetRepo + ":" + testVersion: "entrypoint [" + PodnetPath + "] cmd []",
		TestImage:                      "entrypoint [] cmd [" + TestServerPath + " --tcp 80,443,5432,6379,8080,8443,9376 --udp 53,5353]",
		NginxImage:                     "entrypoint [] cmd [" + TestServerPath + " --tcp 80]",
		PostgresImage:                  "entrypoint [] cmd [" + TestServerPath + " --tcp 5432]",
		BusyboxImage:                   "entrypoint [] cmd [sh]",
		PauseImage:                     "entrypoint [/pause] cmd []",
	}
	got := map[string]string{}
	for _, n := range append(r.Podnet, r.Test...) {
		cf, err := n.Image.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		got[n.Name] = fmt.Sprintf("entrypoint %v cmd %v", cf.Config.Entrypoint, cf.Config.Cmd)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("images:\ngot  %v\nwant %v", got, want)
	}
	var names []string
	for _, p := range r.Packages {
		names = append(names, strings.SplitN(p.Name, ":", 2)[0])
	}
	for _, must := range []string{"nftables", "libnftables1", "libc6", "busybox-static"} {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+must+" ") {
			t.Errorf("packages %v lack %s", names, must)
		}
	}
}

// make image's files: both archives read back through go-containerregistry's
// layout package with the same names and digests, and versions.txt lists
// the packages.
func TestOutputsReadBack(t *testing.T) {
	r := built(t)
	dir := t.TempDir()
	if err := WriteOutputs(dir, r); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string][]Named{PodnetArchive: r.Podnet, TestArchive: r.Test} {
		got, err := OpenArchive(filepath.Join(dir, file), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d images, want %d", file, len(got), len(want))
		}
		for i := range want {
			gd, err1 := got[i].Image.Digest()
			wd, err2 := want[i].Image.Digest()
			if got[i].Name != want[i].Name || gd != wd || err1 != nil || err2 != nil {
				t.Errorf("%s entry %d: %s@%s (%v), want %s@%s (%v)", file, i, got[i].Name, gd, err1, want[i].Name, wd, err2)
			}
		}
	}
	versions, err := os.ReadFile(filepath.Join(dir, VersionsFile))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, p := range r.Packages {
		lines = append(lines, p.Name+" "+p.Version+"\n")
	}
	if string(versions) != strings.Join(lines, "") {
		t.Errorf("versions.txt:\n%s\nwant\n%s", versions, strings.Join(lines, ""))
	}
}

// rootfs extracts an image's flattened file system into a new directory.
func rootfs(t *testing.T, imgs []Named, name string) string {
	t.Helper()
	for _, n := range imgs {
		if n.Name != name {
			continue
		}
		dir := t.TempDir()
		rc := mutate.Extract(n.Image)
		defer rc.Close()
		if err := Untar(rc, dir, true); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	t.Fatalf("no image %s", name)
	return ""
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running the image's programs in a chroot of its root file system needs root")
	}
}

// inRoot runs argv chrooted into root with the image's PATH and no other
// environment than env. argv[0] is a path in the image (exec.Command would
// look a bare name up on the host's PATH).
func inRoot(root string, env []string, argv ...string) *exec.Cmd {
	cmd := &exec.Cmd{Path: argv[0], Args: argv}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	cmd.Dir = "/"
	cmd.Env = append([]string{"PATH=" + DefaultPath}, env...)
	return cmd
}

func TestPodnetImageProgramsRunOnTheImagesOwnLibraries(t *testing.T) {
	needRoot(t)
	root := rootfs(t, built(t).Podnet, PodnetRepo+":"+testVersion)
	hostNft, err := exec.Command("/usr/sbin/nft", "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		env  []string
		argv []string
		want string
	}{
		{"nft runs through the image's loader and libraries", nil, []string{"/usr/sbin/nft", "--version"}, strings.TrimSpace(string(hostNft))},
		{"podnet runs and knows its version", nil, []string{PodnetPath, "version"}, "podnet " + testVersion},
		{"podnet-cni answers the CNI VERSION command", []string{"CNI_COMMAND=VERSION"}, []string{PodnetCNIPath}, `"supportedVersions"`},
		{"busybox's sh is the shell", nil, []string{"/bin/sh", "-c", "echo $((6*7))"}, "42"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := inRoot(root, c.env, c.argv...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), c.want) {
				t.Fatalf("%v: %v\n%s\nwant %q in the output", c.argv, err, out, c.want)
			}
		})
	}
	// No library came from the host: the loader lists what it maps.
	out, err := inRoot(root, []string{"LD_TRACE_LOADED_OBJECTS=1"}, "/usr/sbin/nft").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "libnftables.so.1 => /lib/") {
		t.Fatalf("nft's libraries in the image: %v\n%s", err, out)
	}
}

func TestTestImagesHaveBusyboxAndTheTestServer(t *testing.T) {
	needRoot(t)
	root := rootfs(t, built(t).Test, TestImage)
	for _, applet := range []string{"ping", "wget", "nslookup", "sh", "cat", "nc", "ip"} {
		if target, err := os.Readlink(filepath.Join(root, "bin", applet)); err != nil || target != "busybox" {
			t.Errorf("/bin/%s: %q %v, want a link to busybox", applet, target, err)
		}
	}

	// The test server from the image answers on loopback with its name, to
	// the image's own wget; ping and nslookup run from their links.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	srv := inRoot(root, []string{"HOSTNAME=web-0"}, TestServerPath, "--tcp", fmt.Sprint(port))
	var stderr bytes.Buffer
	srv.Stderr = &stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			break
		}
	}
	cases := []struct {
		argv []string
		want string
	}{
		{[]string{"/bin/wget", "-q", "-O", "-", url}, "pod=web-0 client=127.0.0.1:"},
		{[]string{"/bin/ping", "-c", "1", "-W", "2", "127.0.0.1"}, "1 packets received"},
		{[]string{"/bin/nslookup"}, "Usage: nslookup"},
	}
	for _, c := range cases {
		out, _ := inRoot(root, nil, c.argv...).CombinedOutput()
		if !strings.Contains(string(out), c.want) {
			t.Errorf("%v in the test image: %q, want %q (test server: %s)", c.argv, out, c.want, stderr.String())
		}
	}
}

func TestPauseExitsOnSIGTERM(t *testing.T) {
	realInputs(t)
	cmd := exec.Command(filepath.Join(binDir, "pause"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("pause exited by itself: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("pause after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Fatal("pause did not exit on SIGTERM")
	}
}
