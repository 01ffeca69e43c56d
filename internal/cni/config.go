package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/podnet/podnet/internal/ipam"
)

// Defaults for optional configuration fields.
const (
	DefaultDataDir = "/var/lib/cni/podnet"
	DefaultMTU     = 1500
)

// RangeConf is one range in host-local's shape.
type RangeConf struct {
	Subnet     string `json:"subnet"`
	RangeStart string `json:"rangeStart,omitempty"`
	RangeEnd   string `json:"rangeEnd,omitempty"`
	Gateway    string `json:"gateway,omitempty"`
}

// NetConf is the plugin's configuration: the standard CNI fields plus its own
// at the top level.
type NetConf struct {
	types.PluginConf

	// Ranges lists range sets; a pod gets one address from each set. At
	// most one set per address family.
	Ranges [][]RangeConf `json:"ranges"`
	// Exclude lists addresses or prefixes never handed out.
	Exclude []string `json:"exclude,omitempty"`
	// DataDir holds the IPAM store, one directory per network name.
	DataDir string `json:"dataDir,omitempty"`
	// MTU of both ends of the veth pair.
	MTU int `json:"mtu,omitempty"`

	// Parsed forms, filled by ParseConfig.
	Sets     []ipam.RangeSet `json:"-"`
	Excluded []netip.Prefix  `json:"-"`
}

// decodeConfig decodes the JSON, fills defaults and returns the problems of
// the fields every verb needs (the network name and the data directory).
func decodeConfig(data []byte) (*NetConf, []error, *types.Error) {
	conf := &NetConf{}
	if err := json.Unmarshal(data, conf); err != nil {
		return nil, nil, newErr(types.ErrDecodingFailure, "podnet-cni: cannot decode network config: %v", err)
	}
	if conf.DataDir == "" {
		conf.DataDir = DefaultDataDir
	}
	if conf.MTU == 0 {
		conf.MTU = DefaultMTU
	}
	var errs []error
	if conf.Name == "" {
		errs = append(errs, errors.New("name is missing"))
	} else if !validNetworkName.MatchString(conf.Name) {
		errs = append(errs, fmt.Errorf("name %q is not a valid network name (letters, digits, '_', '.', '-')", conf.Name))
	}
	if !filepath.IsAbs(conf.DataDir) {
		errs = append(errs, fmt.Errorf("dataDir %q must be an absolute path", conf.DataDir))
	}
	return conf, errs, nil
}

// validNetworkName is the CNI specification's network name pattern.
var validNetworkName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// decodeBasic is decodeConfig for the verbs that need only the name and the
// data directory (DEL, GC).
func decodeBasic(data []byte) (*NetConf, *types.Error) {
	conf, errs, terr := decodeConfig(data)
	if terr != nil {
		return nil, terr
	}
	if len(errs) > 0 {
		return nil, invalidConfig(errs)
	}
	return conf, nil
}

// ParseConfig decodes and fully validates a network config. The returned
// error is a *types.Error with code 6 (cannot decode) or 7 (invalid config)
// whose message names every problem found, on one line.
func ParseConfig(data []byte) (*NetConf, error) {
	conf, errs, terr := decodeConfig(data)
	if terr != nil {
		return nil, terr
	}
	if errs = append(errs, conf.validate()...); len(errs) > 0 {
		return nil, invalidConfig(errs)
	}
	return conf, nil
}

func invalidConfig(errs []error) *types.Error {
	return newErr(types.ErrInvalidNetworkConfig, "podnet-cni: invalid network config: %s", joinProblems(errs))
}

func (c *NetConf) validate() []error {
	var errs []error
	if c.IPAM.Type != "" {
		errs = append(errs, fmt.Errorf("ipam type %q is not supported: podnet-cni allocates addresses itself; put \"ranges\" at the top level of the plugin config", c.IPAM.Type))
	}
	if len(c.Ranges) == 0 {
		errs = append(errs, errors.New("ranges is missing: give at least one range set, e.g. [[{\"subnet\": \"10.244.1.0/24\"}]]"))
	}
	if c.MTU < 68 || c.MTU > 65535 {
		errs = append(errs, fmt.Errorf("mtu %d is out of range (68-65535)", c.MTU))
	}
	c.Sets = nil
	family := map[int]int{}
	for i, rs := range c.Ranges {
		set, err := parseRangeSet(rs)
		if err != nil {
			errs = append(errs, fmt.Errorf("ranges[%d]: %w", i, err))
			continue
		}
		if j, dup := family[set.Family()]; dup {
			errs = append(errs, fmt.Errorf("ranges[%d] and ranges[%d] are both IPv%d: give at most one range set per address family", j, i, set.Family()))
			continue
		}
		family[set.Family()] = i
		if set.Family() == 6 && c.MTU >= 68 && c.MTU < 1280 {
			errs = append(errs, fmt.Errorf("mtu %d is below IPv6's minimum of 1280", c.MTU))
		}
		c.Sets = append(c.Sets, set)
	}
	c.Excluded = nil
	for i, s := range c.Exclude {
		p, err := parsePrefixOrAddr(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("exclude[%d]: %w", i, err))
			continue
		}
		c.Excluded = append(c.Excluded, p)
	}
	return errs
}

func parseRangeSet(rs []RangeConf) (ipam.RangeSet, error) {
	if len(rs) == 0 {
		return nil, errors.New("range set is empty")
	}
	set := make(ipam.RangeSet, len(rs))
	var errs []error
	for i, r := range rs {
		var err error
		if set[i], err = parseRange(r); err != nil {
			errs = append(errs, fmt.Errorf("range %d: %w", i, err))
		} else if err := set[i].Canonicalize(); err != nil {
			errs = append(errs, fmt.Errorf("range %d: %w", i, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := set.Validate(); err != nil {
		return nil, err
	}
	return set, nil
}

func parseRange(r RangeConf) (ipam.Range, error) {
	var out ipam.Range
	var errs []error
	if r.Subnet == "" {
		return out, errors.New("subnet is missing")
	}
	var err error
	if out.Subnet, err = netip.ParsePrefix(r.Subnet); err != nil {
		errs = append(errs, fmt.Errorf("subnet %q is not a CIDR prefix", r.Subnet))
	}
	addr := func(field, s string, dst *netip.Addr) {
		if s == "" {
			return
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			errs = append(errs, fmt.Errorf("%s %q is not an IP address", field, s))
			return
		}
		*dst = a.Unmap()
	}
	addr("rangeStart", r.RangeStart, &out.Start)
	addr("rangeEnd", r.RangeEnd, &out.End)
	addr("gateway", r.Gateway, &out.Gateway)
	return out, errors.Join(errs...)
}

func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("%q is not an address or CIDR prefix", s)
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return p, fmt.Errorf("%q mixes IPv4 and IPv6: write the IPv4 prefix", s)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
