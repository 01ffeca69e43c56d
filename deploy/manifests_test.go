package deploy

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite podnet.yaml from the kustomize build of deploy/ (make deploy-render)")

// manifestFiles are every YAML file under deploy/, kustomization files
// apart.
func manifestFiles(t *testing.T) (manifests, kustomizations []string) {
	t.Helper()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		if d.Name() == "kustomization.yaml" {
			kustomizations = append(kustomizations, path)
		} else {
			manifests = append(manifests, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(manifests) < 10 || len(kustomizations) < 4 {
		t.Fatalf("found only %v and %v", manifests, kustomizations)
	}
	return manifests, kustomizations
}

func TestEveryManifestDecodesStrictlyIntoItsTypedObject(t *testing.T) {
	manifests, kustomizations := manifestFiles(t)
	for _, path := range manifests {
		t.Run(path, func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) == 0 {
				t.Fatal("no object")
			}
		})
	}
	for _, path := range kustomizations {
		t.Run(path, func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var k types.Kustomization
			if err := yaml.UnmarshalStrict(b, &k); err != nil {
				t.Fatal(err)
			}
			// A component (deploy/components) patches what an overlay's
			// resources hold; a kustomization has resources.
			switch inComponents := strings.HasPrefix(path, "components"+string(filepath.Separator)); {
			case inComponents && (k.Kind != types.ComponentKind || len(k.Patches) == 0 || len(k.Resources) != 0):
				t.Errorf("kind %q, patches %d, resources %v: want a Component of patches", k.Kind, len(k.Patches), k.Resources)
			case !inComponents && (k.Kind != types.KustomizationKind || len(k.Resources) == 0):
				t.Errorf("kind %q, resources %v", k.Kind, k.Resources)
			}
		})
	}
}

func TestDecodeRefusesWhatAClusterWouldNotRead(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"an unknown field", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndatas: {}\n", `unknown field "datas"`},
		{"a misplaced field", "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: a}\nspec: {hostNetwork: true}\n", `unknown field "hostNetwork"`},
		{"an unknown kind", "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\n", "unknown kind v1 Secret"},
		{"no kind", "metadata: {name: a}\n", "no apiVersion and kind"},
		{"no name", "apiVersion: v1\nkind: ConfigMap\n", "ConfigMap without a name"},
		{"a duplicate field", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {}\ndata: {}\n", `key "data" already set`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte("# a comment only\n---\n" + tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
	objs, err := Decode([]byte("# comments only\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: b}\n"))
	if err != nil || len(objs) != 1 || Find(objs, "ConfigMap", "b", "a") == nil {
		t.Errorf("a valid file: %v, %v", objs, err)
	}
}

// build is `kubectl kustomize deploy` through the same library (kubectl
// 1.37 uses kustomize/api v0.21.1, the version go.mod pins) with kubectl's
// legacy order: Namespaces and CRDs first, workloads last.
func build(t *testing.T) []byte {
	t.Helper()
	opts := krusty.MakeDefaultOptions()
	opts.Reorder = krusty.ReorderOptionLegacy
	m, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), ".")
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRenderedManifestIsTheKustomizeBuildOfDeploy(t *testing.T) {
	got := build(t)
	if *update {
		if err := os.WriteFile("podnet.yaml", got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("podnet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("deploy/podnet.yaml is not the kustomize build of deploy/: run make deploy-render")
	}
	if !bytes.Equal(want, Rendered) {
		t.Errorf("the embedded Rendered differs from podnet.yaml")
	}
	objs, err := Decode(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct{ kind, ns, name string }{
		{"Namespace", "", "podnet-system"},
		{"CustomResourceDefinition", "", "loadbalancerippools.lb.podnet.io"},
		{"ConfigMap", "podnet-system", "podnet-config"},
		{"ConfigMap", "kube-system", "podnet-config"},
		{"DaemonSet", "podnet-system", "podnet-agent"},
		{"Deployment", "podnet-system", "podnet-lb-controller"},
		{"Deployment", "kube-system", "podnet-dns"},
		{"Service", "kube-system", "kube-dns"},
		{"PodDisruptionBudget", "kube-system", "podnet-dns"},
	} {
		if Find(objs, w.kind, w.ns, w.name) == nil {
			t.Errorf("the build has no %s %s/%s", w.kind, w.ns, w.name)
		}
	}
}
