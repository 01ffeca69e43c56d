package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Compiled is the cluster's NetworkPolicies resolved against its pods and
// namespaces: which pods each policy isolates, and each rule's peers and
// ports. The evaluator (Verdict) and the nftables renderer both read it, so
// a trace and the kernel agree by construction.
//
// Tiers of cluster-wide policy (AdminNetworkPolicy, BaselineAdminNetworkPolicy)
// would add ordered rule lists with actions before and after the
// NetworkPolicy tier; a Rule's implicit action here is Allow.
type Compiled struct {
	// Policies in key order.
	Policies []*Policy
	// Pods by key, and by address (a pod IP names one pod).
	Pods map[string]*Pod
	byIP map[netip.Addr]*Pod
	// selects lists, per direction and pod key, the policies that isolate
	// the pod in that direction, in key order.
	selects [2]map[string][]*Policy
}

// Policy is one compiled NetworkPolicy.
type Policy struct {
	Key string // "namespace/name"
	// Isolates says, per direction, whether the policy's types include it.
	Isolates [2]bool
	// Selected are the pods of the policy's namespace its podSelector
	// selects (host-network pods never are).
	Selected []*Pod
	Rules    []*Rule
}

// Rule is one ingress or egress rule of a policy. It allows traffic from
// (ingress) or to (egress) its peers on its ports; rules only ever allow.
type Rule struct {
	Policy    string
	Direction Direction
	// Index is the rule's position in the policy's ingress or egress list.
	Index int
	// AllPeers: the rule has no from/to, so every address is a peer.
	AllPeers bool
	// Pods are the peer pods its podSelector/namespaceSelector peers select.
	Pods []*Pod
	// Blocks are its ipBlock peers, as address ranges (except removed).
	Blocks []Range
	// AllPorts: the rule has no ports, so every protocol and port.
	AllPorts bool
	Ports    []PortSpec
}

// Ref names the rule, e.g. "default/api-allow ingress[0]".
func (r *Rule) Ref() string { return fmt.Sprintf("%s %s[%d]", r.Policy, r.Direction, r.Index) }

// PortSpec is one port of a rule as the API states it: a protocol with a
// port number, a range (Port..EndPort), a name resolved against the
// destination pod's container ports, or no port at all (every port of the
// protocol).
type PortSpec struct {
	Protocol      v1.Protocol
	Port, EndPort int32
	Name          string
}

// Error is a policy the compiler could not fully use. The parts it could not
// parse match nothing, so the policy fails closed.
type Error struct {
	Policy string
	Err    error
}

func (e Error) Error() string { return e.Policy + ": " + e.Err.Error() }

