package cni

// Fixture conventions for the config tests:
//
//	name "podnet", type "podnet-cni", cniVersion "1.1.0"  unless a test is about them
//	10.244.1.0/24, 10.244.2.0/24    IPv4 pod subnets
//	fd00:10:244:1::/64              the IPv6 pod subnet
//	192.0.2.0/24                    TEST-NET-1: outside every range
//
// netConf builds a config from the fields after the standard ones, so a
// test shows only what it is about. Expected range sets are built through
// ipam.RangeSet.Validate, the constructor ParseConfig itself uses.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/podnet/podnet/internal/ipam"
)

// netConf returns a config with the standard fields and the given extra
// JSON fields (without braces).
func netConf(fields string) string {
	c := `{"cniVersion": "1.1.0", "name": "podnet", "type": "podnet-cni"`
	if fields != "" {
		c += ", " + fields
	}
	return c + "}"
}

const (
	v4Ranges   = `"ranges": [[{"subnet": "10.244.1.0/24"}]]`
	dualRanges = `"ranges": [[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:10:244:1::/64"}]]`
)

// mustParse parses a config that must be valid.
func mustParse(t *testing.T, data string) *NetConf {
	t.Helper()
	conf, err := ParseConfig([]byte(data))
	if err != nil {
		t.Fatalf("ParseConfig(%s): unexpected error: %v", data, err)
	}
	return conf
}

// wantSet builds a validated range set from subnets or "subnet start end
// gateway" specs ("-" leaves a field to its default).
func wantSet(t *testing.T, specs ...string) ipam.RangeSet {
	t.Helper()
	var set ipam.RangeSet
	for _, spec := range specs {
		f := strings.Fields(spec)
		r := ipam.Range{Subnet: netip.MustParsePrefix(f[0])}
		for i, dst := range []*netip.Addr{&r.Start, &r.End, &r.Gateway} {
			if len(f) > i+1 && f[i+1] != "-" {
				*dst = netip.MustParseAddr(f[i+1])
			}
		}
		set = append(set, r)
	}
	if err := set.Validate(); err != nil {
		t.Fatalf("Validate(%v): %v", specs, err)
	}
	return set
}

// checkSets compares parsed range sets with want.
func checkSets(t *testing.T, got, want []ipam.RangeSet) {
	t.Helper()
	if !slices.EqualFunc(got, want, func(a, b ipam.RangeSet) bool { return slices.Equal(a, b) }) {
		t.Errorf("Sets:\n got %s\nwant %s", formatSets(got), formatSets(want))
	}
}

func formatSets(sets []ipam.RangeSet) string {
	var parts []string
	for _, set := range sets {
		var rs []string
		for i := range set {
			rs = append(rs, fmt.Sprintf("%s gw %s", &set[i], set[i].Gateway))
		}
		parts = append(parts, "["+strings.Join(rs, ", ")+"]")
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// checkConfigError checks that err is a *types.Error with code whose
// message is one line holding every substring of want.
func checkConfigError(t testing.TB, err error, code uint, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("ParseConfig succeeded, want error code %d containing %q", code, want)
	}
	var terr *types.Error
	if !errors.As(err, &terr) {
		t.Fatalf("ParseConfig error %v (%T) is not a *types.Error", err, err)
	}
	if terr.Code != code {
		t.Errorf("error code = %d, want %d (message %q)", terr.Code, code, terr.Msg)
	}
	if strings.ContainsAny(terr.Msg, "\r\n") {
		t.Errorf("error message spans several lines: %q", terr.Msg)
	}
	for _, w := range want {
		if !strings.Contains(terr.Msg, w) {
			t.Errorf("error message %q does not contain %q", terr.Msg, w)
		}
	}
}

// failRecorder is a testing.TB that records failures instead of reporting
// them, to test that the comparison helpers can fail.
type failRecorder struct {
	testing.TB
	failed bool
}

func (r *failRecorder) Helper()               {}
func (r *failRecorder) Errorf(string, ...any) { r.failed = true }
func (r *failRecorder) Fatalf(string, ...any) { r.failed = true; runtime.Goexit() }

func TestCheckConfigErrorCatchesMismatches(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		code     uint
		want     string
		wantFail bool
	}{
		{"a matching error passes", types.NewError(7, "x y", ""), 7, "y", false},
		{"a nil error fails", nil, 7, "", true},
		{"an error of another type fails", errors.New("boom"), 7, "boom", true},
		{"a wrong code fails", types.NewError(6, "x", ""), 7, "x", true},
		{"a missing substring fails", types.NewError(7, "x", ""), 7, "y", true},
		{"a message on two lines fails", types.NewError(7, "x\ny", ""), 7, "x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &failRecorder{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				checkConfigError(r, tt.err, tt.code, tt.want)
			}()
			<-done
			if r.failed != tt.wantFail {
				t.Errorf("checkConfigError(%v, %d, %q) failed = %v, want %v", tt.err, tt.code, tt.want, r.failed, tt.wantFail)
			}
		})
	}
}

