package podruntime

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestTheNodeRegistersWithItsLabelsAndGetsThemBackAfterARestart(t *testing.T) {
	zoned := Config{NodeName: "c-node-1.a", NodeIP: netip.MustParseAddr("172.30.0.11"),
		NodeLabels: map[string]string{v1.LabelTopologyZone: "a", v1.LabelTopologyRegion: "local"}}
	for _, tc := range []struct {
		name     string
		existing *v1.Node // registered by an earlier run, or nil
		want     map[string]string
	}{
		{"a new Node carries them from its first registration", nil,
			map[string]string{v1.LabelTopologyZone: "a", v1.LabelTopologyRegion: "local", v1.LabelHostname: "c-node-1.a"}},
		{"an existing Node without them gets them, keeping its other labels",
			&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "c-node-1.a", Labels: map[string]string{"team": "net"}}},
			map[string]string{v1.LabelTopologyZone: "a", v1.LabelTopologyRegion: "local", "team": "net"}},
		{"an existing Node with another zone gets this one",
			&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "c-node-1.a", Labels: map[string]string{v1.LabelTopologyZone: "b"}}},
			map[string]string{v1.LabelTopologyZone: "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset()
			if tc.existing != nil {
				cs = fake.NewClientset(tc.existing)
			}
			cfg := zoned
			cfg.CNIConfDir = t.TempDir()
			r := &Runtime{cfg: cfg, client: cs, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if err := r.registerNode(context.Background()); err != nil {
				t.Fatal(err)
			}
			n, err := cs.CoreV1().Nodes().Get(context.Background(), cfg.NodeName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.want {
				if got, ok := n.Labels[k]; !ok || got != v {
					t.Errorf("label %s = %q (set: %v), want %q; labels %v", k, got, ok, v, n.Labels)
				}
			}
		})
	}
}
