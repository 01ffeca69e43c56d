package wireguard

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	v1 "k8s.io/api/core/v1"
)

// reported is the device as wgctrl reports it after cfg was applied to an
// empty device: endpoints and allowed IPs parsed back from their text, as
// the user-space protocol carries them.
func reported(t *testing.T, cfg wgtypes.Config) *wgtypes.Device {
	t.Helper()
	dev := &wgtypes.Device{Name: Device, Type: wgtypes.Userspace}
	if cfg.PrivateKey != nil {
		dev.PrivateKey, dev.PublicKey = *cfg.PrivateKey, cfg.PrivateKey.PublicKey()
	}
	if cfg.ListenPort != nil {
		dev.ListenPort = *cfg.ListenPort
	}
	for _, pc := range cfg.Peers {
		p := wgtypes.Peer{PublicKey: pc.PublicKey}
		if pc.Endpoint != nil {
			ep, err := net.ResolveUDPAddr("udp", pc.Endpoint.String())
			if err != nil {
				t.Fatal(err)
			}
			p.Endpoint = ep
		}
		if pc.PersistentKeepaliveInterval != nil {
			p.PersistentKeepaliveInterval = *pc.PersistentKeepaliveInterval
		}
		for _, a := range pc.AllowedIPs {
			p.AllowedIPs = append(p.AllowedIPs, ipnet(t, a.String()))
		}
		dev.Peers = append(dev.Peers, p)
	}
	return dev
}

// describe writes a config change as one line per item, for comparison.
func describe(cfg wgtypes.Config) []string {
	var out []string
	if cfg.PrivateKey != nil {
		out = append(out, "key "+cfg.PrivateKey.String())
	}
	if cfg.ListenPort != nil {
		out = append(out, fmt.Sprintf("port %d", *cfg.ListenPort))
	}
	if cfg.ReplacePeers {
		out = append(out, "replace peers")
	}
	for _, pc := range cfg.Peers {
		if pc.Remove {
			out = append(out, "remove "+pc.PublicKey.String())
			continue
		}
		var allowed []string
		for _, a := range pc.AllowedIPs {
			allowed = append(allowed, a.String())
		}
		out = append(out, fmt.Sprintf("set %s %s [%s] replace=%v", pc.PublicKey, pc.Endpoint, strings.Join(allowed, " "), pc.ReplaceAllowedIPs))
	}
	return out
}

func TestDescribeSaysEveryPartOfAChange(t *testing.T) {
	k, port := pub(9), 7
	got := describe(wgtypes.Config{PrivateKey: &k, ListenPort: &port, ReplacePeers: true, Peers: []wgtypes.PeerConfig{
		{PublicKey: pub(1), Remove: true},
		{PublicKey: pub(2), Endpoint: &net.UDPAddr{IP: net.IPv4(1, 2, 3, 4), Port: 5}, AllowedIPs: []net.IPNet{ipnet(t, "10.0.0.0/8")}, ReplaceAllowedIPs: true},
	}})
	want := []string{"key " + k.String(), "port 7", "replace peers", "remove " + pub(1).String(),
		"set " + pub(2).String() + " 1.2.3.4:5 [10.0.0.0/8] replace=true"}
	if !slices.Equal(got, want) {
		t.Errorf("describe = %q, want %q", got, want)
	}
}

