// Package cnicalls records the CNI calls a container runtime makes and
// compares what it sends with a fixture: the shape of those calls that
// podnet-cni's own tests take as their input.
//
// Recording: RecorderScript is a small shell program that stands in for a
// plugin in the runtime's CNI bin directory. It saves each call (its CNI_*
// environment, stdin, stdout and exit code) in a directory of its own and
// runs the real plugin with the same input, so the runtime sees the real
// plugin's answers. ReadDir reads the calls back, in the order they began.
//
// Comparing: a call's Shape is what a plugin relies on and a runtime may
// change: the command, the config's cniVersion, which CNI_* variables are
// set (and which are present but empty), the keys of CNI_ARGS, and every
// key path of the stdin JSON (prevResult's included). Compare lists every
// difference between recorded calls and a fixture's, one line each; values
// (container IDs, addresses, paths) are not part of a shape.
//
// The fixture internal/cni/testdata/containerd-calls.json is one recorded
// example of each command containerd sends. test/e2e's
// TestContainerdCNICalls records containerd and fails when the shapes
// differ; run it with -update-cni-fixture to write a new fixture (see
// docs/cni.md, "What containerd sends").
//
// Dangerous: the recorder runs the real plugin with the runtime's input:
// install it only on a node the test owns, and restore the runtime's own
// configuration afterwards.
package cnicalls
