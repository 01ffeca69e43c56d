package proxy

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ElementWriter writes element-only changes (and the slot-pick rules of
// Services whose endpoint count changed) to the kernel without the nft
// binary. Every run of nft loads its cache of the whole table first (about
// 90 ms at 10,000 Services), so a sync that only moves endpoints, the
// common change, goes through this writer when one is set; anything else
// (new or changed chains, sets it does not support) goes through knftables.
type ElementWriter interface {
	// Supports says whether the writer can encode elements of set.
	Supports(set string) bool
	// Write removes then adds the elements and replaces the slot-pick
	// rules, all in one atomic transaction.
	Write(ctx context.Context, removed, added []ElementChange, picks []SlotPick) error
}

// encodeElement returns the kernel's byte form of an element's key and
// value for the sets the netlink writer supports (ok false for others):
//
//   - endpoint-slots-v4-*, -v6-*: key `ct mark` (32 bits, host byte
//     order, as nft's mark type), value address . port (the port in network
//     order, padded to 4 bytes as every part of a concatenation is);
//   - hairpin-v4, -v6: key address . address.
func encodeElement(set string, key, value []string) (k, v []byte, ok bool, err error) {
	switch {
	case strings.HasPrefix(set, "endpoint-slots-v"):
		if len(key) != 1 || len(value) != 2 {
			return nil, nil, true, fmt.Errorf("slot element %v : %v: want 1 key and 2 value fields", key, value)
		}
		mark, err := strconv.ParseUint(key[0], 0, 32)
		if err != nil {
			return nil, nil, true, fmt.Errorf("slot %q: %w", key[0], err)
		}
		k = binary.NativeEndian.AppendUint32(nil, uint32(mark))
		a, err := parseFamilyAddr(value[0], set[len("endpoint-slots-v")] == '4')
		if err != nil {
			return nil, nil, true, err
		}
		port, err := strconv.ParseUint(value[1], 10, 16)
		if err != nil {
			return nil, nil, true, fmt.Errorf("port %q: %w", value[1], err)
		}
		v = append(a.AsSlice(), byte(port>>8), byte(port), 0, 0)
		return k, v, true, nil
	case set == setHairpin4 || set == setHairpin6:
		if len(key) != 2 || len(value) != 0 {
			return nil, nil, true, fmt.Errorf("hairpin element %v: want 2 key fields", key)
		}
		for _, s := range key {
			a, err := parseFamilyAddr(s, set == setHairpin4)
			if err != nil {
				return nil, nil, true, err
			}
			k = append(k, a.AsSlice()...)
		}
		return k, nil, true, nil
	}
	return nil, nil, false, nil
}

func parseFamilyAddr(s string, v4 bool) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, err
	}
	if a.Is4() != v4 {
		return a, fmt.Errorf("address %s is of the wrong family", s)
	}
	return a, nil
}
