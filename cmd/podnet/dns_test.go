package main

import (
	"strings"
	"testing"
)

func TestDNSCommandFlags(t *testing.T) {
	root := newRootCommand()
	cmd, _, err := root.Find([]string{"dns"})
	if err != nil || cmd.Name() != "dns" {
		t.Fatalf("podnet dns is not registered: %v", err)
	}
	for flag, want := range map[string]string{
		"listen": ":53", "zone": "cluster.local", "ttl": "30", "pods": "insecure", "upstream": "[]",
		"cache-size": "10000", "max-concurrent-upstream": "1000", "health-listen": ":8080", "kubeconfig": "",
	} {
		f := cmd.Flags().Lookup(flag)
		if f == nil {
			t.Errorf("--%s is missing", flag)
			continue
		}
		if f.DefValue != want {
			t.Errorf("--%s defaults to %q, want %q", flag, f.DefValue, want)
		}
		if !strings.Contains(f.Usage, "CoreDNS") {
			t.Errorf("--%s's help does not name its CoreDNS equivalent", flag)
		}
	}
}

func TestDNSCommandRejectsBadFlagsBeforeConnecting(t *testing.T) {
	root := newRootCommand()
	root.SetArgs([]string{"dns", "--pods", "sometimes", "--upstream", "192.0.2.1:53,nonsense", "--kubeconfig", "/nonexistent"})
	err := root.Execute()
	if err == nil {
		t.Fatal("no error")
	}
	for _, part := range []string{`pod mode "sometimes"`, `upstream "nonsense"`} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not mention %s", err, part)
		}
	}
}