func TestParseConfigMinimalGetsDefaults(t *testing.T) {
	conf := mustParse(t, netConf(v4Ranges))
	if conf.Name != "podnet" || conf.CNIVersion != "1.1.0" || conf.Type != "podnet-cni" {
		t.Errorf("standard fields = %q %q %q, want podnet 1.1.0 podnet-cni", conf.Name, conf.CNIVersion, conf.Type)
	}
	if conf.DataDir != DefaultDataDir {
		t.Errorf("DataDir = %q, want the default %q", conf.DataDir, DefaultDataDir)
	}
	if conf.MTU != DefaultMTU {
		t.Errorf("MTU = %d, want the default %d", conf.MTU, DefaultMTU)
	}
	checkSets(t, conf.Sets, []ipam.RangeSet{wantSet(t, "10.244.1.0/24")})
	if got := conf.Sets[0][0]; got.Start.String() != "10.244.1.1" || got.End.String() != "10.244.1.254" || got.Gateway.String() != "10.244.1.1" {
		t.Errorf("range = %s gateway %s, want 10.244.1.1-10.244.1.254 gateway 10.244.1.1", &got, got.Gateway)
	}
	if conf.Excluded != nil {
		t.Errorf("Excluded = %v, want none", conf.Excluded)
	}
}

