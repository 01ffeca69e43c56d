package wireguard

// Fixture conventions: pod CIDR 10.244.0.0/16 (node-N has 10.244.N.0/24
// and, when dual-stack, fd00:10:244:N::/64), node network 172.30.0.0/24
// (node-N is 172.30.0.1N), endpoints on DefaultPort. Public keys are 32
// equal bytes (pub(N) for node-N); no curve is needed to read them. Nodes
// are built as the API server returns them and read by the real
// PeerFromNode, never as hand-made Peers.

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// pub is a public key of 32 bytes b.
func pub(b byte) wgtypes.Key {
	var k wgtypes.Key
	for i := range k {
		k[i] = b
	}
	return k
}

// wgNode is node-N with InternalIP 172.30.0.1N, pod CIDR 10.244.N.0/24 and,
// when key is not the zero Key, the annotations SelfAnnotations writes.
func wgNode(n int, key wgtypes.Key) *v1.Node {
	ip := fmt.Sprintf("172.30.0.%d", 10+n)
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", n), Annotations: map[string]string{}}}
	node.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeHostName, Address: node.Name}, {Type: v1.NodeInternalIP, Address: ip}}
	node.Spec.PodCIDR = fmt.Sprintf("10.244.%d.0/24", n)
	node.Spec.PodCIDRs = []string{node.Spec.PodCIDR}
	if key != (wgtypes.Key{}) {
		ep := netip.AddrPortFrom(netip.MustParseAddr(ip), DefaultPort)
		for k, v := range SelfAnnotations(key, ep, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
			node.Annotations[k] = v
		}
	}
	return node
}

func prefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

