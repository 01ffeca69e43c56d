package plan

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// underlay is what SetNodeNetwork derives, as text.
type underlay struct{ network, root, firstNode, world, lbPool string }

func underlayOf(c *Config) underlay {
	return underlay{c.NodeNetwork.String(), c.RootIP.String(), c.FirstNodeIP.String(), c.WorldIP.String(), c.LBPool.String()}
}

func TestSetNodeNetworkDerivesTheUnderlayAddresses(t *testing.T) {
	for _, tc := range []struct {
		name, network string
		want          underlay
		err           string
	}{
		{name: "the default node network", network: "172.30.0.0/24",
			want: underlay{"172.30.0.0/24", "172.30.0.1", "172.30.0.11", "172.30.0.254", "172.30.0.200/29"}},
		{name: "another /24", network: "10.7.33.0/24",
			want: underlay{"10.7.33.0/24", "10.7.33.1", "10.7.33.11", "10.7.33.254", "10.7.33.200/29"}},
		{name: "host bits are cleared", network: "192.168.7.9/24",
			want: underlay{"192.168.7.0/24", "192.168.7.1", "192.168.7.11", "192.168.7.254", "192.168.7.200/29"}},
		{name: "a /16 is refused", network: "172.30.0.0/16", err: "node network 172.30.0.0/16: want an IPv4 /24"},
		{name: "a /25 is refused (no room for the world at .254)", network: "172.30.0.0/25", err: "want an IPv4 /24"},
		{name: "IPv6 is refused", network: "fd00:30::/120", err: "want an IPv4 /24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig("pnt")
			before := *c
			err := c.SetNodeNetwork(netip.MustParsePrefix(tc.network))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("SetNodeNetwork(%s) = %v, want an error containing %q", tc.network, err, tc.err)
				}
				if !reflect.DeepEqual(*c, before) {
					t.Errorf("a refused SetNodeNetwork changed the config:\n%+v", *c)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := underlayOf(c); got != tc.want {
				t.Errorf("SetNodeNetwork(%s) derived\n  %+v\nwant\n  %+v", tc.network, got, tc.want)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("the derived plan is invalid: %v", err)
			}
		})
	}
}

func TestSetWorldNetworkPutsItsDNSServerAt53(t *testing.T) {
	for _, tc := range []struct {
		name, network string
		wantNet, dns  string
		err           string
	}{
		{name: "the default world", network: "203.0.113.0/24", wantNet: "203.0.113.0/24", dns: "203.0.113.53"},
		{name: "TEST-NET-2", network: "198.51.100.0/24", wantNet: "198.51.100.0/24", dns: "198.51.100.53"},
		{name: "a larger world", network: "198.18.0.0/15", wantNet: "198.18.0.0/15", dns: "198.18.0.53"},
		{name: "the smallest world that holds .53", network: "198.18.7.64/26", wantNet: "198.18.7.64/26", dns: "198.18.7.117"},
		{name: "host bits are cleared", network: "198.51.100.77/24", wantNet: "198.51.100.0/24", dns: "198.51.100.53"},
		{name: "a /27 is refused", network: "198.18.7.0/27", err: "prefix length of at most 26"},
		{name: "IPv6 is refused", network: "2001:db8::/64", err: "want IPv4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig("pnt")
			before := *c
			err := c.SetWorldNetwork(netip.MustParsePrefix(tc.network))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("SetWorldNetwork(%s) = %v, want an error containing %q", tc.network, err, tc.err)
				}
				if !reflect.DeepEqual(*c, before) {
					t.Errorf("a refused SetWorldNetwork changed the config:\n%+v", *c)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.WorldNetwork.String() != tc.wantNet || c.WorldDNSIP.String() != tc.dns {
				t.Errorf("SetWorldNetwork(%s): world %s, DNS %s; want %s, %s", tc.network, c.WorldNetwork, c.WorldDNSIP, tc.wantNet, tc.dns)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("the derived plan is invalid: %v", err)
			}
		})
	}
}

func TestSetRangesTakesTheFlagsAsGiven(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ranges Ranges
		check  func(c *Config) string // "" when the config is right
		err    []string
	}{
		{name: "no flags keep the default plan", check: func(c *Config) string {
			if !reflect.DeepEqual(*c, *DefaultConfig("pnt")) {
				return "the config changed"
			}
			return ""
		}},
		{name: "every flag", ranges: Ranges{PodCIDR: "10.160.0.0/16", ServiceCIDR: "10.161.0.0/16", NodeNetwork: "172.29.0.0/24", WorldNetwork: "198.51.100.0/24"},
			check: func(c *Config) string {
				got := strings.Join([]string{c.PodCIDR.String(), c.ServiceCIDR.String(), c.RootIP.String(), c.FirstNodeIP.String(),
					c.WorldIP.String(), c.LBPool.String(), c.WorldDNSIP.String()}, " ")
				if want := "10.160.0.0/16 10.161.0.0/16 172.29.0.1 172.29.0.11 172.29.0.254 172.29.0.200/29 198.51.100.53"; got != want {
					return "got " + got + ", want " + want
				}
				return ""
			}},
		{name: "host bits of the pod and service CIDRs are cleared", ranges: Ranges{PodCIDR: "10.160.3.4/16", ServiceCIDR: "10.161.9.9/16"},
			check: func(c *Config) string {
				if c.PodCIDR.String() != "10.160.0.0/16" || c.ServiceCIDR.String() != "10.161.0.0/16" {
					return "got " + c.PodCIDR.String() + " and " + c.ServiceCIDR.String()
				}
				return ""
			}},
		{name: "a bad value names its flag", ranges: Ranges{PodCIDR: "10.160.0.0"},
			err: []string{`--pod-cidr "10.160.0.0": not a CIDR prefix`}},
		{name: "every bad flag is reported", ranges: Ranges{ServiceCIDR: "x", NodeNetwork: "172.29.0.0/16", WorldNetwork: "198.51.100.0/28"},
			err: []string{`--service-cidr "x"`, `--node-network "172.29.0.0/16": want an IPv4 /24`, `--world-network "198.51.100.0/28"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig("pnt")
			err := c.SetRanges(tc.ranges)
			if len(tc.err) > 0 {
				if err == nil {
					t.Fatalf("SetRanges(%+v) accepted it", tc.ranges)
				}
				if n := strings.Count(err.Error(), "; ") + 1; n != len(tc.err) || strings.Contains(err.Error(), "\n") {
					t.Errorf("got %d problems, want %d on one line:\n%v", n, len(tc.err), err)
				}
				for _, want := range tc.err {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q lacks %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tc.check(c); msg != "" {
				t.Error(msg)
			}
		})
	}
}
