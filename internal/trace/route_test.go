package trace

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	v1 "k8s.io/api/core/v1"

	"github.com/podnet/podnet/internal/wireguard"
)

// keyed is n with the WireGuard annotations its agent publishes, for a
// public key of 32 bytes b (0: none).
func keyed(n *v1.Node, b byte) *v1.Node {
	if b == 0 {
		return n
	}
	var k wgtypes.Key
	for i := range k {
		k[i] = b
	}
	ip := netip.MustParseAddr(n.Status.Addresses[0].Address)
	n.Annotations = wireguard.SelfAnnotations(k, netip.AddrPortFrom(ip, wireguard.DefaultPort), time.Unix(0, 0))
	return n
}

// The route step with encryption: node-1's agent encrypts when node-1
// has published a key, and then routes into pnwg0 the nodes PlanPeers
// gives it; the rest go in the clear, and trace says why.
func TestRouteForThroughWireGuard(t *testing.T) {
	for _, tc := range []struct {
		name       string
		mode       string
		key1, key2 byte // 0: no key published
		edit2      func(n *v1.Node)
		dst        string
		want       RouteStage // Unencrypted aside
		// clear is what Unencrypted must say ("": empty).
		clear string
		text  string
	}{
		{name: "both nodes keyed: into the tunnel, direct mode", mode: "direct", key1: 1, key2: 2, dst: "10.244.2.7",
			want: RouteStage{From: "node-1", To: "node-2", Kind: RouteWireGuard, Route: "10.244.2.0/24 dev pnwg0"},
			text: "  route: node-1 -> node-2: 10.244.2.0/24 dev pnwg0 (WireGuard, encrypted to node-2)\n"},
		{name: "both nodes keyed: into the tunnel, vxlan mode too", mode: "vxlan", key1: 1, key2: 2, dst: "10.244.2.7",
			want: RouteStage{From: "node-1", To: "node-2", Kind: RouteWireGuard, Route: "10.244.2.0/24 dev pnwg0"}},
		{name: "the destination's node has no key yet: in the clear, and said so", mode: "direct", key1: 1, dst: "10.244.2.7",
			want:  RouteStage{From: "node-1", To: "node-2", Kind: RouteDirect, Route: "10.244.2.0/24 via 172.30.0.12"},
			clear: "node-2 has published no WireGuard key",
			text:  "  route: node-1 -> node-2: 10.244.2.0/24 via 172.30.0.12 (direct, NOT encrypted: node-2 has published no WireGuard key; a node in strict mode drops it)\n"},
		{name: "the destination's node has a malformed key: in the clear, with the reason", mode: "vxlan", key1: 1, key2: 2,
			edit2: func(n *v1.Node) { n.Annotations[wireguard.AnnotationPublicKey] = "garbage" }, dst: "10.244.2.7",
			want:  RouteStage{From: "node-1", To: "node-2", Kind: RouteVXLAN, Route: "10.244.2.0/24 via 10.244.2.0 dev pnvxlan onlink"},
			clear: "node-2's WireGuard annotations are invalid (annotation " + wireguard.AnnotationPublicKey},
		{name: "the destination's node claims the source's key: in the clear", mode: "direct", key1: 1, key2: 1, dst: "10.244.2.7",
			want:  RouteStage{From: "node-1", To: "node-2", Kind: RouteDirect, Route: "10.244.2.0/24 via 172.30.0.12"},
			clear: "already node node-1's"},
		{name: "the source's node has no key: its agent does not encrypt", mode: "direct", key2: 2, dst: "10.244.2.7",
			want: RouteStage{From: "node-1", To: "node-2", Kind: RouteDirect, Route: "10.244.2.0/24 via 172.30.0.12"},
			text: "  route: node-1 -> node-2: 10.244.2.0/24 via 172.30.0.12 (direct)\n"},
		{name: "a pod on the same node stays local", mode: "direct", key1: 1, key2: 2, dst: "10.244.1.9",
			want: RouteStage{From: "node-1", To: "node-1", Kind: RouteLocal}},
		{name: "a node's own address is not tunneled", mode: "direct", key1: 1, key2: 2, dst: "172.30.0.12",
			want: RouteStage{From: "node-1", To: "node-2", Kind: RouteNode}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n2 := keyed(node("node-2", "172.30.0.12", "10.244.2.0/24"), tc.key2)
			if tc.edit2 != nil {
				tc.edit2(n2)
			}
			nodes := []*v1.Node{keyed(node("node-1", "172.30.0.11", "10.244.1.0/24"), tc.key1), n2}
			dstNode := ""
			if strings.HasPrefix(tc.dst, "10.244.") {
				dstNode = map[bool]string{true: "node-1", false: "node-2"}[strings.HasPrefix(tc.dst, "10.244.1.")]
			}
			got := RouteFor(tc.mode, "node-1", netip.MustParseAddr(tc.dst), dstNode, nodes)
			if (tc.clear == "") != (got.Unencrypted == "") || !strings.Contains(got.Unencrypted, tc.clear) {
				t.Errorf("Unencrypted = %q, want %q", got.Unencrypted, tc.clear)
			}
			stage := got
			stage.Unencrypted = ""
			if stage != tc.want {
				t.Errorf("RouteFor = %+v, want %+v", got, tc.want)
			}
			if tc.text != "" {
				var b strings.Builder
				got.format(&b)
				if b.String() != tc.text {
					t.Errorf("text:\n%q\nwant:\n%q", b.String(), tc.text)
				}
			}
		})
	}
}