func TestParseConfigValid(t *testing.T) {
	tests := []struct {
		name        string
		config      string
		wantSets    []string // one entry per set: specs separated by ","
		wantMTU     int
		wantDataDir string
		wantExclude []string
	}{
		{
			name:     "dual-stack gives one IPv4 and one IPv6 set",
			config:   netConf(dualRanges),
			wantSets: []string{"10.244.1.0/24", "fd00:10:244:1::/64"},
		},
		{
			name:     "IPv6 first keeps the order of the config",
			config:   netConf(`"ranges": [[{"subnet": "fd00:10:244:1::/64"}], [{"subnet": "10.244.1.0/24"}]]`),
			wantSets: []string{"fd00:10:244:1::/64", "10.244.1.0/24"},
		},
		{
			name: "explicit bounds, gateway, mtu and dataDir are kept",
			config: netConf(`"mtu": 9000, "dataDir": "/run/podnet", "ranges": [[
				{"subnet": "10.244.1.0/24", "rangeStart": "10.244.1.10", "rangeEnd": "10.244.1.99", "gateway": "10.244.1.254"}]]`),
			wantSets:    []string{"10.244.1.0/24 10.244.1.10 10.244.1.99 10.244.1.254"},
			wantMTU:     9000,
			wantDataDir: "/run/podnet",
		},
		{
			name:     "several ranges of one set are kept in order",
			config:   netConf(`"ranges": [[{"subnet": "10.244.2.0/24"}, {"subnet": "10.244.1.0/24", "rangeStart": "10.244.1.100"}]]`),
			wantSets: []string{"10.244.2.0/24, 10.244.1.0/24 10.244.1.100"},
		},
		{
			name:     "IPv4-mapped range addresses are read as IPv4",
			config:   netConf(`"ranges": [[{"subnet": "10.244.1.0/24", "rangeStart": "::ffff:10.244.1.10", "gateway": "::ffff:10.244.1.1"}]]`),
			wantSets: []string{"10.244.1.0/24 10.244.1.10 - 10.244.1.1"},
		},
		{
			name:     "IPv6 accepts its minimum mtu of 1280",
			config:   netConf(`"mtu": 1280, ` + dualRanges),
			wantSets: []string{"10.244.1.0/24", "fd00:10:244:1::/64"},
			wantMTU:  1280,
		},
		{
			name:     "IPv4 alone accepts the minimum mtu of 68",
			config:   netConf(`"mtu": 68, ` + v4Ranges),
			wantSets: []string{"10.244.1.0/24"},
			wantMTU:  68,
		},
		{
			name:     "the maximum mtu of 65535 is accepted",
			config:   netConf(`"mtu": 65535, ` + dualRanges),
			wantSets: []string{"10.244.1.0/24", "fd00:10:244:1::/64"},
			wantMTU:  65535,
		},
		{
			name: "addresses and prefixes are excluded, prefixes masked and mapped addresses unmapped",
			config: netConf(dualRanges + `, "exclude": ["10.244.1.10", "10.244.1.64/26", "10.244.1.130/25",
				"fd00:10:244:1::5", "fd00:10:244:1::1:0/112", "::ffff:10.244.1.11"]`),
			wantSets: []string{"10.244.1.0/24", "fd00:10:244:1::/64"},
			wantExclude: []string{"10.244.1.10/32", "10.244.1.64/26", "10.244.1.128/25",
				"fd00:10:244:1::5/128", "fd00:10:244:1::1:0/112", "10.244.1.11/32"},
		},
		{
			name:     "an ipam section without a type is accepted",
			config:   netConf(`"ipam": {}, ` + v4Ranges),
			wantSets: []string{"10.244.1.0/24"},
		},
		{
			name:     "unknown fields and runtime fields are ignored",
			config:   netConf(`"somethingElse": true, "runtimeConfig": {"portMappings": []}, "prevResult": {"cniVersion": "1.1.0"}, ` + v4Ranges),
			wantSets: []string{"10.244.1.0/24"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := mustParse(t, tt.config)
			var want []ipam.RangeSet
			for _, s := range tt.wantSets {
				want = append(want, wantSet(t, strings.Split(s, ",")...))
			}
			checkSets(t, conf.Sets, want)
			wantMTU, wantDataDir := cmp(tt.wantMTU, DefaultMTU), cmp(tt.wantDataDir, DefaultDataDir)
			if conf.MTU != wantMTU {
				t.Errorf("MTU = %d, want %d", conf.MTU, wantMTU)
			}
			if conf.DataDir != wantDataDir {
				t.Errorf("DataDir = %q, want %q", conf.DataDir, wantDataDir)
			}
			var gotExclude []string
			for _, p := range conf.Excluded {
				gotExclude = append(gotExclude, p.String())
			}
			if !slices.Equal(gotExclude, tt.wantExclude) {
				t.Errorf("Excluded = %v, want %v", gotExclude, tt.wantExclude)
			}
		})
	}
}

