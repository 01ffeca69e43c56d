package wireguard

import "time"

// StatusPath is where the agent serves its Status as JSON.
const StatusPath = "/encryption"

// Status is one node's encryption as its agent sees it (GET StatusPath).
type Status struct {
	Node string `json:"node"`
	// Implementation is "kernel" or "userspace".
	Implementation string    `json:"implementation"`
	Device         string    `json:"device"`
	Handle         string    `json:"handle"` // the device's name for wgctrl (and `wg show`)
	ListenPort     int       `json:"listenPort"`
	PublicKey      string    `json:"publicKey"`
	KeyCreated     time.Time `json:"keyCreated"`
	Strict         bool      `json:"strict"`
	// StrictDrops counts the packets strict mode dropped.
	StrictDrops uint64       `json:"strictDrops"`
	Peers       []PeerStatus `json:"peers"`
	// Pending nodes have published no key yet; Invalid ones a malformed
	// one (the reason).
	Pending []string          `json:"pending,omitempty"`
	Invalid map[string]string `json:"invalid,omitempty"`
}

// PeerStatus is one peer of a node's device.
type PeerStatus struct {
	Node       string   `json:"node"`
	PublicKey  string   `json:"publicKey"`
	Endpoint   string   `json:"endpoint"`
	AllowedIPs []string `json:"allowedIPs"`
	// LastHandshake is zero before the first handshake.
	LastHandshake time.Time `json:"lastHandshake"`
	ReceiveBytes  int64     `json:"receiveBytes"`
	TransmitBytes int64     `json:"transmitBytes"`
}
