package cni

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
)

// HostIfPrefix starts the name of every host-side interface podnet-cni makes.
const HostIfPrefix = "pn"

// Link-local gateways every pod routes through. The host side answers for
// them: a permanent neighbor entry in the pod points at the host side's MAC.
var (
	GatewayV4 = netip.MustParseAddr("169.254.1.1")
	GatewayV6 = netip.MustParseAddr("fe80::1")
)

// HostIfName returns the host-side interface name for an attachment:
// "pn" + 13 hex digits of SHA-256(containerID "/" ifName) = 15 bytes, the
// kernel's limit (IFNAMSIZ 16 with the NUL). 52 bits make a collision among
// the pods of one node practically impossible, and the name is a pure
// function of the attachment, so DEL and GC need no other state to find it.
func HostIfName(containerID, ifName string) string {
	sum := sha256.Sum256([]byte(containerID + "/" + ifName))
	return HostIfPrefix + hex.EncodeToString(sum[:])[:13]
}

// aliasPrefix marks host-side interfaces of one network in their ifalias,
// so GC can find interfaces left without a reservation.
func aliasPrefix(network string) string { return "podnet:" + network + ":" }

// maxAlias is the kernel's limit for an ifalias (IFALIASZ 256 with the NUL).
const maxAlias = 255

// hostAlias names the attachment; an alias that would not fit is cut, and
// parseAlias then refuses it, so GC never acts on a cut name.
func hostAlias(network, containerID, ifName string) string {
	a := aliasPrefix(network) + ifName + "/" + containerID
	if len(a) > maxAlias {
		a = a[:maxAlias]
	}
	return a
}

// parseAlias returns the attachment named by a host-side alias of network.
// It refuses aliases that may have been cut, and interface names that no
// interface can have (so network "a" never claims network "a:b"'s links).
func parseAlias(network, alias string) (containerID, ifName string, ok bool) {
	if len(alias) >= maxAlias {
		return "", "", false
	}
	rest, ok := strings.CutPrefix(alias, aliasPrefix(network))
	if !ok {
		return "", "", false
	}
	ifName, containerID, ok = strings.Cut(rest, "/")
	return containerID, ifName, ok && ifName != "" && containerID != "" && !strings.ContainsAny(ifName, ":/ ")
}

// randomMAC returns a locally administered unicast MAC address.
func randomMAC() (net.HardwareAddr, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	b[0] = (b[0] | 0x02) &^ 0x01
	return net.HardwareAddr(b), nil
}