// cmp returns v, or def when v is the zero value.
func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func TestParseConfigRejects(t *testing.T) {
	const (
		decode  = types.ErrDecodingFailure      // 6
		invalid = types.ErrInvalidNetworkConfig // 7
	)
	tests := []struct {
		name   string
		config string
		code   uint
		want   []string
	}{
		{"truncated JSON cannot be decoded", `{"name": "podnet", "ranges": [[`, decode, []string{"cannot decode network config"}},
		{"an empty input cannot be decoded", ``, decode, []string{"cannot decode network config"}},
		{"a JSON array cannot be decoded", `[]`, decode, []string{"cannot decode network config"}},
		{"an mtu given as a string cannot be decoded", netConf(`"mtu": "1500", ` + v4Ranges), decode, []string{"cannot decode network config", "mtu"}},
		{"ranges given as one object cannot be decoded", netConf(`"ranges": {"subnet": "10.244.1.0/24"}`), decode, []string{"cannot decode network config", "ranges"}},

		{"a missing name is invalid", `{"cniVersion": "1.1.0", "type": "podnet-cni", ` + v4Ranges + `}`, invalid, []string{"invalid network config", "name is missing"}},
		{"an empty JSON object lacks a name", `{}`, invalid, []string{"name is missing"}},
		{"JSON null lacks a name", `null`, invalid, []string{"name is missing"}},
		{"a relative dataDir is invalid", netConf(`"dataDir": "var/lib/cni", ` + v4Ranges), invalid, []string{`dataDir "var/lib/cni" must be an absolute path`}},
		{"an ipam type is invalid because podnet allocates itself", netConf(`"ipam": {"type": "host-local"}, ` + v4Ranges), invalid, []string{`ipam type "host-local" is not supported`, `put "ranges" at the top level`}},
		{"missing ranges are invalid", netConf(``), invalid, []string{"ranges is missing"}},
		{"an empty list of ranges is invalid", netConf(`"ranges": []`), invalid, []string{"ranges is missing"}},
		{"an empty range set is invalid", netConf(`"ranges": [[]]`), invalid, []string{"ranges[0]: range set is empty"}},
		{"a null range set is invalid", netConf(`"ranges": [[{"subnet": "10.244.1.0/24"}], null]`), invalid, []string{"ranges[1]: range set is empty"}},
		{"a range without a subnet is invalid", netConf(`"ranges": [[{"rangeStart": "10.244.1.10"}]]`), invalid, []string{"ranges[0]: range 0: subnet is missing"}},
		{"an unparsable subnet is invalid", netConf(`"ranges": [[{"subnet": "10.244.1.0/33"}]]`), invalid, []string{`ranges[0]: range 0: subnet "10.244.1.0/33" is not a CIDR prefix`}},
		{"a subnet without a length is invalid", netConf(`"ranges": [[{"subnet": "10.244.1.0"}]]`), invalid, []string{`subnet "10.244.1.0" is not a CIDR prefix`}},
		{"a subnet with host bits set is invalid and the fix is suggested", netConf(`"ranges": [[{"subnet": "10.244.1.5/24"}]]`), invalid, []string{"ranges[0]: range 0: subnet 10.244.1.5/24 has host bits set (did you mean 10.244.1.0/24?)"}},
		{"an IPv4 /31 is too small", netConf(`"ranges": [[{"subnet": "10.244.1.0/31"}]]`), invalid, []string{"subnet 10.244.1.0/31 is too small"}},
		{"an IPv6 /127 is too small", netConf(`"ranges": [[{"subnet": "fd00::/127"}]]`), invalid, []string{"subnet fd00::/127 is too small"}},
		{"an unparsable rangeStart is invalid", netConf(`"ranges": [[{"subnet": "10.244.1.0/24", "rangeStart": "10.244.1.300"}]]`), invalid, []string{`ranges[0]: range 0: rangeStart "10.244.1.300" is not an IP address`}},
		{"an unparsable rangeEnd is invalid", netConf(`"ranges": [[{"subnet": "10.244.1.0/24", "rangeEnd": "end"}]]`), invalid, []string{`rangeEnd "end" is not an IP address`}},
		{"a gateway with a zone is invalid", netConf(`"ranges": [[{"subnet": "fd00:10:244:1::/64", "gateway": "fd00:10:244:1::1%eth0"}]]`), invalid, []string{`gateway "fd00:10:244:1::1%eth0" is not an IP address`}},
		{"a rangeStart outside the subnet is invalid", netConf(`"ranges": [[{"subnet": "10.244.1.0/24", "rangeStart": "10.244.2.10"}]]`), invalid, []string{"ranges[0]: range 0: rangeStart 10.244.2.10 is not in subnet 10.244.1.0/24"}},
		{"a gateway outside the subnet is invalid", netConf(`"ranges": [[{"subnet": "10.244.1.0/24", "gateway": "192.0.2.1"}]]`), invalid, []string{"gateway 192.0.2.1 is not in subnet 10.244.1.0/24"}},
		{"rangeStart after rangeEnd is invalid", netConf(`"ranges": [[{"subnet": "10.244.1.0/24", "rangeStart": "10.244.1.200", "rangeEnd": "10.244.1.100"}]]`), invalid, []string{"rangeStart 10.244.1.200 is after rangeEnd 10.244.1.100"}},
		{"two families in one set are invalid", netConf(`"ranges": [[{"subnet": "10.244.1.0/24"}, {"subnet": "fd00:10:244:1::/64"}]]`), invalid, []string{"ranges[0]: range 1 (fd00:10:244:1::/64) mixes address families with range 0 (10.244.1.0/24)"}},
		{"overlapping ranges in one set are invalid", netConf(`"ranges": [[{"subnet": "10.244.0.0/16"}, {"subnet": "10.244.1.0/24"}]]`), invalid, []string{"ranges[0]: range 1 (10.244.1.1-10.244.1.254 (10.244.1.0/24)) overlaps range 0"}},
		{"two IPv4 sets are invalid", netConf(`"ranges": [[{"subnet": "10.244.1.0/24"}], [{"subnet": "10.244.2.0/24"}]]`), invalid, []string{"ranges[0] and ranges[1] are both IPv4: give at most one range set per address family"}},
		{"two IPv6 sets are invalid", netConf(`"ranges": [[{"subnet": "fd00:10:244:1::/64"}], [{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:10:244:2::/64"}]]`), invalid, []string{"ranges[0] and ranges[2] are both IPv6"}},
		// Sets of one family are rejected before their subnets are
		// compared, so overlapping sets are reported by the family rule.
		{"overlapping subnets in two sets are invalid", netConf(`"ranges": [[{"subnet": "10.244.0.0/16"}], [{"subnet": "10.244.1.0/24"}]]`), invalid, []string{"ranges[0] and ranges[1] are both IPv4"}},
		{"an unparsable exclude address is invalid", netConf(v4Ranges + `, "exclude": ["10.244.1.300"]`), invalid, []string{`exclude[0]: "10.244.1.300" is not an address or CIDR prefix`}},
		{"an unparsable exclude prefix is invalid", netConf(v4Ranges + `, "exclude": ["10.244.1.10", "10.244.1.0/33"]`), invalid, []string{`exclude[1]: "10.244.1.0/33" is not an address or CIDR prefix`}},
		{"an exclude address with a zone is invalid", netConf(v4Ranges + `, "exclude": ["fe80::1%eth0"]`), invalid, []string{`exclude[0]: "fe80::1%eth0" is not an address or CIDR prefix`}},
		{"an empty exclude entry is invalid", netConf(v4Ranges + `, "exclude": [""]`), invalid, []string{`exclude[0]: "" is not an address or CIDR prefix`}},
		{"an mtu below 68 is invalid", netConf(`"mtu": 67, ` + v4Ranges), invalid, []string{"mtu 67 is out of range (68-65535)"}},
		{"an mtu above 65535 is invalid", netConf(`"mtu": 65536, ` + v4Ranges), invalid, []string{"mtu 65536 is out of range (68-65535)"}},
		{"a negative mtu is invalid", netConf(`"mtu": -1, ` + v4Ranges), invalid, []string{"mtu -1 is out of range (68-65535)"}},
		{"IPv6 with an mtu below 1280 is invalid", netConf(`"mtu": 1279, ` + dualRanges), invalid, []string{"mtu 1279 is below IPv6's minimum of 1280"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := ParseConfig([]byte(tt.config))
			if conf != nil {
				t.Errorf("ParseConfig returned a config with its error: %+v", conf)
			}
			checkConfigError(t, err, tt.code, tt.want...)
		})
	}
}

