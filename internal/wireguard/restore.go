package wireguard

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/podnet/podnet/internal/atomicfile"
)

// PeersFile is where a node keeps the peers it last configured, beside its
// key: a restarted agent whose user-space device came back empty
// configures them at once, before it has read the Nodes, so its pods are
// cut off only for a handshake and not for the wait for the API server.
// (It holds only public keys and addresses, what the Nodes publish.)
func PeersFile(keyFile string) string { return filepath.Join(filepath.Dir(keyFile), "peers.json") }

type savedPeer struct {
	Node      string         `json:"node"`
	PublicKey string         `json:"publicKey"`
	Endpoint  netip.AddrPort `json:"endpoint"`
	NodeIP    netip.Addr     `json:"nodeIP,omitzero"`
	PodCIDRs  []netip.Prefix `json:"podCIDRs"`
}

// savePeers writes peers to path when they differ from what is there.
func savePeers(path string, peers []Peer) error {
	out := make([]savedPeer, 0, len(peers))
	for _, p := range peers {
		out = append(out, savedPeer{Node: p.Node, PublicKey: p.PublicKey.String(), Endpoint: p.Endpoint, NodeIP: p.NodeIP, PodCIDRs: p.PodCIDRs})
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = atomicfile.WriteIfChanged(path, append(b, '\n'), 0o600)
	return err
}

// loadPeers reads what savePeers wrote; a missing file is no peers.
func loadPeers(path string) ([]Peer, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var saved []savedPeer
	if err := json.Unmarshal(b, &saved); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	peers := make([]Peer, 0, len(saved))
	for _, s := range saved {
		k, err := wgtypes.ParseKey(s.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("%s: peer %s: %w", path, s.Node, err)
		}
		peers = append(peers, Peer{Node: s.Node, PublicKey: k, Endpoint: s.Endpoint, NodeIP: s.NodeIP, PodCIDRs: s.PodCIDRs})
	}
	return peers, nil
}
