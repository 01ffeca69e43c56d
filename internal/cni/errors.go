package cni

import (
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
)

// Plugin-specific error codes (the CNI specification reserves 1-99).
const (
	// ErrAlreadyAttached: ADD for a container and interface that already
	// hold addresses; the runtime must DEL first.
	ErrAlreadyAttached uint = 100
	// ErrCheckFailed: CHECK found the attachment changed or missing.
	ErrCheckFailed uint = 101
)

func newErr(code uint, format string, args ...any) *types.Error {
	return types.NewError(code, fmt.Sprintf(format, args...), "")
}
