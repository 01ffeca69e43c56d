//go:build tools

// Package tools pins containerd 2.x for the local cluster's containerd
// nodes (`podnet up --node-runtime containerd`). It has its own module
// because containerd's dependency graph would move the parent module's
// Kubernetes pins. The Makefile builds containerd, its runc shim and ctr
// from the module's commands; this file only keeps them in go.mod.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
