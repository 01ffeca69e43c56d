// Command imagebuild is `make image`: it builds podnet's static binaries and
// writes podnet's OCI image and the test images as OCI layout archives,
// without Docker (internal/image), plus the list of Debian packages whose
// files went in:
//
//	bin/images/podnet.tar    ghcr.io/podnet/podnet:VERSION
//	bin/images/test.tar      docker.io/podnet/test, library/nginx, library/postgres,
//	                         library/busybox (all :latest) and registry.k8s.io/pause:3.10.1
//	bin/images/versions.txt  "package version" per line
//
// The images' dates are --created (make passes the commit's time), so one
// commit built twice with the same toolchain and packages gives the same
// digests.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/podnet/podnet/internal/image"
)

func main() {
	var o options
	flag.StringVar(&o.out, "out", "bin/images", "directory to write podnet.tar, test.tar and versions.txt to")
	flag.StringVar(&o.repo, "repo", ".", "the podnet module to build the binaries from")
	flag.StringVar(&o.version, "version", "dev", "podnet's version: the binaries' and the image's tag")
	flag.Int64Var(&o.created, "created", envInt("SOURCE_DATE_EPOCH"), "the images' creation time, seconds since 1970 (default $SOURCE_DATE_EPOCH, else 0)")
	flag.StringVar(&o.busybox, "busybox", "/bin/busybox", "a static busybox from Debian's busybox-static")
	flag.StringVar(&o.nft, "nft", "/usr/sbin/nft", "nft from Debian's nftables")
	flag.StringVar(&o.testTools, "test-tools", "/usr/bin/wget,/usr/bin/nslookup", "Debian's programs the test images carry before busybox's (comma-separated)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}

type options struct {
	out, repo, version, busybox, nft, testTools string
	created                                     int64
}

func run(o options) error {
	work, err := os.MkdirTemp("", "podnet-imagebuild-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := image.GoBuild(o.repo, work, o.version); err != nil {
		return err
	}
	in := image.InputsFrom(work, o.version)
	in.Busybox, in.Nft, in.DB = o.busybox, o.nft, image.Dpkg{}
	in.TestTools = strings.Split(o.testTools, ",")
	in.Created = time.Unix(o.created, 0)
	r, err := image.BuildAll(in)
	if err != nil {
		return err
	}
	if err := image.WriteOutputs(o.out, r); err != nil {
		return err
	}
	for _, n := range append(r.Podnet, r.Test...) {
		d, err := n.Image.Digest()
		if err != nil {
			return err
		}
		fmt.Printf("%s@%s\n", n.Name, d)
	}
	return nil
}

func envInt(name string) int64 {
	n, _ := strconv.ParseInt(os.Getenv(name), 10, 64)
	return n
}