func TestParseConfigReportsAllProblemsOnOneLine(t *testing.T) {
	tests := []struct {
		name   string
		config string
		want   string // the whole message
	}{
		{
			name:   "a bad mtu and a bad exclude are both reported",
			config: netConf(`"mtu": 10, ` + v4Ranges + `, "exclude": ["nope"]`),
			want:   `podnet-cni: invalid network config: mtu 10 is out of range (68-65535); exclude[0]: "nope" is not an address or CIDR prefix`,
		},
		{
			name:   "a missing name and a relative dataDir are both reported",
			config: `{"dataDir": "cni", ` + v4Ranges + `}`,
			want:   `podnet-cni: invalid network config: name is missing; dataDir "cni" must be an absolute path`,
		},
		{
			name:   "problems in several ranges of several sets each keep their context",
			config: netConf(`"ranges": [[{"subnet": "x"}, {"subnet": "10.244.1.0/24", "rangeStart": "y", "rangeEnd": "z"}], [{"subnet": "fd00::5/64"}]]`),
			want: `podnet-cni: invalid network config: ranges[0]: range 0: subnet "x" is not a CIDR prefix; ` +
				`ranges[0]: range 1: rangeStart "y" is not an IP address; ranges[0]: range 1: rangeEnd "z" is not an IP address; ` +
				`ranges[1]: range 0: subnet fd00::5/64 has host bits set (did you mean fd00::/64?)`,
		},
		{
			name:   "every overlap in a set, an IPv6 mtu problem and a second IPv6 set are all reported",
			config: netConf(`"mtu": 1000, "ranges": [[{"subnet": "10.244.0.0/16"}, {"subnet": "10.244.1.0/24"}, {"subnet": "10.244.2.0/24"}], [{"subnet": "fd00:10:244:1::/64"}], [{"subnet": "fd00:10:244:2::/64"}]]`),
			want: `podnet-cni: invalid network config: ` +
				`ranges[0]: range 1 (10.244.1.1-10.244.1.254 (10.244.1.0/24)) overlaps range 0 (10.244.0.1-10.244.255.254 (10.244.0.0/16)); ` +
				`ranges[0]: range 2 (10.244.2.1-10.244.2.254 (10.244.2.0/24)) overlaps range 0 (10.244.0.1-10.244.255.254 (10.244.0.0/16)); ` +
				`mtu 1000 is below IPv6's minimum of 1280; ` +
				`ranges[1] and ranges[2] are both IPv6: give at most one range set per address family`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.config))
			checkConfigError(t, err, types.ErrInvalidNetworkConfig)
			var terr *types.Error
			if errors.As(err, &terr) && terr.Msg != tt.want {
				t.Errorf("message:\n got %s\nwant %s", terr.Msg, tt.want)
			}
		})
	}
}

