package agent

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/podnet/podnet/internal/cni"
)

func TestWrittenConflistIsAValidPodnetConfig(t *testing.T) {
	dir := t.TempDir()
	c := CNIConf{Network: "podnet", PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("fd00:10:244:1::/64")}, DataDir: "/var/lib/podnet/x/ipam", MTU: 1450}
	wrote, err := WriteCNIConf(dir, c)
	if err != nil || !wrote {
		t.Fatalf("first write: wrote=%v err=%v", wrote, err)
	}
	if wrote, err := WriteCNIConf(dir, c); err != nil || wrote {
		t.Errorf("same content written again: wrote=%v err=%v", wrote, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, CNIConfFile))
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		CNIVersion string            `json:"cniVersion"`
		Name       string            `json:"name"`
		Plugins    []json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(b, &list); err != nil || len(list.Plugins) != 1 {
		t.Fatalf("conflist %s: %v", b, err)
	}
	// The plugin config, as libcni hands it to the plugin, must parse.
	var plugin map[string]any
	_ = json.Unmarshal(list.Plugins[0], &plugin)
	plugin["cniVersion"], plugin["name"] = list.CNIVersion, list.Name
	pb, _ := json.Marshal(plugin)
	conf, err := cni.ParseConfig(pb)
	if err != nil {
		t.Fatalf("podnet-cni rejects the agent's config: %v", err)
	}
	if len(conf.Sets) != 2 || conf.MTU != 1450 || conf.DataDir != c.DataDir {
		t.Errorf("parsed %+v", conf)
	}
	c.PodCIDRs = c.PodCIDRs[:1]
	if wrote, err := WriteCNIConf(dir, c); err != nil || !wrote {
		t.Errorf("changed content not written: wrote=%v err=%v", wrote, err)
	}
	if _, err := WriteCNIConf(dir, CNIConf{Network: "podnet"}); err == nil {
		t.Error("a conflist without pod CIDR was written")
	}
}
