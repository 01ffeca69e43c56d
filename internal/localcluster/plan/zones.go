package plan

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Region is the topology.kubernetes.io/region label of every node of a
// cluster with zones: all its zones are in one region, this machine.
const Region = "local"

// MaxNodeNameLen bounds a Node name: it is also the value of the node's
// kubernetes.io/hostname label, which may not be longer than 63.
const MaxNodeNameLen = 63

// zoneRE is a DNS label (RFC 1123): what a zone name may be. It can hold
// no dot, which is what keeps zoned node names exact (NodeName).
var zoneRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// NodeZone is the zone of node i (1-based): zones are dealt round-robin,
// node i in Zones[(i-1) % len(Zones)]. It is "" when the cluster has no
// zones.
func (c *Config) NodeZone(i int) string {
	if len(c.Zones) == 0 || i < 1 {
		return ""
	}
	return c.Zones[(i-1)%len(c.Zones)]
}

// NodeName is the Kubernetes Node name of node i (1-based):
// <cluster>-node-<i>, and <cluster>-node-<i>.<zone> in a cluster with
// zones. The zone goes after a dot because no cluster name and no zone
// holds one: a dash would let cluster "x" with zone "a" ("x-a-node-1")
// claim node 1 of cluster "x-a" (OwnsNamespace).
func (c *Config) NodeName(i int) string {
	n := c.Name + "-node-" + strconv.Itoa(i)
	if z := c.NodeZone(i); z != "" {
		n += "." + z
	}
	return n
}

// NodeLabels are the labels node i registers its Node with on top of the
// ones every node has (the kubelet's --node-labels): the zone and region
// labels in a cluster with zones, none otherwise.
func (c *Config) NodeLabels(i int) map[string]string {
	z := c.NodeZone(i)
	if z == "" {
		return nil
	}
	return map[string]string{LabelZone: z, LabelRegion: Region}
}

// The well-known topology labels (k8s.io/api/core/v1 LabelTopologyZone
// and LabelTopologyRegion; this package does not import the API).
const (
	LabelZone   = "topology.kubernetes.io/zone"
	LabelRegion = "topology.kubernetes.io/region"
)

// ParseZones splits podnet up's --zones value: comma-separated names,
// spaces around them ignored; "" is no zones. Validate checks the names.
func ParseZones(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var out []string
	for _, z := range strings.Split(s, ",") {
		out = append(out, strings.TrimSpace(z))
	}
	return out
}

// validateZones checks the zone names: DNS labels, no duplicates, at most
// one per node (a zone without a node would have no endpoints and no
// clients, and the EndpointSlice controller only knows zones from Nodes),
// and node names that stay within MaxNodeNameLen.
func (c *Config) validateZones() []error {
	var errs []error
	seen := map[string]bool{}
	for _, z := range c.Zones {
		switch {
		case !zoneRE.MatchString(z):
			errs = append(errs, fmt.Errorf("zone %q: want a DNS label: 1 to 63 of [a-z0-9-], starting and ending with a letter or digit", z))
		case seen[z]:
			errs = append(errs, fmt.Errorf("zone %q is given twice", z))
		}
		seen[z] = true
	}
	if c.Nodes >= 1 && len(c.Zones) > c.Nodes {
		errs = append(errs, fmt.Errorf("%d zones for %d nodes: every zone needs a node (nodes are dealt to zones in turn)", len(c.Zones), c.Nodes))
	}
	if len(errs) == 0 && c.Nodes >= 1 && c.Nodes <= MaxNodes {
		for i := 1; i <= c.Nodes; i++ {
			if n := c.NodeName(i); len(n) > MaxNodeNameLen {
				errs = append(errs, fmt.Errorf("node name %q is %d characters, more than %d (a shorter cluster or zone name)", n, len(n), MaxNodeNameLen))
				break
			}
		}
	}
	return errs
}

// ownsNodeName reports whether rest, what follows "<cluster>-node-" in a
// namespace name, is a node's: <digits> or <digits>.<zone>. It needs no
// zone list, so a cluster with no saved config is still cleaned by name.
func ownsNodeName(rest string) bool {
	idx, zone, zoned := strings.Cut(rest, ".")
	return isDigits(idx) && (!zoned || zoneRE.MatchString(zone))
}
