package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// writeKubeconfig writes a kubeconfig whose current context has namespace
// ns ("" for none) and returns its path.
func writeKubeconfig(t *testing.T, path, ns string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1"}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "t"}
	cfg.Contexts["ctx"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u", Namespace: ns}
	cfg.Contexts["other"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u", Namespace: "not-current"}
	cfg.CurrentContext = "ctx"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestKubeconfigNamespace(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, path, want string
	}{
		{"the current context's namespace", writeKubeconfig(t, filepath.Join(dir, "shop"), "shop"), "shop"},
		{"a current context without a namespace is default", writeKubeconfig(t, filepath.Join(dir, "none"), ""), "default"},
		{"a missing kubeconfig is default", filepath.Join(dir, "missing"), "default"},
		{"no kubeconfig is default", "", "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := kubeconfigNamespace(tc.path); got != tc.want {
				t.Errorf("kubeconfigNamespace = %q, want %q", got, tc.want)
			}
		})
	}
}

// exec, logs and probe take -n from the local cluster's admin kubeconfig,
// as kubectl (and `podnet kubectl`) would: a context set with
// `podnet kubectl -- config set-context --current --namespace shop` counts.
func TestNamespaceDefaultsToTheClusterKubeconfig(t *testing.T) {
	cf := &clusterFlags{name: "nstest", stateDir: t.TempDir()}
	writeKubeconfig(t, filepath.Join(cf.stateDir, "kubeconfig"), "shop")
	nsf := &namespaceFlag{kubeconfig: cf.kubeconfig}
	if got := nsf.get(); got != "shop" {
		t.Errorf("-n not given: %q, want shop", got)
	}
	nsf.value = "other"
	if got := nsf.get(); got != "other" {
		t.Errorf("-n other: %q", got)
	}

	// Every command that names a pod leaves -n empty until it runs.
	root := newRootCommand()
	for _, name := range []string{"exec", "logs", "probe", "trace"} {
		c, _, err := root.Find([]string{name})
		if err != nil {
			t.Fatal(err)
		}
		f := c.Flags().ShorthandLookup("n")
		if f == nil || f.Name != "namespace" || f.DefValue != "" || !strings.Contains(f.Usage, "current-context namespace") {
			t.Errorf("podnet %s -n: %+v, want --namespace defaulting to the kubeconfig's", name, f)
		}
	}
}

func TestProbeNamespaceDefault(t *testing.T) {
	kc := writeKubeconfig(t, filepath.Join(t.TempDir(), "kubeconfig"), "shop")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"web", "127.0.0.1:1"}, "shop"},
		{[]string{"-n", "other", "web", "127.0.0.1:1"}, "other"},
	} {
		var got string
		cmd := newProbeCommandWith(func() string { return kc }, func(_ *cobra.Command, ns, _ string) (string, error) {
			got = ns
			return "", errorsNotFound
		}, func() (kubernetes.Interface, error) { return nil, errors.New("no client needed") })
		cmd.SetArgs(tc.args)
		cmd.SilenceErrors, cmd.SilenceUsage = true, true
		_ = cmd.Execute()
		if got != tc.want {
			t.Errorf("probe %v looked in namespace %q, want %q", tc.args, got, tc.want)
		}
	}
}

var errorsNotFound = errors.New("not found") // the probe stops after the lookup

// A target named without NS is in -n's namespace, as with trace; NS/pod/NAME
// names another.
func TestProbeTargetNamespace(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", "other", "web", "pod/api:80"}, `pod other/api: pods "api" not found`},
		{[]string{"-n", "other", "web", "default/pod/api:80"}, "found default/api"},
	} {
		cmd := newProbeCommandWith(func() string { return "" }, func(*cobra.Command, string, string) (string, error) {
			return "", errors.New("found default/api")
		}, func() (kubernetes.Interface, error) { return fake.NewClientset(probeObjects(t)...), nil })
		cmd.SetArgs(tc.args)
		cmd.SilenceErrors, cmd.SilenceUsage = true, true
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("probe %v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// trace takes -n from --kubeconfig when given, else from the local
// cluster's kubeconfig.
func TestTraceNamespaceDefault(t *testing.T) {
	dir := t.TempDir()
	local := writeKubeconfig(t, filepath.Join(dir, "local"), "shop")
	other := writeKubeconfig(t, filepath.Join(dir, "other"), "default")
	run := func(args ...string) error {
		cmd := newTraceCommandWith(func() string { return local }, func(string) (kubernetes.Interface, error) {
			return fake.NewClientset(traceObjects()...), nil
		})
		cmd.SetArgs(args)
		cmd.SilenceErrors, cmd.SilenceUsage = true, true
		return cmd.Execute()
	}
	if err := run("client", "web-1"); err == nil || !strings.Contains(err.Error(), "pod shop/client not found") {
		t.Errorf("trace without -n: %v, want it to look in shop (the local kubeconfig's namespace)", err)
	}
	if err := run("--kubeconfig", other, "web-1", "client"); err != nil {
		t.Errorf("trace --kubeconfig OTHER: %v, want default/web-1 -> default/client allowed", err)
	}
	if err := run("--kubeconfig", other, "-n", "shop", "web-1", "client"); err == nil || !strings.Contains(err.Error(), "pod shop/web-1 not found") {
		t.Errorf("trace -n shop: %v, want it to look in shop", err)
	}
}