func TestJoinProblems(t *testing.T) {
	a, b, c := errors.New("a"), errors.New("b"), errors.New("c")
	tests := []struct {
		name string
		errs []error
		want string
	}{
		{"no errors give an empty line", nil, ""},
		{"plain errors are joined with semicolons", []error{a, b}, "a; b"},
		{"a joined error is flattened", []error{errors.Join(a, b), c}, "a; b; c"},
		{"a wrapped plain error keeps its context", []error{fmt.Errorf("x: %w", a)}, "x: a"},
		{"a wrapped joined error repeats its context for each item", []error{fmt.Errorf("x: %w", errors.Join(a, b))}, "x: a; x: b"},
		{
			"nested wrapped joins accumulate context",
			[]error{fmt.Errorf("x: %w", errors.Join(fmt.Errorf("y: %w", errors.Join(a, b)), c))},
			"x: y: a; x: y: b; x: c",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := joinProblems(tt.errs); got != tt.want {
				t.Errorf("joinProblems = %q, want %q", got, tt.want)
			}
		})
	}
}

// fuzzSeeds are valid and invalid configs that start the fuzzer off near
// every rule of ParseConfig.
var fuzzSeeds = []string{
	netConf(v4Ranges),
	netConf(dualRanges),
	netConf(`"mtu": 1280, "dataDir": "/run/podnet", ` + dualRanges + `, "exclude": ["10.244.1.10", "fd00:10:244:1::/120"]`),
	netConf(`"ranges": [[{"subnet": "10.244.1.0/24", "rangeStart": "10.244.1.10", "rangeEnd": "10.244.1.20", "gateway": "10.244.1.1"}, {"subnet": "10.244.2.0/30"}]]`),
	netConf(`"ranges": [[{"subnet": "fd00::/126", "rangeStart": "::ffff:10.0.0.1"}]]`),
	netConf(`"ranges": [[{"subnet": "10.244.1.5/24"}], [{"subnet": "10.244.0.0/16"}]], "mtu": 67`),
	netConf(`"ranges": [[{"subnet": "10.244.1.0/24"}, {"subnet": "fd00::/64"}]], "exclude": ["x", "1.2.3.4/40"]`),
	netConf(`"ranges": [[]], "ipam": {"type": "host-local"}, "dataDir": "rel"`),
	netConf(`"ranges": [[{"subnet": "10.0.0.0/30", "rangeStart": "10.0.0.1", "rangeEnd": "10.0.0.1"}]]`),
	netConf(`"ranges": [[{"subnet": "0.0.0.0/0"}], [{"subnet": "::/0"}]], "mtu": 65535`),
	`{"name": "podnet", "ranges": [[{"subnet": "10.244.1.0/24"}]], "mtu": 1e3}`,
	`{"name": "podnet", "ranges": [[`,
	`null`,
	``,
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		conf, err := ParseConfig(data)
		if err != nil {
			var terr *types.Error
			if !errors.As(err, &terr) {
				t.Fatalf("error %v (%T) is not a *types.Error", err, err)
			}
			if terr.Code != types.ErrDecodingFailure && terr.Code != types.ErrInvalidNetworkConfig {
				t.Fatalf("error code %d, want 6 or 7: %q", terr.Code, terr.Msg)
			}
			if strings.ContainsAny(terr.Msg, "\r\n") {
				t.Fatalf("error message spans several lines: %q", terr.Msg)
			}
			if conf != nil {
				t.Fatalf("a config was returned with error %q", terr.Msg)
			}
			return
		}
		if conf == nil {
			t.Fatal("ParseConfig returned neither a config nor an error")
		}
		if !json.Valid(data) {
			t.Fatalf("invalid JSON %q was accepted", data)
		}
		if conf.MTU < 68 || conf.MTU > 65535 {
			t.Errorf("MTU %d is outside 68..65535", conf.MTU)
		}
		if !filepath.IsAbs(conf.DataDir) {
			t.Errorf("DataDir %q is not absolute", conf.DataDir)
		}
		if conf.Name == "" {
			t.Error("Name is empty")
		}
		if len(conf.Sets) == 0 || len(conf.Sets) != len(conf.Ranges) {
			t.Errorf("%d sets parsed from %d configured", len(conf.Sets), len(conf.Ranges))
		}
		if len(conf.Excluded) != len(conf.Exclude) {
			t.Errorf("%d exclusions parsed from %d configured", len(conf.Excluded), len(conf.Exclude))
		}
		families := map[int]bool{}
		for i, set := range conf.Sets {
			if len(set) == 0 {
				t.Errorf("Sets[%d] is empty", i)
				continue
			}
			fam := set.Family()
			if families[fam] {
				t.Errorf("Sets[%d] is a second IPv%d set", i, fam)
			}
			families[fam] = true
			if fam == 6 && conf.MTU < 1280 {
				t.Errorf("IPv6 set with MTU %d", conf.MTU)
			}
			for j, r := range set {
				where := fmt.Sprintf("Sets[%d][%d] %s", i, j, &r)
				if r.Subnet.Masked() != r.Subnet {
					t.Errorf("%s: subnet has host bits set", where)
				}
				if (r.Subnet.Addr().Is4() && fam != 4) || (r.Subnet.Addr().Is6() && fam != 6) {
					t.Errorf("%s: subnet is not IPv%d", where, fam)
				}
				if r.End.Less(r.Start) {
					t.Errorf("%s: Start is after End", where)
				}
				for _, a := range []netip.Addr{r.Start, r.End, r.Gateway} {
					if !r.Subnet.Contains(a) {
						t.Errorf("%s: %s (of start, end, gateway) is outside the subnet", where, a)
					}
				}
			}
		}
	})
}