// Compile resolves policies against pods and namespaces.
func Compile(policies []*networkingv1.NetworkPolicy, pods []*Pod, namespaces []*Namespace) (*Compiled, []Error) {
	c := &Compiled{Pods: map[string]*Pod{}, byIP: map[netip.Addr]*Pod{}}
	for i := range c.selects {
		c.selects[i] = map[string][]*Policy{}
	}
	byNS := map[string][]*Pod{}
	for _, p := range pods {
		c.Pods[p.Key()] = p
		byNS[p.Namespace] = append(byNS[p.Namespace], p)
		if p.HostNetwork {
			continue // its address is the node's
		}
		for _, a := range p.IPs {
			// An address names one pod: a pod being deleted gives it
			// up to a live one that already reuses it.
			if old := c.byIP[a]; old != nil && !old.Terminating && (p.Terminating || old.Key() < p.Key()) {
				continue
			}
			c.byIP[a] = p
		}
	}
	nsLabels := map[string]labels.Set{}
	for _, ns := range namespaces {
		nsLabels[ns.Name] = ns.Labels
	}
	sorted := slices.Clone(policies)
	slices.SortFunc(sorted, func(a, b *networkingv1.NetworkPolicy) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	var errs []Error
	cache := newSelectorCache(byNS, nsLabels)
	for _, np := range sorted {
		p, perr := compilePolicy(np, cache)
		if perr != nil {
			errs = append(errs, Error{Policy: p.Key, Err: perr})
		}
		c.Policies = append(c.Policies, p)
		for d := range p.Isolates {
			if !p.Isolates[d] {
				continue
			}
			for _, pod := range p.Selected {
				c.selects[d][pod.Key()] = append(c.selects[d][pod.Key()], p)
			}
		}
	}
	return c, errs
}

func compilePolicy(np *networkingv1.NetworkPolicy, cache *selectorCache) (*Policy, error) {
	p := &Policy{Key: np.Namespace + "/" + np.Name}
	var errs []error
	types := np.Spec.PolicyTypes
	if len(types) == 0 {
		// The API's default: Ingress always, Egress when there are
		// egress rules.
		types = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if len(np.Spec.Egress) > 0 {
			types = append(types, networkingv1.PolicyTypeEgress)
		}
	}
	for _, t := range types {
		switch t {
		case networkingv1.PolicyTypeIngress:
			p.Isolates[Ingress] = true
		case networkingv1.PolicyTypeEgress:
			p.Isolates[Egress] = true
		}
	}
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		// It selects nothing we can name; the caller keeps the last good
		// version if there is one.
		return p, fmt.Errorf("podSelector: %w", err)
	}
	p.Selected = cache.pods([]string{np.Namespace}, sel)
	if p.Isolates[Ingress] {
		for i, r := range np.Spec.Ingress {
			rule, err := compileRule(p.Key, Ingress, i, r.From, r.Ports, np.Namespace, cache)
			errs = append(errs, err)
			p.Rules = append(p.Rules, rule)
		}
	}
	if p.Isolates[Egress] {
		for i, r := range np.Spec.Egress {
			rule, err := compileRule(p.Key, Egress, i, r.To, r.Ports, np.Namespace, cache)
			errs = append(errs, err)
			p.Rules = append(p.Rules, rule)
		}
	}
	return p, errors.Join(errs...)
}

func compileRule(policy string, d Direction, index int, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort,
	ns string, cache *selectorCache) (*Rule, error) {
	r := &Rule{Policy: policy, Direction: d, Index: index, AllPeers: len(peers) == 0, AllPorts: len(ports) == 0}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s[%d]: "+format, append([]any{d, index}, args...)...))
	}
	seen := map[*Pod]bool{}
	for i, peer := range peers {
		if peer.IPBlock != nil {
			rs, err := blockRanges(peer.IPBlock)
			if err != nil {
				bad("peer %d: ipBlock: %v", i, err)
				continue
			}
			r.Blocks = append(r.Blocks, rs...)
			continue
		}
		if peer.PodSelector == nil && peer.NamespaceSelector == nil {
			bad("peer %d: no selector and no ipBlock", i)
			continue
		}
		podSel := labels.Everything()
		if peer.PodSelector != nil {
			s, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
			if err != nil {
				bad("peer %d: podSelector: %v", i, err)
				continue
			}
			podSel = s
		}
		namespaces := []string{ns}
		if peer.NamespaceSelector != nil {
			s, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
			if err != nil {
				bad("peer %d: namespaceSelector: %v", i, err)
				continue
			}
			namespaces = cache.namespaces(s)
		}
		for _, pod := range cache.pods(namespaces, podSel) {
			if !seen[pod] {
				seen[pod] = true
				r.Pods = append(r.Pods, pod)
			}
		}
	}
	for i, p := range ports {
		spec := PortSpec{Protocol: v1.ProtocolTCP}
		if p.Protocol != nil {
			spec.Protocol = *p.Protocol
		}
		if p.Port != nil {
			if p.Port.Type == 1 { // intstr.String
				spec.Name = p.Port.StrVal
			} else {
				spec.Port = p.Port.IntVal
			}
		}
		if p.EndPort != nil {
			if spec.Name != "" || spec.Port == 0 || *p.EndPort < spec.Port {
				bad("port %d: endPort %d needs a numeric port not above it", i, *p.EndPort)
				continue
			}
			spec.EndPort = *p.EndPort
		}
		r.Ports = append(r.Ports, spec)
	}
	if len(ports) > 0 && len(r.Ports) == 0 {
		r.AllPorts = false // every port was bad: the rule matches nothing
	}
	return r, errors.Join(errs...)
}