func TestPeerFromNode(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(n *v1.Node)
		// err is "" for a peer, "nokey" for ErrNoKey, else what the
		// error must say.
		err      string
		endpoint string
		allowed  string
	}{
		{name: "a node with a key, an endpoint and a pod CIDR is a peer",
			endpoint: "172.30.0.12:51871", allowed: "10.244.2.0/24 172.30.0.12/32"},
		{name: "a key with the newline of a file is read",
			edit:     func(n *v1.Node) { n.Annotations[AnnotationPublicKey] += "\n" },
			endpoint: "172.30.0.12:51871", allowed: "10.244.2.0/24 172.30.0.12/32"},
		{name: "no key annotation is ErrNoKey",
			edit: func(n *v1.Node) { delete(n.Annotations, AnnotationPublicKey) }, err: "nokey"},
		{name: "a key that is not base64 is malformed",
			edit: func(n *v1.Node) { n.Annotations[AnnotationPublicKey] = "not base64!" }, err: AnnotationPublicKey},
		{name: "a key of 16 bytes is malformed",
			edit: func(n *v1.Node) {
				n.Annotations[AnnotationPublicKey] = base64.StdEncoding.EncodeToString(make([]byte, 16))
			}, err: AnnotationPublicKey},
		{name: "the all-zero key is refused",
			edit: func(n *v1.Node) { n.Annotations[AnnotationPublicKey] = wgtypes.Key{}.String() }, err: "all-zero"},
		{name: "an endpoint that is no address is malformed",
			edit: func(n *v1.Node) { n.Annotations[AnnotationEndpoint] = "node-2:51871" }, err: AnnotationEndpoint},
		{name: "an endpoint without a port is malformed",
			edit: func(n *v1.Node) { n.Annotations[AnnotationEndpoint] = "172.30.0.12" }, err: AnnotationEndpoint},
		{name: "a missing endpoint with a key is malformed",
			edit: func(n *v1.Node) { delete(n.Annotations, AnnotationEndpoint) }, err: AnnotationEndpoint},
		{name: "the unspecified address is no endpoint",
			edit: func(n *v1.Node) { n.Annotations[AnnotationEndpoint] = "0.0.0.0:51871" }, err: "not an address to send to"},
		{name: "the unspecified IPv6 address is no endpoint",
			edit: func(n *v1.Node) { n.Annotations[AnnotationEndpoint] = "[::]:51871" }, err: "not an address to send to"},
		{name: "port 0 is no endpoint",
			edit: func(n *v1.Node) { n.Annotations[AnnotationEndpoint] = "172.30.0.12:0" }, err: "not an address to send to"},
		{name: "an IPv6 endpoint is a peer",
			edit:     func(n *v1.Node) { n.Annotations[AnnotationEndpoint] = "[fd00:172:30::12]:51871" },
			endpoint: "[fd00:172:30::12]:51871", allowed: "10.244.2.0/24 172.30.0.12/32"},
		{name: "an IPv4-mapped endpoint is read as IPv4",
			edit:     func(n *v1.Node) { n.Annotations[AnnotationEndpoint] = "[::ffff:172.30.0.12]:51871" },
			endpoint: "172.30.0.12:51871", allowed: "10.244.2.0/24 172.30.0.12/32"},
		{name: "a node without a pod CIDR is not routed to yet (ErrNoKey)",
			edit: func(n *v1.Node) { n.Spec.PodCIDR, n.Spec.PodCIDRs = "", nil }, err: "nokey"},
		{name: "a dual-stack node's both pod CIDRs are allowed",
			edit:     func(n *v1.Node) { n.Spec.PodCIDRs = append(n.Spec.PodCIDRs, "fd00:10:244:2::/64") },
			endpoint: "172.30.0.12:51871", allowed: "10.244.2.0/24 fd00:10:244:2::/64 172.30.0.12/32"},
		{name: "a node without an InternalIP allows only its pod CIDR",
			edit:     func(n *v1.Node) { n.Status.Addresses = nil },
			endpoint: "172.30.0.12:51871", allowed: "10.244.2.0/24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := wgNode(2, pub(2))
			if tc.edit != nil {
				tc.edit(n)
			}
			p, err := PeerFromNode(n)
			switch {
			case tc.err == "nokey":
				if !errors.Is(err, ErrNoKey) {
					t.Fatalf("err = %v, want ErrNoKey", err)
				}
				return
			case tc.err != "":
				if err == nil || errors.Is(err, ErrNoKey) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want an error (not ErrNoKey) saying %q", err, tc.err)
				}
				return
			case err != nil:
				t.Fatalf("err = %v, want a peer", err)
			}
			var allowed []string
			for _, a := range p.AllowedIPs() {
				allowed = append(allowed, a.String())
			}
			if p.Node != "node-2" || p.PublicKey != pub(2) || p.Endpoint.String() != tc.endpoint || strings.Join(allowed, " ") != tc.allowed {
				t.Errorf("peer %s key %s endpoint %s allowed %q, want node-2 %s %s %q",
					p.Node, p.PublicKey, p.Endpoint, strings.Join(allowed, " "), pub(2), tc.endpoint, tc.allowed)
			}
		})
	}
}

