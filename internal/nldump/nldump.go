// Package nldump wraps netlink dump requests (lists of links, addresses,
// routes, neighbors). The kernel marks a dump NLM_F_DUMP_INTR when the table
// changed while it was read; the netlink library then returns the partial data
// with ErrDumpInterrupted. Every dump in podnet goes through Do, which retries a
// few times and then fails rather than act on inconsistent data.
package nldump

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// Attempts is how often Do tries an interrupted dump.
const Attempts = 5

// Do calls dump until it returns something other than ErrDumpInterrupted, at
// most Attempts times.
func Do[T any](dump func() (T, error)) (T, error) {
	var out T
	var err error
	for range Attempts {
		out, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	var zero T
	return zero, fmt.Errorf("netlink dump interrupted %d times in a row: %w", Attempts, err)
}
