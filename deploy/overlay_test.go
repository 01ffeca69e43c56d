package deploy

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// overlay is the shape of the overlay `podnet up --node-runtime containerd`
// generates in its state directory (the contract of issue 13): deploy/ as
// its resource, by a path relative to the overlay (kustomize refuses an
// absolute one: "new root cannot be absolute"), the image tag, one patch of the
// ConfigMaps podnet-config (a target without namespace reaches both, the
// agent's in podnet-system and the DNS's in kube-system) and the kube-dns
// Service's clusterIP.
const overlay = `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - DEPLOY
images:
  - name: ghcr.io/podnet/podnet
    newTag: v9.9.9-test
patches:
  - target: {kind: ConfigMap, name: podnet-config}
    patch: |
      apiVersion: v1
      kind: ConfigMap
      metadata: {name: podnet-config}
      data:
        cluster-cidr: 10.200.0.0/16
        service-cidr: 10.201.0.0/16
        apiserver-host: 172.30.0.1
        apiserver-port: "6443"
        dns-upstream: 203.0.113.53
  - patch: |
      apiVersion: v1
      kind: Service
      metadata: {name: kube-dns, namespace: kube-system}
      spec: {clusterIP: 10.201.0.10}
`

// buildOverlay builds the kustomization text k in a temporary directory,
// DEPLOY in it replaced by the relative path to deploy/.
func buildOverlay(t *testing.T, k string) []Object {
	t.Helper()
	abs, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, abs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(strings.ReplaceAll(k, "DEPLOY", rel)), 0o644); err != nil {
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
	objs, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestAnOverlayLikeTheLocalClustersSetsTagSettingsAndDNSAddress(t *testing.T) {
	objs := buildOverlay(t, overlay)
	agentCM := get[*v1.ConfigMap](t, objs, "ConfigMap", "podnet-system", "podnet-config")
	dnsCM := get[*v1.ConfigMap](t, objs, "ConfigMap", "kube-system", "podnet-config")
	if agentCM.Data["cluster-cidr"] != "10.200.0.0/16" || agentCM.Data["apiserver-port"] != "6443" || agentCM.Data["routing-mode"] != "direct" {
		t.Errorf("podnet-system/podnet-config: %v (want the patch's values and the base's others)", agentCM.Data)
	}
	if dnsCM.Data["dns-upstream"] != "203.0.113.53" || dnsCM.Data["dns-zone"] != "cluster.local" {
		t.Errorf("kube-system/podnet-config: %v", dnsCM.Data)
	}
	if svc := get[*v1.Service](t, objs, "Service", "kube-system", "kube-dns"); svc.Spec.ClusterIP != "10.201.0.10" {
		t.Errorf("kube-dns clusterIP %s", svc.Spec.ClusterIP)
	}
	n := 0
	for _, o := range objs {
		spec, ok := o.PodSpec()
		if !ok {
			continue
		}
		for _, c := range append(spec.InitContainers, spec.Containers...) {
			n++
			if c.Image != "ghcr.io/podnet/podnet:v9.9.9-test" {
				t.Errorf("%s/%s runs %s", o.Name, c.Name, c.Image)
			}
		}
	}
	if n != 4 {
		t.Errorf("%d containers, want 4", n)
	}
	get[*appsv1.DaemonSet](t, objs, "DaemonSet", "podnet-system", "podnet-agent")
}

// encryptedOverlay turns encryption on with the user-space device, as
// docs/install.md says: the ConfigMap keys and the component.
const encryptedOverlay = `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - DEPLOY
components:
  - DEPLOY/components/wireguard-userspace
patches:
  - target: {kind: ConfigMap, name: podnet-config, namespace: podnet-system}
    patch: |
      apiVersion: v1
      kind: ConfigMap
      metadata: {name: podnet-config}
      data:
        encryption: wireguard
        wireguard-implementation: userspace
`

// TestTheUserspaceComponentGivesTheAgentTheTUNDeviceOnly: with
// components/wireguard-userspace, the agent container (and it alone)
// mounts the host's /dev/net/tun, a character device that must exist;
// everything else of the DaemonSet stays as the base has it.
func TestTheUserspaceComponentGivesTheAgentTheTUNDeviceOnly(t *testing.T) {
	objs := buildOverlay(t, encryptedOverlay)
	cm := get[*v1.ConfigMap](t, objs, "ConfigMap", "podnet-system", "podnet-config")
	if cm.Data["encryption"] != "wireguard" || cm.Data["wireguard-implementation"] != "userspace" || cm.Data["encryption-strict"] != "false" {
		t.Errorf("podnet-config: %v", cm.Data)
	}
	got := get[*appsv1.DaemonSet](t, objs, "DaemonSet", "podnet-system", "podnet-agent").Spec.Template.Spec
	base := get[*appsv1.DaemonSet](t, rendered(t), "DaemonSet", "podnet-system", "podnet-agent").Spec.Template.Spec
	var tun []v1.Volume
	for _, v := range got.Volumes {
		if !slices.ContainsFunc(base.Volumes, func(b v1.Volume) bool { return b.Name == v.Name }) {
			tun = append(tun, v)
		}
	}
	if len(tun) != 1 || tun[0].HostPath == nil || tun[0].HostPath.Path != "/dev/net/tun" ||
		ptr.Deref(tun[0].HostPath.Type, "") != v1.HostPathCharDev || len(got.Volumes) != len(base.Volumes)+1 {
		t.Fatalf("volumes added to the base's: %+v, want one hostPath /dev/net/tun of type CharDevice", tun)
	}
	for i, c := range got.Containers {
		var extra []string
		for _, m := range c.VolumeMounts {
			if !slices.ContainsFunc(base.Containers[i].VolumeMounts, func(b v1.VolumeMount) bool { return reflect.DeepEqual(b, m) }) {
				extra = append(extra, m.Name+" at "+m.MountPath)
			}
		}
		want := []string(nil)
		if c.Name == "agent" {
			want = []string{tun[0].Name + " at /dev/net/tun"}
		}
		if !slices.Equal(extra, want) || len(c.VolumeMounts) != len(base.Containers[i].VolumeMounts)+len(want) {
			t.Errorf("container %s: mounts added %v, want %v", c.Name, extra, want)
		}
		if sc := c.SecurityContext; sc == nil || ptr.Deref(sc.Privileged, false) || !reflect.DeepEqual(sc, base.Containers[i].SecurityContext) {
			t.Errorf("container %s: securityContext %+v, want the base's (not privileged)", c.Name, sc)
		}
	}
	for i, c := range got.InitContainers {
		if !reflect.DeepEqual(c, base.InitContainers[i]) {
			t.Errorf("init container %s changed", c.Name)
		}
	}
}