func TestPlanPeers(t *testing.T) {
	self := pub(1)
	malformed := wgNode(4, pub(4))
	malformed.Annotations[AnnotationPublicKey] = "garbage"
	noCIDR := wgNode(7, pub(7))
	noCIDR.Spec.PodCIDR, noCIDR.Spec.PodCIDRs = "", nil
	// Listed out of order: the plan is sorted by name, and the first by
	// name of two nodes with one key keeps it.
	nodes := []*v1.Node{
		wgNode(6, pub(3)),        // node-3's key: invalid, names node-3
		wgNode(3, pub(3)),        // a peer
		malformed,                // invalid
		wgNode(1, self),          // this node: skipped
		wgNode(5, self),          // claims this node's key: invalid, names node-1
		wgNode(2, pub(2)),        // a peer
		wgNode(8, wgtypes.Key{}), // no key yet: pending
		noCIDR,                   // no pod CIDR yet: pending
	}
	plan := PlanPeers("node-1", self, nodes)
	var peers []string
	for _, p := range plan.Peers {
		peers = append(peers, p.Node+"="+p.PublicKey.String())
	}
	if want := []string{"node-2=" + pub(2).String(), "node-3=" + pub(3).String()}; !slices.Equal(peers, want) {
		t.Errorf("peers %v, want %v", peers, want)
	}
	if want := []string{"node-7", "node-8"}; !slices.Equal(plan.Pending, want) {
		t.Errorf("pending %v, want %v", plan.Pending, want)
	}
	wantInvalid := map[string]string{
		"node-4": AnnotationPublicKey,
		"node-5": "already node node-1's",
		"node-6": "already node node-3's",
	}
	if len(plan.Invalid) != len(wantInvalid) {
		t.Errorf("invalid %v, want exactly %v", plan.Invalid, wantInvalid)
	}
	for n, says := range wantInvalid {
		if err := plan.Invalid[n]; err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("invalid[%s] = %v, want it to say %q", n, err, says)
		}
	}
	if _, ok := plan.Invalid["node-1"]; ok {
		t.Error("this node is reported invalid")
	}

	// The same nodes in any order give the same plan.
	reversed := slices.Clone(nodes)
	slices.Reverse(reversed)
	again := PlanPeers("node-1", self, reversed)
	if fmt.Sprint(again.Peers, again.Pending) != fmt.Sprint(plan.Peers, plan.Pending) || len(again.Invalid) != len(plan.Invalid) {
		t.Errorf("the plan depends on the order of the nodes:\n%+v\n%+v", again, plan)
	}
}

func TestDeviceConfigIsTheWholeDevice(t *testing.T) {
	dual := wgNode(3, pub(3))
	dual.Spec.PodCIDRs = append(dual.Spec.PodCIDRs, "fd00:10:244:3::/64")
	plan := PlanPeers("node-1", pub(1), []*v1.Node{wgNode(1, pub(1)), wgNode(2, pub(2)), dual})
	if len(plan.Peers) != 2 {
		t.Fatalf("fixture: plan %+v, want two peers", plan)
	}
	priv := pub(9)
	cfg := DeviceConfig(priv, 51999, plan.Peers)
	if cfg.PrivateKey == nil || *cfg.PrivateKey != priv || cfg.ListenPort == nil || *cfg.ListenPort != 51999 {
		t.Errorf("key %v port %v, want %s 51999", cfg.PrivateKey, cfg.ListenPort, priv)
	}
	if !cfg.ReplacePeers {
		t.Error("ReplacePeers is off: peers of removed nodes would stay")
	}
	want := []struct{ key, endpoint, allowed string }{
		{pub(2).String(), "172.30.0.12:51871", "10.244.2.0/24 172.30.0.12/32"},
		{pub(3).String(), "172.30.0.13:51871", "10.244.3.0/24 fd00:10:244:3::/64 172.30.0.13/32"},
	}
	if len(cfg.Peers) != len(want) {
		t.Fatalf("%d peers, want %d", len(cfg.Peers), len(want))
	}
	for i, pc := range cfg.Peers {
		var allowed []string
		for _, a := range pc.AllowedIPs {
			allowed = append(allowed, a.String())
		}
		if pc.PublicKey.String() != want[i].key || pc.Endpoint.String() != want[i].endpoint || strings.Join(allowed, " ") != want[i].allowed {
			t.Errorf("peer %d: %s %s %q, want %s %s %q", i, pc.PublicKey, pc.Endpoint, strings.Join(allowed, " "),
				want[i].key, want[i].endpoint, want[i].allowed)
		}
		if !pc.ReplaceAllowedIPs || pc.Remove || pc.UpdateOnly {
			t.Errorf("peer %d: replace %v remove %v update-only %v, want it set whole", i, pc.ReplaceAllowedIPs, pc.Remove, pc.UpdateOnly)
		}
		if pc.PersistentKeepaliveInterval == nil || *pc.PersistentKeepaliveInterval != PersistentKeepalive {
			t.Errorf("peer %d: keepalive %v, want %s", i, pc.PersistentKeepaliveInterval, PersistentKeepalive)
		}
	}
	if empty := DeviceConfig(priv, DefaultPort, nil); len(empty.Peers) != 0 || !empty.ReplacePeers {
		t.Errorf("no peers: %+v, want none and ReplacePeers (removes every peer)", empty)
	}
}

