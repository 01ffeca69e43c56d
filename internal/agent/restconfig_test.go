package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAPIServerAddressReplacesTheConfiguredOne: --apiserver-host/-port
// (ConfigMap keys apiserver-host/-port) point a hostNetwork agent at the
// API server itself instead of the kubernetes Service's ClusterIP.
func TestAPIServerAddressReplacesTheConfiguredOne(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://10.96.0.1:443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, host, port, want, err string
	}{
		{"unset keeps the configured server", "", "", "https://10.96.0.1:443", ""},
		{"an IPv4 host and port", "192.0.2.10", "6443", "https://192.0.2.10:6443", ""},
		{"an IPv6 host", "fd00::10", "6443", "https://[fd00::10]:6443", ""},
		{"a name", "cp.example", "443", "https://cp.example:443", ""},
		{"a host without port", "192.0.2.10", "", "", "go together"},
		{"a port without host", "", "6443", "", "go together"},
		{"a port that is no number", "192.0.2.10", "https", "", "not a port number"},
		{"port 0", "192.0.2.10", "0", "", "not a port number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := restConfig(Config{Kubeconfig: kubeconfig, NodeName: "n1", APIServerHost: tc.host, APIServerPort: tc.port})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rc.Host != tc.want || rc.UserAgent != "podnet-agent/n1" {
				t.Errorf("host %q, agent %q; want %q", rc.Host, rc.UserAgent, tc.want)
			}
		})
	}
}
