package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/podnet/podnet/deploy"
)

// manifestObjects are deploy/podnet.yaml and the cleanup DaemonSet.
func manifestObjects(t *testing.T) []deploy.Object {
	t.Helper()
	cleanup, err := os.ReadFile("../../deploy/cleanup/cleanup.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := deploy.Decode(append(append(slices.Clone(deploy.Rendered), "\n---\n"...), cleanup...))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand substitutes $(VAR) in args as the kubelet does, from the
// container's env: ConfigMap keys get the ConfigMap's value, fieldRefs a
// plausible one. A reference to an undefined variable is an error (the
// kubelet would pass it on as text).
func expand(t *testing.T, objs []deploy.Object, o deploy.Object, c v1.Container) []string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = map[string]string{"spec.nodeName": "node-1", "metadata.namespace": o.Namespace}[e.ValueFrom.FieldRef.FieldPath]
		case e.ValueFrom.ConfigMapKeyRef != nil:
			cm, _ := deploy.Find(objs, "ConfigMap", o.Namespace, e.ValueFrom.ConfigMapKeyRef.Name).(*v1.ConfigMap)
			if cm == nil {
				t.Fatalf("%s: no ConfigMap %s", e.Name, e.ValueFrom.ConfigMapKeyRef.Name)
			}
			env[e.Name] = cm.Data[e.ValueFrom.ConfigMapKeyRef.Key]
		}
	}
	var out []string
	for _, a := range c.Args {
		out = append(out, varRef.ReplaceAllStringFunc(a, func(ref string) string {
			v, ok := env[varRef.FindStringSubmatch(ref)[1]]
			if !ok {
				t.Errorf("%s: %s is not in the container's env", c.Name, ref)
			}
			return v
		}))
	}
	return out
}

// TestManifestArgsAreRealFlagsOfPodnet parses every podnet container's
// command and args (with the ConfigMaps' values) with podnet's own command
// tree: an unknown flag, a value of the wrong type or a stray argument
// fails here instead of in a CrashLoopBackOff.
func TestManifestArgsAreRealFlagsOfPodnet(t *testing.T) {
	objs := manifestObjects(t)
	seen := map[string]bool{}
	for _, o := range objs {
		spec, ok := o.PodSpec()
		if !ok {
			continue
		}
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			if len(c.Command) == 0 || c.Command[0] != "podnet" {
				continue
			}
			t.Run(o.Name+"/"+c.Name, func(t *testing.T) {
				args := append(slices.Clone(c.Command[1:]), expand(t, objs, o, c)...)
				cmd, rest, err := newRootCommand().Find(args)
				if err != nil || cmd.Name() != c.Command[1] {
					t.Fatalf("%v: no command %s (%v)", args, c.Command[1], err)
				}
				if err := cmd.ParseFlags(rest); err != nil {
					t.Fatalf("podnet %s %v: %v", cmd.Name(), rest, err)
				}
				if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
					t.Errorf("podnet %s: %v", cmd.Name(), err)
				}
				seen[cmd.Name()] = true
			})
		}
	}
	for _, want := range []string{"agent", "install-cni", "controller", "dns", "cleanup-node"} {
		if !seen[want] {
			t.Errorf("no manifest runs podnet %s", want)
		}
	}
}

// TestConfigMapKeysAreFlagNames: a key of podnet-system/podnet-config is
// the agent flag of that name, one of kube-system/podnet-config is "dns-"
// and the dns flag, so the docs' table and the flags' help agree.
func TestConfigMapKeysAreFlagNames(t *testing.T) {
	objs := manifestObjects(t)
	for _, tc := range []struct{ ns, command, prefix string }{
		{"podnet-system", "agent", ""},
		{"kube-system", "dns", "dns-"},
	} {
		cm, _ := deploy.Find(objs, "ConfigMap", tc.ns, "podnet-config").(*v1.ConfigMap)
		if cm == nil {
			t.Fatalf("no ConfigMap %s/podnet-config", tc.ns)
		}
		cmd, _, err := newRootCommand().Find([]string{tc.command})
		if err != nil {
			t.Fatal(err)
		}
		for k := range cm.Data {
			name, ok := strings.CutPrefix(k, tc.prefix)
			if !ok || cmd.Flags().Lookup(name) == nil {
				t.Errorf("%s/podnet-config key %s is not %s a flag of podnet %s", tc.ns, k, tc.prefix+"+", tc.command)
			}
		}
	}
}