func TestConfigDiffChangesOnlyWhatDiffers(t *testing.T) {
	self := pub(1)
	priv := pub(0x41)
	nodes := func(edit func(ns []*v1.Node) []*v1.Node) []Peer {
		ns := []*v1.Node{wgNode(1, self), wgNode(2, pub(2)), wgNode(3, pub(3))}
		if edit != nil {
			ns = edit(ns)
		}
		return PlanPeers("node-1", self, ns).Peers
	}
	set := func(k wgtypes.Key, ep, allowed string) string {
		return fmt.Sprintf("set %s %s [%s] replace=true", k, ep, allowed)
	}
	current := DeviceConfig(priv, DefaultPort, nodes(nil))
	for _, tc := range []struct {
		name string
		have *wgtypes.Device
		want wgtypes.Config
		diff []string // nil: no change at all
	}{
		{name: "an unchanged device gets no change",
			have: reported(t, current), want: current},
		{name: "allowed IPs the device lists in another order are unchanged",
			have: func() *wgtypes.Device {
				d := reported(t, current)
				for i := range d.Peers {
					slices.Reverse(d.Peers[i].AllowedIPs)
				}
				return d
			}(),
			want: current},
		{name: "a new device gets its key, port and every peer",
			have: &wgtypes.Device{}, want: current,
			diff: []string{"key " + priv.String(), fmt.Sprintf("port %d", DefaultPort),
				set(pub(2), "172.30.0.12:51871", "10.244.2.0/24 172.30.0.12/32"),
				set(pub(3), "172.30.0.13:51871", "10.244.3.0/24 172.30.0.13/32")}},
		{name: "a rotated key of this node is sent alone",
			have: reported(t, current), want: DeviceConfig(pub(0x42), DefaultPort, nodes(nil)),
			diff: []string{"key " + pub(0x42).String()}},
		{name: "a changed port is sent alone",
			have: reported(t, current), want: DeviceConfig(priv, 51000, nodes(nil)),
			diff: []string{"port 51000"}},
		{name: "a peer's changed endpoint is sent, and that peer only",
			have: reported(t, current),
			want: DeviceConfig(priv, DefaultPort, nodes(func(ns []*v1.Node) []*v1.Node {
				ns[2].Annotations[AnnotationEndpoint] = "172.30.0.99:51871"
				return ns
			})),
			diff: []string{set(pub(3), "172.30.0.99:51871", "10.244.3.0/24 172.30.0.13/32")}},
		{name: "a peer's new pod CIDR is sent with all its allowed IPs",
			have: reported(t, current),
			want: DeviceConfig(priv, DefaultPort, nodes(func(ns []*v1.Node) []*v1.Node {
				ns[1].Spec.PodCIDRs = append(ns[1].Spec.PodCIDRs, "10.245.2.0/24")
				return ns
			})),
			diff: []string{set(pub(2), "172.30.0.12:51871", "10.244.2.0/24 10.245.2.0/24 172.30.0.12/32")}},
		{name: "a peer that lost its keepalive gets it again",
			have: func() *wgtypes.Device {
				d := reported(t, current)
				d.Peers[0].PersistentKeepaliveInterval = 0
				return d
			}(),
			want: current,
			diff: []string{set(pub(2), "172.30.0.12:51871", "10.244.2.0/24 172.30.0.12/32")}},
		{name: "a peer whose endpoint the device does not know is set",
			have: func() *wgtypes.Device {
				d := reported(t, current)
				d.Peers[1].Endpoint = nil
				return d
			}(),
			want: current,
			diff: []string{set(pub(3), "172.30.0.13:51871", "10.244.3.0/24 172.30.0.13/32")}},
		{name: "a node gone from the cluster is removed",
			have: reported(t, current),
			want: DeviceConfig(priv, DefaultPort, nodes(func(ns []*v1.Node) []*v1.Node { return ns[:2] })),
			diff: []string{"remove " + pub(3).String()}},
		{name: "a node back with a new key: the old key is removed before the new one takes its allowed IPs",
			have: reported(t, current),
			want: DeviceConfig(priv, DefaultPort, nodes(func(ns []*v1.Node) []*v1.Node {
				ns[1] = wgNode(2, pub(0x22))
				return ns
			})),
			diff: []string{"remove " + pub(2).String(), set(pub(0x22), "172.30.0.12:51871", "10.244.2.0/24 172.30.0.12/32")}},
		{name: "every removal comes before every new peer",
			have: reported(t, current),
			want: DeviceConfig(priv, DefaultPort, nodes(func(ns []*v1.Node) []*v1.Node {
				return []*v1.Node{ns[0], wgNode(4, pub(4)), wgNode(5, pub(5))}
			})),
			diff: []string{"remove " + pub(2).String(), "remove " + pub(3).String(),
				set(pub(4), "172.30.0.14:51871", "10.244.4.0/24 172.30.0.14/32"),
				set(pub(5), "172.30.0.15:51871", "10.244.5.0/24 172.30.0.15/32")}},
		{name: "no peers left: every peer is removed",
			have: reported(t, current), want: DeviceConfig(priv, DefaultPort, nil),
			diff: []string{"remove " + pub(2).String(), "remove " + pub(3).String()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, changed := configDiff(tc.have, tc.want)
			got := describe(cfg)
			if !slices.Equal(got, tc.diff) {
				t.Errorf("diff:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.diff, "\n  "))
			}
			if changed != (len(tc.diff) > 0) {
				t.Errorf("changed = %v with diff %q", changed, got)
			}
			if cfg.ReplacePeers {
				t.Error("the diff replaces all peers: every session would be reset")
			}
		})
	}
}

// Applying the diff to the device gives the wanted device: checked by
// applying it to the reported peers (remove, then set whole).
func TestConfigDiffAppliedGivesTheWantedDevice(t *testing.T) {
	self, priv := pub(1), pub(0x41)
	before := DeviceConfig(priv, DefaultPort, PlanPeers("node-1", self,
		[]*v1.Node{wgNode(2, pub(2)), wgNode(3, pub(3)), wgNode(4, pub(4))}).Peers)
	moved := wgNode(3, pub(3))
	moved.Annotations[AnnotationEndpoint] = "172.30.0.33:51871"
	after := DeviceConfig(pub(0x43), DefaultPort+1, PlanPeers("node-1", self,
		[]*v1.Node{wgNode(2, pub(0x22)), moved, wgNode(5, pub(5))}).Peers)
	dev := reported(t, before)
	cfg, changed := configDiff(dev, after)
	if !changed {
		t.Fatal("no change")
	}
	// apply: what wireguard-go does with a config that does not replace peers
	if cfg.PrivateKey != nil {
		dev.PrivateKey = *cfg.PrivateKey
	}
	if cfg.ListenPort != nil {
		dev.ListenPort = *cfg.ListenPort
	}
	byKey := map[wgtypes.Key]wgtypes.Peer{}
	for _, p := range dev.Peers {
		byKey[p.PublicKey] = p
	}
	for _, pc := range cfg.Peers {
		if pc.Remove {
			delete(byKey, pc.PublicKey)
			continue
		}
		one := reported(t, wgtypes.Config{Peers: []wgtypes.PeerConfig{pc}})
		byKey[pc.PublicKey] = one.Peers[0]
	}
	dev.Peers = nil
	for _, p := range byKey {
		dev.Peers = append(dev.Peers, p)
	}
	if rest, changed := configDiff(dev, after); changed {
		t.Errorf("after applying the diff the device still differs: %q", describe(rest))
	}
	if len(dev.Peers) != 3 || dev.ListenPort != DefaultPort+1 || dev.PrivateKey != pub(0x43) {
		t.Errorf("device %d peers port %d key %s, want 3 peers, port %d, the new key", len(dev.Peers), dev.ListenPort, dev.PrivateKey, DefaultPort+1)
	}
}
