package cni

// Fixture conventions: container IDs are short words ("abc") or the 64 hex
// digits a container runtime makes; interface names are eth0 and net1; the
// network is "podnet" unless a test is about network names.

import (
	"regexp"
	"strings"
	"testing"
)

const longContainerID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

var hostIfNameRE = regexp.MustCompile(`^pn[0-9a-f]{13}$`)

func TestHostIfName(t *testing.T) {
	tests := []struct {
		name        string
		containerID string
		ifName      string
		want        string // "" checks the shape only
	}{
		// Pinned values: DEL and GC of pods made by an older version find
		// their interfaces only if the name never changes.
		{"a short container ID has a pinned name", "abc", "eth0", "pn538f587a23655"},
		{"a hex container ID has a pinned name", "0123456789abcdef", "eth0", "pn60373cf9024df"},
		{"a runtime's 64-digit container ID gives a 15-byte name", longContainerID, "eth0", ""},
		{"an empty container ID still gives a 15-byte name", "", "eth0", ""},
		{"a container ID far above the kernel's limit still gives a 15-byte name", strings.Repeat("x", 4096), "net1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := HostIfName(tt.containerID, tt.ifName)
			if len(got) != 15 {
				t.Errorf("HostIfName = %q has %d bytes, want 15 (IFNAMSIZ-1)", got, len(got))
			}
			if !strings.HasPrefix(got, HostIfPrefix) || !hostIfNameRE.MatchString(got) {
				t.Errorf("HostIfName = %q, want %q and 13 lowercase hex digits", got, HostIfPrefix)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("HostIfName(%q, %q) = %q, want %q", tt.containerID, tt.ifName, got, tt.want)
			}
			if again := HostIfName(tt.containerID, tt.ifName); again != got {
				t.Errorf("HostIfName is not deterministic: %q then %q", got, again)
			}
		})
	}
}

func TestHostIfNameDiffers(t *testing.T) {
	base := HostIfName(longContainerID, "eth0")
	tests := []struct {
		name        string
		containerID string
		ifName      string
	}{
		{"another container ID gives another name", longContainerID[:63] + "0", "eth0"},
		{"another interface of the same container gives another name", longContainerID, "net1"},
		{"moving a byte between container ID and interface gives another name", longContainerID[:63], "feth0"},
		{"a container ID that is a prefix gives another name", longContainerID[:12], "eth0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HostIfName(tt.containerID, tt.ifName); got == base {
				t.Errorf("HostIfName(%q, %q) = %q, the same as for (%q, eth0)", tt.containerID, tt.ifName, got, longContainerID)
			}
		})
	}
}

func TestHostAliasRoundTrip(t *testing.T) {
	tests := []struct {
		name        string
		network     string
		containerID string
		ifName      string
	}{
		{"a runtime's container ID round-trips", "podnet", longContainerID, "eth0"},
		{"a short container ID on a second interface round-trips", "podnet", "abc", "net1"},
		{"a container ID with dots, dashes and underscores round-trips", "pod-net.v1", "k8s_pod-1.default_0", "eth0"},
		{"a container ID with a slash round-trips", "podnet", "ns/pod", "eth0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alias := hostAlias(tt.network, tt.containerID, tt.ifName)
			if len(alias) > 255 {
				t.Errorf("hostAlias = %d bytes, want at most 255 (IFALIASZ-1)", len(alias))
			}
			id, ifName, ok := parseAlias(tt.network, alias)
			if !ok || id != tt.containerID || ifName != tt.ifName {
				t.Errorf("parseAlias(%q, %q) = %q, %q, %v; want %q, %q, true", tt.network, alias, id, ifName, ok, tt.containerID, tt.ifName)
			}
		})
	}
}

func TestHostAliasIsTruncatedToTheKernelLimit(t *testing.T) {
	alias := hostAlias("podnet", strings.Repeat("x", 300), "eth0")
	if len(alias) != 255 {
		t.Errorf("hostAlias of a 300-byte container ID = %d bytes, want 255", len(alias))
	}
	if want := "podnet:podnet:eth0/xxx"; !strings.HasPrefix(alias, want) {
		t.Errorf("hostAlias = %q, want it to start with %q", alias, want)
	}
}

func TestParseAliasRejects(t *testing.T) {
	tests := []struct {
		name    string
		network string
		alias   string
	}{
		{"an alias of another network is not ours", "podnet", hostAlias("other", "abc", "eth0")},
		{"an alias of a network whose name starts like ours is not ours", "pod", hostAlias("podnet", "abc", "eth0")},
		{"an alias of a network whose name ours starts with is not ours", "podnet", hostAlias("pod", "abc", "eth0")},
		{"an empty alias is not ours", "podnet", ""},
		{"an alias that is only the prefix is not ours", "podnet", "podnet:podnet:"},
		{"an alias without a slash is not ours", "podnet", "podnet:podnet:eth0"},
		{"an alias without an interface name is not ours", "podnet", "podnet:podnet:/abc"},
		{"an alias without a container ID is not ours", "podnet", "podnet:podnet:eth0/"},
		{"an alias of someone else is not ours", "podnet", "uplink to the core switch"},
		{"an alias of network a:b is not network a's", "a", hostAlias("a:b", "abc", "eth0")},
		{"an alias cut at the kernel limit is not trusted", "podnet", hostAlias("podnet", strings.Repeat("x", 300), "eth0")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if id, ifName, ok := parseAlias(tt.network, tt.alias); ok {
				t.Errorf("parseAlias(%q, %q) = %q, %q, true; want not ok", tt.network, tt.alias, id, ifName)
			}
		})
	}
}

func TestRandomMAC(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		mac, err := randomMAC()
		if err != nil {
			t.Fatalf("randomMAC: %v", err)
		}
		if len(mac) != 6 {
			t.Fatalf("randomMAC = %s, %d bytes, want 6", mac, len(mac))
		}
		if mac[0]&0x02 == 0 {
			t.Errorf("randomMAC = %s is not locally administered (bit 1 of the first byte is clear)", mac)
		}
		if mac[0]&0x01 != 0 {
			t.Errorf("randomMAC = %s is multicast (bit 0 of the first byte is set)", mac)
		}
		seen[mac.String()] = true
	}
	// 46 random bits: a repeat in 1000 draws has a chance of about 1e-8.
	if len(seen) != 1000 {
		t.Errorf("randomMAC returned %d distinct addresses in 1000 calls, want 1000", len(seen))
	}
}