// blockRanges turns an ipBlock into address ranges: the CIDR without its
// exceptions.
func blockRanges(b *networkingv1.IPBlock) ([]Range, error) {
	cidr, err := netip.ParsePrefix(strings.TrimSpace(b.CIDR))
	if err != nil {
		return nil, err
	}
	cidr = netip.PrefixFrom(cidr.Addr().Unmap(), cidr.Bits()-cidrUnmapBits(cidr))
	out := []Range{prefixRange(cidr)}
	for _, e := range b.Except {
		ex, err := netip.ParsePrefix(strings.TrimSpace(e))
		if err != nil {
			return nil, fmt.Errorf("except %q: %w", e, err)
		}
		ex = netip.PrefixFrom(ex.Addr().Unmap(), ex.Bits()-cidrUnmapBits(ex))
		if ex.Addr().Is4() != cidr.Addr().Is4() {
			return nil, fmt.Errorf("except %s is not in %s", ex, cidr)
		}
		out = subtract(out, prefixRange(ex))
	}
	return out, nil
}

// cidrUnmapBits is 96 for an IPv4-mapped IPv6 prefix (::ffff:a.b.c.d/n),
// which the address family of the pod it matches is IPv4.
func cidrUnmapBits(p netip.Prefix) int {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return 96
	}
	return 0
}

// subtract removes x from every range in rs.
func subtract(rs []Range, x Range) []Range {
	var out []Range
	for _, r := range rs {
		if r.Lo.Is4() != x.Lo.Is4() || x.Hi.Compare(r.Lo) < 0 || r.Hi.Compare(x.Lo) < 0 {
			out = append(out, r)
			continue
		}
		if r.Lo.Compare(x.Lo) < 0 {
			out = append(out, Range{r.Lo, x.Lo.Prev()})
		}
		if x.Hi.Compare(r.Hi) < 0 {
			out = append(out, Range{x.Hi.Next(), r.Hi})
		}
	}
	return out
}

// PodByIP returns the pod with address a (nil: none, or a host-network
// pod's, which is its node's).
func (c *Compiled) PodByIP(a netip.Addr) *Pod { return c.byIP[a.Unmap()] }

// IsolatedBy returns the policies that isolate pod in direction d (none:
// the pod is not isolated in that direction).
func (c *Compiled) IsolatedBy(pod *Pod, d Direction) []*Policy {
	if pod == nil || pod.HostNetwork {
		return nil
	}
	return c.selects[d][pod.Key()]
}

// RulesFor returns the rules that apply to pod in direction d: those of the
// policies that isolate it.
func (c *Compiled) RulesFor(pod *Pod, d Direction) []*Rule {
	var out []*Rule
	for _, p := range c.IsolatedBy(pod, d) {
		for _, r := range p.Rules {
			if r.Direction == d {
				out = append(out, r)
			}
		}
	}
	return out
}

// Validate reports what of np the compiler cannot use (nil: all of it).
func Validate(np *networkingv1.NetworkPolicy) error {
	_, err := compilePolicy(np, newSelectorCache(nil, nil))
	return err
}

// selectorCache answers selector queries once per Compile: many policies
// repeat the same selectors.
type selectorCache struct {
	byNS     map[string][]*Pod
	nsLabels map[string]labels.Set
	podsOf   map[string][]*Pod
	nsOf     map[string][]string
}

func newSelectorCache(byNS map[string][]*Pod, nsLabels map[string]labels.Set) *selectorCache {
	return &selectorCache{byNS: byNS, nsLabels: nsLabels, podsOf: map[string][]*Pod{}, nsOf: map[string][]string{}}
}

// namespaces returns the sorted names of the namespaces s selects.
func (c *selectorCache) namespaces(s labels.Selector) []string {
	key := s.String()
	if out, ok := c.nsOf[key]; ok {
		return out
	}
	out := []string{}
	for name, l := range c.nsLabels {
		if s.Matches(l) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	c.nsOf[key] = out
	return out
}

// pods returns the pods of namespaces that s selects (never host-network
// pods).
func (c *selectorCache) pods(namespaces []string, s labels.Selector) []*Pod {
	key := strings.Join(namespaces, ",") + "|" + s.String()
	if out, ok := c.podsOf[key]; ok {
		return out
	}
	var out []*Pod
	for _, n := range namespaces {
		for _, pod := range c.byNS[n] {
			if !pod.HostNetwork && s.Matches(labels.Set(pod.Labels)) {
				out = append(out, pod)
			}
		}
	}
	c.podsOf[key] = out
	return out
}
