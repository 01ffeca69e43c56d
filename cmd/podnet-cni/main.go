// Command podnet-cni is podnet's CNI plugin: a container runtime executes it
// once per pod to create the pod's routed veth pair and hand out its
// addresses. See internal/cni and docs/cni.md.
package main

import (
	"os"

	"github.com/podnet/podnet/internal/cni"
	"github.com/podnet/podnet/internal/version"
)

func main() {
	os.Exit(cni.Main("podnet-cni " + version.Version))
}