func TestSelfAnnotationsAreReadBackByPeerFromNode(t *testing.T) {
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 5, 6, 7, 8, 9, 123, time.FixedZone("x", 3600))
	ann := SelfAnnotations(priv.PublicKey(), netip.MustParseAddrPort("172.30.0.12:51871"), created)
	if got := ann[AnnotationKeyCreated]; got != "2026-05-06T06:08:09Z" {
		t.Errorf("key-created %q, want UTC whole seconds 2026-05-06T06:08:09Z", got)
	}
	n := wgNode(2, wgtypes.Key{})
	n.Annotations = ann
	p, err := PeerFromNode(n)
	if err != nil || p.PublicKey != priv.PublicKey() || p.Endpoint.String() != "172.30.0.12:51871" {
		t.Errorf("PeerFromNode = %+v, %v; want the published key and endpoint", p, err)
	}
}

func TestRotationDue(t *testing.T) {
	created := time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.UTC) // half a second into 12:00:00
	now := created.Add(48 * time.Hour)
	for _, tc := range []struct {
		name    string
		period  time.Duration
		rotate  string
		due     bool
		wantErr bool
	}{
		{name: "no period and no request: never", due: false},
		{name: "a key younger than the period stays", period: 72 * time.Hour, due: false},
		{name: "a key as old as the period goes", period: 48 * time.Hour, due: true},
		{name: "a key older than the period goes", period: 24 * time.Hour, due: true},
		{name: "a request after the key was made rotates", rotate: "2026-03-02T00:00:00Z", due: true},
		{name: "a request in another zone is compared as a time", rotate: "2026-03-01T13:00:01+01:00", due: true},
		{name: "a request before the key was made is done", rotate: "2026-03-01T11:59:59Z", due: false},
		{name: "a request in the second the key was made is done", rotate: "2026-03-01T12:00:00Z", due: false},
		{name: "a request one second after the key was made rotates", rotate: "2026-03-01T12:00:01Z", due: true},
		{name: "a request from the future waits for its time", rotate: "2026-03-04T00:00:00Z", due: false},
		{name: "a request at exactly now rotates", rotate: now.Format(time.RFC3339), due: true},
		{name: "a malformed request is an error and does not rotate", rotate: "yesterday", wantErr: true},
		{name: "a date without a time is malformed", rotate: "2026-03-02", wantErr: true},
		{name: "the age rotates even with a malformed request", period: time.Hour, rotate: "yesterday", due: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			due, err := RotationDue(created, tc.period, tc.rotate, now)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr && !strings.Contains(err.Error(), AnnotationRotate) {
				t.Errorf("err %q does not name %s", err, AnnotationRotate)
			}
			if due != tc.due {
				t.Errorf("due = %v, want %v", due, tc.due)
			}
		})
	}
}

// ipnet is a net.IPNet as wgctrl reports a device's allowed IP.
func ipnet(t *testing.T, s string) net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return *n
}

func TestCheckPortRefusesWhatIsNotAPort(t *testing.T) {
	for port, ok := range map[int]bool{1: true, DefaultPort: true, 65535: true, 0: false, -1: false, 65536: false, 117407: false} {
		if err := checkPort(port); (err == nil) != ok {
			t.Errorf("checkPort(%d) = %v, want ok=%v", port, err, ok)
		}
	}
}
