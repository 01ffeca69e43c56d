package localcluster

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/podnet/podnet/deploy"
	"github.com/podnet/podnet/internal/localcluster/crinode"
	"github.com/podnet/podnet/internal/localcluster/internal/lctest"
	"github.com/podnet/podnet/internal/localcluster/plan"
)

// buildDeployOverlay writes deployOverlay(cfg) next to a temporary
// directory's relative path to deploy/, builds it as kubectl apply -k
// would and returns the podnet-system ConfigMap and the agent DaemonSet.
func buildDeployOverlay(t *testing.T, cfg *Config) (*v1.ConfigMap, *appsv1.DaemonSet) {
	t.Helper()
	deployDir, err := filepath.Abs(filepath.Join("..", "..", "deploy"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base, err := filepath.Rel(dir, deployDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), deployOverlay(cfg, UpOptions{}, base, "v9.9.9-test"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := deploy.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	cm, ok1 := deploy.Find(objs, "ConfigMap", "podnet-system", "podnet-config").(*v1.ConfigMap)
	ds, ok2 := deploy.Find(objs, "DaemonSet", "podnet-system", "podnet-agent").(*appsv1.DaemonSet)
	if !ok1 || !ok2 {
		t.Fatal("the overlay's build has no podnet-config or podnet-agent in podnet-system")
	}
	return cm, ds
}

// mountsOf lists container c's mounts as "host path -> mount path"
// (hostPath volumes only).
func mountsOf(t *testing.T, ds *appsv1.DaemonSet, c string) []string {
	t.Helper()
	spec := ds.Spec.Template.Spec
	host := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			host[v.Name] = v.HostPath.Path
		}
	}
	for _, ct := range spec.Containers {
		if ct.Name != c {
			continue
		}
		var out []string
		for _, m := range ct.VolumeMounts {
			if h, ok := host[m.Name]; ok {
				out = append(out, h+" -> "+m.MountPath)
			}
		}
		return out
	}
	t.Fatalf("no container %s", c)
	return nil
}

// TestContainerdInstallCarriesTheClustersEncryption: podnet up
// --node-runtime containerd --encryption wireguard --encryption-strict
// installs deploy/ with encryption on, strict, the user-space device and
// the component that gives it /dev/net/tun; the agent's key file lies in
// the host path each node binds a directory of its own over (crinode), so
// no two nodes share a key. Without encryption, the install is deploy/'s
// default: off, and no TUN device.
func TestContainerdInstallCarriesTheClustersEncryption(t *testing.T) {
	cfg := lctest.RandomConfig(2)
	cfg.NodeRuntime = NodeRuntimeContainerd

	cm, ds := buildDeployOverlay(t, cfg)
	if cm.Data["encryption"] != "" || cm.Data["encryption-strict"] != "false" {
		t.Errorf("without encryption: podnet-config %v", cm.Data)
	}
	if m := mountsOf(t, ds, "agent"); slices.ContainsFunc(m, func(s string) bool { return strings.HasPrefix(s, "/dev/") }) {
		t.Errorf("without encryption the agent mounts %v", m)
	}

	cfg.Encryption, cfg.EncryptionStrict = plan.EncryptionWireGuard, true
	if err := cfg.Validate(); err != nil {
		t.Fatalf("an encrypted containerd cluster: %v", err)
	}
	cm, ds = buildDeployOverlay(t, cfg)
	for k, want := range map[string]string{"encryption": "wireguard", "encryption-strict": "true", "wireguard-implementation": "userspace",
		"cluster-cidr": cfg.PodCIDR.String(), "wireguard-key-rotation": "0"} {
		if cm.Data[k] != want {
			t.Errorf("podnet-config %s = %q, want %q", k, cm.Data[k], want)
		}
	}
	m := mountsOf(t, ds, "agent")
	for _, want := range []string{"/dev/net/tun -> /dev/net/tun", crinode.HostWireGuardDir + " -> " + crinode.HostWireGuardDir} {
		if !slices.Contains(m, want) {
			t.Errorf("the agent mounts %v, want %s among them", m, want)
		}
	}
	args := ds.Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(args, "--wireguard-key-file="+crinode.HostWireGuardDir+"/private.key") {
		t.Errorf("the agent's key file is not in %s, which each node has of its own: %v", crinode.HostWireGuardDir, args)
	}
}
