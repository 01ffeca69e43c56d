package plan

import (
	"fmt"
	"path/filepath"
)

// EncryptionWireGuard is the one value Config.Encryption takes besides "".
const EncryptionWireGuard = "wireguard"

// AgentRoutingMode is the agents' --routing-mode: RoutingMode, direct when
// unset.
func (c *Config) AgentRoutingMode() string {
	if c.RoutingMode == "" {
		return "direct"
	}
	return c.RoutingMode
}

func (c *Config) validateEncryption() error {
	if m := c.AgentRoutingMode(); m != "direct" && m != "vxlan" {
		return fmt.Errorf("routingMode %q: want direct or vxlan", c.RoutingMode)
	}
	switch c.Encryption {
	case "":
		if c.EncryptionStrict {
			return fmt.Errorf("encryptionStrict: needs encryption %q", EncryptionWireGuard)
		}
		return nil
	case EncryptionWireGuard:
		return nil
	}
	return fmt.Errorf("encryption %q: want %q or none", c.Encryption, EncryptionWireGuard)
}

// WireGuardKeyFile is node i's WireGuard private key.
func (c *Config) WireGuardKeyFile(i int) string {
	return filepath.Join(c.NodeDir(i), "wireguard", "private.key")
}

// WireGuardSocketName names node i's user-space WireGuard control socket
// (/var/run/wireguard/NAME.sock): the nodes share the host's file system,
// so each needs its own, and `wg show NAME` reads that node's device. wg
// takes names of at most 15 characters: "pnwg" + the cluster's ID + "-" +
// the node's number (pnwg4974ff-1).
func (c *Config) WireGuardSocketName(i int) string {
	return fmt.Sprintf("pnwg%s-%d", c.ID(), i)
}