func TestParseConfigRegressions(t *testing.T) {
	t.Run("problems of the basic fields are reported with the others", func(t *testing.T) {
		_, err := ParseConfig([]byte(`{"cniVersion":"1.1.0","type":"podnet-cni","mtu":10,` + v4Ranges + `}`))
		if err == nil || !strings.Contains(err.Error(), "name is missing") || !strings.Contains(err.Error(), "mtu 10 is out of range") {
			t.Errorf("err = %v, want both the missing name and the bad mtu", err)
		}
	})
	t.Run("a range with host bits is reported next to an unparsable range", func(t *testing.T) {
		_, err := ParseConfig([]byte(netConf(`"ranges": [[{"subnet": "10.244.1.5/24"}, {"subnet": "bogus"}]]`)))
		if err == nil || !strings.Contains(err.Error(), "has host bits set") || !strings.Contains(err.Error(), `subnet "bogus"`) {
			t.Errorf("err = %v, want both problems", err)
		}
	})
	t.Run("an IPv4-mapped exclude prefix excludes the IPv4 addresses", func(t *testing.T) {
		conf := mustParse(t, netConf(v4Ranges+`, "exclude": ["::ffff:10.244.1.0/120"]`))
		if len(conf.Excluded) != 1 || conf.Excluded[0].String() != "10.244.1.0/24" {
			t.Errorf("excluded = %v, want [10.244.1.0/24]", conf.Excluded)
		}
	})
	t.Run("a network name with a colon is refused", func(t *testing.T) {
		_, err := ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"a:b","type":"podnet-cni",` + v4Ranges + `}`))
		if err == nil || !strings.Contains(err.Error(), "not a valid network name") {
			t.Errorf("err = %v, want an invalid network name", err)
		}
	})
}
