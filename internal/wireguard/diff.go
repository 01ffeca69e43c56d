package wireguard

import (
	"net"
	"slices"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// configDiff is the change that brings the device from have to want (a
// whole configuration, as DeviceConfig makes it), and whether there is any.
// Only what differs is in it: the private key and port when they changed,
// a peer that is new or whose endpoint, keepalive or allowed IPs changed,
// and the removal of every peer that is not wanted. Rewriting an unchanged
// peer would reset its session, so it is left out. Removals come first
// (in have's order), then the other peers in want's order: a new peer may
// take over the allowed IPs of a removed one (a node that came back with
// a new key), and WireGuard gives an allowed IP to the last peer that
// claims it.
func configDiff(have *wgtypes.Device, want wgtypes.Config) (wgtypes.Config, bool) {
	var cfg wgtypes.Config
	if want.PrivateKey != nil && have.PrivateKey != *want.PrivateKey {
		cfg.PrivateKey = want.PrivateKey
	}
	if want.ListenPort != nil && have.ListenPort != *want.ListenPort {
		cfg.ListenPort = want.ListenPort
	}
	current := map[wgtypes.Key]wgtypes.Peer{}
	for _, p := range have.Peers {
		current[p.PublicKey] = p
	}
	wanted := map[wgtypes.Key]bool{}
	var changed []wgtypes.PeerConfig
	for _, pc := range want.Peers {
		wanted[pc.PublicKey] = true
		if h, ok := current[pc.PublicKey]; ok && samePeer(h, pc) {
			continue
		}
		changed = append(changed, pc)
	}
	for _, p := range have.Peers {
		if !wanted[p.PublicKey] {
			cfg.Peers = append(cfg.Peers, wgtypes.PeerConfig{PublicKey: p.PublicKey, Remove: true})
		}
	}
	cfg.Peers = append(cfg.Peers, changed...)
	return cfg, cfg.PrivateKey != nil || cfg.ListenPort != nil || len(cfg.Peers) > 0
}

// samePeer says whether the device's peer h already is what want asks.
func samePeer(h wgtypes.Peer, want wgtypes.PeerConfig) bool {
	if h.Endpoint == nil || want.Endpoint == nil || h.Endpoint.String() != want.Endpoint.String() {
		return false
	}
	if want.PersistentKeepaliveInterval != nil && h.PersistentKeepaliveInterval != *want.PersistentKeepaliveInterval {
		return false
	}
	return slices.Equal(ipNets(h.AllowedIPs), ipNets(want.AllowedIPs))
}

// ipNets are the networks as sorted strings.
func ipNets(n []net.IPNet) []string {
	out := make([]string, 0, len(n))
	for _, x := range n {
		out = append(out, x.String())
	}
	slices.Sort(out)
	return out
}
