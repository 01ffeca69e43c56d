package image

import (
	"fmt"
	"io/fs"
	"os/exec"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The images' names: the contract between `make image`, the manifests in
// deploy/ and the local cluster's registry.
const (
	PodnetRepo    = "ghcr.io/podnet/podnet" // tagged with make's VERSION
	TestImage     = "docker.io/podnet/test:latest"
	NginxImage    = "docker.io/library/nginx:latest"
	PostgresImage = "docker.io/library/postgres:latest"
	BusyboxImage  = "docker.io/library/busybox:latest"
	PauseImage    = "registry.k8s.io/pause:3.10.1"
)

// Paths inside the images.
const (
	// TestPath is the test images' PATH: Debian's tools (/usr/bin) before
	// busybox's applets (/bin).
	TestPath       = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	PodnetPath     = "/usr/local/bin/podnet"
	PodnetCNIPath  = "/usr/local/bin/podnet-cni"
	TestServerPath = "/usr/local/bin/podnet-testserver"
	PausePath      = "/pause"
	BusyboxPath    = "/bin/busybox"
)

// The test image's ports: the usual ones of the e2e suites and the seed
// examples (HTTP, HTTPS, PostgreSQL, Redis, the alternates, the upstream
// e2e's serve-hostname 9376; DNS and mDNS on UDP).
var (
	TestTCPPorts = []int{80, 443, 5432, 6379, 8080, 8443, 9376}
	TestUDPPorts = []int{53, 5353}
)

// Inputs are the files the images are made of.
type Inputs struct {
	Version string // podnet's image tag

	// Static programs built from this repository.
	Podnet, PodnetCNI, TestServer, Pause string

	// Host programs installed by Debian packages: a static busybox
	// (busybox-static) and nft, which brings its libraries and loader.
	Busybox, Nft string
	// TestTools are Debian's programs the test images carry instead of
	// busybox's applets of the same name (each with its libraries):
	// GNU wget (busybox-static's wget crashes in its resolver) and bind's
	// nslookup (busybox's does not apply resolv.conf's search list, so
	// the seed's `nslookup kubernetes.default` would not resolve).
	TestTools []string
	DB        PackageDB

	// Created is every image's creation time (the commit's, for
	// reproducible digests).
	Created time.Time
}

// Result is what Build made: podnet's image, the test images (the pause
// image among them), and the Debian packages whose files went in.
type Result struct {
	Podnet   []Named
	Test     []Named
	Packages []Package
}

// BuildAll builds podnet's image and the test images from in.
func BuildAll(in Inputs) (Result, error) {
	deb := &DebianFiles{DB: in.DB}
	base, err := baseTree(deb, in.Busybox)
	if err != nil {
		return Result{}, err
	}
	nft := NewTree()
	if err := addProgram(deb, nft, in.Nft); err != nil {
		return Result{}, err
	}
	podnet := NewTree()
	if err := podnet.HostFile(PodnetPath, in.Podnet); err != nil {
		return Result{}, err
	}
	if err := podnet.HostFile(PodnetCNIPath, in.PodnetCNI); err != nil {
		return Result{}, err
	}
	server := NewTree()
	if err := server.HostFile(TestServerPath, in.TestServer); err != nil {
		return Result{}, err
	}
	for _, prog := range in.TestTools {
		if err := addProgram(deb, server, prog); err != nil {
			return Result{}, err
		}
	}
	pause := NewTree()
	if err := pause.HostFile(PausePath, in.Pause); err != nil {
		return Result{}, err
	}
	// The test images find the tools first: /usr/bin is before /bin.
	podnetImg, err := Build([]Spec{{
		Name: PodnetRepo + ":" + in.Version, Layers: []*Tree{base, nft, podnet},
		Config: v1.Config{Entrypoint: []string{PodnetPath}},
	}}, in.Created)
	if err != nil {
		return Result{}, err
	}
	test, err := Build(testSpecs(base, server, pause), in.Created)
	if err != nil {
		return Result{}, err
	}
	return Result{Podnet: podnetImg, Test: test, Packages: deb.Packages()}, nil
}

// testSpecs are the images pods name in the e2e suites and the seed
// examples. All but pause share the busybox layer and the test server's.
func testSpecs(base, server, pause *Tree) []Spec {
	serve := func(tcp, udp []int) v1.Config {
		cmd := []string{TestServerPath, "--tcp", joinInts(tcp)}
		if len(udp) > 0 {
			cmd = append(cmd, "--udp", joinInts(udp))
		}
		return v1.Config{Cmd: cmd, Env: []string{TestPath}}
	}
	layers := []*Tree{base, server}
	return []Spec{
		{Name: TestImage, Layers: layers, Config: serve(TestTCPPorts, TestUDPPorts)},
		{Name: NginxImage, Layers: layers, Config: serve([]int{80}, nil)},
		{Name: PostgresImage, Layers: layers, Config: serve([]int{5432}, nil)},
		// Like Docker Hub's busybox: no entrypoint, sh by default.
		{Name: BusyboxImage, Layers: layers, Config: v1.Config{Cmd: []string{"sh"}, Env: []string{TestPath}}},
		{Name: PauseImage, Layers: []*Tree{pause}, Config: v1.Config{Entrypoint: []string{PausePath}}},
	}
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// baseTree is the layer every image but pause starts from: a static busybox
// with each applet linked in /bin, root's /etc/passwd and /etc/group, /root
// and a sticky /tmp.
func baseTree(deb *DebianFiles, busybox string) (*Tree, error) {
	t := NewTree()
	if objs, err := SharedObjects(busybox); err != nil || len(objs) > 0 {
		return nil, fmt.Errorf("%s is not a static busybox (install Debian's busybox-static): %v %w", busybox, objs, err)
	}
	applets, err := BusyboxApplets(busybox)
	if err != nil {
		return nil, err
	}
	if err := deb.Add(t, busybox); err != nil {
		return nil, err
	}
	if busybox != BusyboxPath {
		if err := t.Symlink(BusyboxPath, busybox); err != nil {
			return nil, err
		}
	}
	for _, a := range applets {
		if err := t.Symlink("/bin/"+a, "busybox"); err != nil {
			return nil, err
		}
	}
	files := [][2]string{
		{"/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"},
		{"/etc/group", "root:x:0:\nnobody:x:65534:\n"},
		{"/etc/nsswitch.conf", "hosts: files dns\n"},
	}
	for _, f := range files {
		if err := t.File(f[0], 0o644, []byte(f[1])); err != nil {
			return nil, err
		}
	}
	if err := t.Dir("/root", 0o700); err != nil {
		return nil, err
	}
	return t, t.Dir("/tmp", 0o777|fs.ModeSticky)
}

// BusyboxApplets lists the applets the busybox program provides, as its
// --list prints them, without busybox itself.
func BusyboxApplets(busybox string) ([]string, error) {
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	var applets []string
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" && !strings.Contains(a, "/") {
			applets = append(applets, a)
		}
	}
	if len(applets) == 0 {
		return nil, fmt.Errorf("%s --list printed no applets", busybox)
	}
	return applets, nil
}

// addProgram adds a host program from a Debian package and every shared
// object the loader maps for it.
func addProgram(deb *DebianFiles, t *Tree, prog string) error {
	objs, err := SharedObjects(prog)
	if err != nil {
		return err
	}
	for _, p := range append([]string{prog}, objs...) {
		if err := deb.Add(t, p); err != nil {
			return err
		}
	}
	return nil
}
