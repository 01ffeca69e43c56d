package trace

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// PodName is a namespaced pod name.
type PodName struct{ Namespace, Name string }

func (p PodName) String() string { return p.Namespace + "/" + p.Name }

// ParsePod parses a pod: NAME (in defaultNS), NS/NAME, or as a target
// names one (pod/NAME, NS/pod/NAME).
func ParsePod(s, defaultNS string) (PodName, error) {
	o, err := parseObject(s, defaultNS, true)
	if err != nil {
		return PodName{}, fmt.Errorf("%q: %w", s, err)
	}
	if o.Kind != KindPod {
		return PodName{}, fmt.Errorf("%q: want a pod (NAME, NS/NAME, pod/NAME or NS/pod/NAME)", s)
	}
	return o.Pod(), nil
}

// Kind is the kind of object a target names.
type Kind string

// The kinds a target may name, as written before the name (kubectl's
// short names).
const (
	KindPod     Kind = "pod"
	KindService Kind = "svc"
)

// kindWords are the words accepted for each kind, as kubectl accepts them.
var kindWords = map[string]Kind{
	"pod": KindPod, "pods": KindPod, "po": KindPod,
	"svc": KindService, "service": KindService, "services": KindService,
}

// Object is a pod or a Service named on the command line.
type Object struct {
	Kind            Kind
	Namespace, Name string
}

// String is NS/KIND/NAME, the form that names it from any namespace.
func (o Object) String() string { return o.Namespace + "/" + string(o.Kind) + "/" + o.Name }

// Key is NS/NAME.
func (o Object) Key() string { return o.Namespace + "/" + o.Name }

// Pod is the object's name as a pod's.
func (o Object) Pod() PodName { return PodName{o.Namespace, o.Name} }

// TargetForms lists the ways a target may name a pod or a Service, for
// help texts and errors.
const TargetForms = "pod/NAME, svc/NAME, NS/pod/NAME or NS/svc/NAME"

// Target is a parsed target: a pod, a Service or an address, and what to
// reach on it.
type Target struct {
	Object Object     // the pod or Service, when Addr and Name are not set
	Addr   netip.Addr // valid when the target is an address
	// Name is a DNS name (a name with a dot that is no address), resolved
	// as the source pod's resolver would.
	Name string
	// Bare is set for a NAME given alone (no kind, no namespace): a pod of
	// that name if there is one, else a DNS name the pod's search path
	// completes (a Service of its namespace, say).
	Bare bool
	// Protocol is TCP, UDP, SCTP or ProtocolICMP; Port is 0 for ICMP.
	Protocol v1.Protocol
	Port     int32
}

// ParseTarget parses podnet trace's TARGET[:PORT[/PROTO]]. TARGET is a pod
// or Service by kind (TargetForms), a pod's NAME or NS/NAME alone (the
// short form; a NAME alone that is no pod's is taken for a DNS name, see
// Target.Bare), a DNS name with a dot (web.shop, web.shop.svc.cluster.local,
// example.com: resolved as the pod's resolver would, from the cluster's
// records, never by this machine), an IPv4 address, or an IPv6 address (in
// brackets when a port follows); the part after the colon is PORT,
// PORT/PROTO or PROTO alone (icmp, or a protocol with the default port
// 80). A NAME without NS is in defaultNS.
func ParseTarget(s, defaultNS string) (Target, error) {
	host, spec, hasSpec, err := splitTarget(s)
	if err != nil {
		return Target{}, err
	}
	t := Target{Protocol: v1.ProtocolTCP, Port: 80}
	if err := parseHost(s, host, defaultNS, true, &t); err != nil {
		return Target{}, err
	}
	if hasSpec {
		if err := parsePortSpec(spec, &t); err != nil {
			return Target{}, fmt.Errorf("%q: %w", s, err)
		}
	}
	return t, nil
}

// ParseHostPort parses podnet probe's TARGET:PORT: TARGET is an IP address
// (IPv6 in brackets) or a pod or Service by kind (TargetForms), in
// defaultNS unless NS is given. A name alone is refused: it reads like a
// DNS name, which podnet would have to resolve on this machine, not in the
// cluster. The protocol is left TCP.
func ParseHostPort(s, defaultNS string) (Target, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return Target{}, fmt.Errorf("target %q: want TARGET:PORT (TARGET an IP address, %s): %w", s, TargetForms, err)
	}
	t := Target{Protocol: v1.ProtocolTCP}
	if err := parseHost(s, host, defaultNS, false, &t); err != nil {
		return Target{}, err
	}
	n, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || n == 0 {
		return Target{}, fmt.Errorf("target %q: bad port %q (1-65535)", s, portStr)
	}
	t.Port = int32(n)
	return t, nil
}

// parseHost parses the part of s before the port into t: an address or an
// object. short allows a pod's NAME and NS/NAME without the kind.
func parseHost(s, host, defaultNS string, short bool, t *Target) error {
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return fmt.Errorf("%q: addresses with a zone are not pod or cluster addresses", s)
		}
		t.Addr = a.Unmap()
		return nil
	} else if strings.Count(host, ".") == 3 && strings.Trim(host, "0123456789.") == "" {
		return fmt.Errorf("%q: bad IPv4 address: %w", s, err)
	}
	if short && strings.Contains(host, ".") && !strings.Contains(host, "/") {
		if errs := validation.IsDNS1123Subdomain(strings.ToLower(strings.TrimSuffix(host, "."))); len(errs) > 0 {
			return fmt.Errorf("%q: bad DNS name: %s", s, strings.Join(errs, "; "))
		}
		t.Name = host
		return nil
	}
	o, err := parseObject(host, defaultNS, short)
	if err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	t.Object = o
	t.Bare = short && !strings.Contains(host, "/")
	return nil
}

// errNeedKind is a name given without its kind where one is needed.
var errNeedKind = errors.New("a name alone is not looked up (this machine's resolver would answer, not the cluster's DNS): " +
	"name a pod or Service as " + TargetForms + ", or give an IP address; for a DNS name use podnet exec POD -- curl NAME")

// parseObject parses [NS/]KIND/NAME, and with short also NAME and NS/NAME
// as a pod. A kind word in the middle wins: a pod of a namespace called
// "svc" is svc/pod/NAME.
func parseObject(s, defaultNS string, short bool) (Object, error) {
	parts := strings.Split(s, "/")
	o := Object{Kind: KindPod, Namespace: defaultNS}
	kind, isKind := Kind(""), false
	if len(parts) >= 2 {
		kind, isKind = kindWords[strings.ToLower(parts[len(parts)-2])]
	}
	switch {
	case len(parts) == 3 && isKind:
		o.Kind, o.Namespace, o.Name = kind, parts[0], parts[2]
	case len(parts) == 2 && isKind:
		o.Kind, o.Name = kind, parts[1]
	case len(parts) > 3 || len(parts) == 3:
		return Object{}, fmt.Errorf("want %s", TargetForms)
	case !short:
		return Object{}, errNeedKind
	case len(parts) == 2:
		o.Namespace, o.Name = parts[0], parts[1]
	default:
		o.Name = s
	}
	if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
		return Object{}, fmt.Errorf("bad namespace %q: %s", o.Namespace, strings.Join(errs, "; "))
	}
	validName := validation.IsDNS1123Subdomain
	if o.Kind == KindService {
		validName = validation.IsDNS1035Label
	}
	if errs := validName(o.Name); len(errs) > 0 {
		return Object{}, fmt.Errorf("bad %s name %q: %s", o.Kind, o.Name, strings.Join(errs, "; "))
	}
	return o, nil
}

// splitTarget splits TARGET[:SPEC] into the host and the part after the
// colon, minding IPv6 addresses.
func splitTarget(s string) (host, spec string, hasSpec bool, err error) {
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.Index(s, "]")
		if end < 0 {
			return "", "", false, fmt.Errorf("%q: missing ]", s)
		}
		host, spec = s[1:end], s[end+1:]
		if spec != "" {
			if !strings.HasPrefix(spec, ":") {
				return "", "", false, fmt.Errorf("%q: expected :PORT after ]", s)
			}
			spec, hasSpec = spec[1:], true
		}
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Is4In6() {
			return "", "", false, fmt.Errorf("%q: brackets hold an IPv6 address", s)
		}
		return host, spec, hasSpec, nil
	case strings.Count(s, ":") > 1:
		if _, err := netip.ParseAddr(s); err != nil {
			return "", "", false, fmt.Errorf("%q: not an IPv6 address (with a port, write [ADDR]:PORT)", s)
		}
		return s, "", false, nil
	}
	if i := strings.LastIndex(s, ":"); i >= 0 {
		return s[:i], s[i+1:], true, nil
	}
	return s, "", false, nil
}

// parsePortSpec parses PORT, PORT/PROTO or PROTO into t.
func parsePortSpec(spec string, t *Target) error {
	portStr, protoStr, hasProto := strings.Cut(spec, "/")
	if !hasProto {
		if _, err := parseProto(spec); err == nil {
			portStr, protoStr, hasProto = "", spec, true
		}
	}
	if hasProto {
		p, err := parseProto(protoStr)
		if err != nil {
			return err
		}
		t.Protocol = p
	}
	if !HasPorts(t.Protocol) {
		if portStr != "" {
			return errors.New("icmp has no port")
		}
		t.Port = 0
		return nil
	}
	if portStr == "" {
		if hasProto {
			return nil // PROTO alone: the default port
		}
		return errors.New("empty port")
	}
	n, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("bad port %q (1-65535)", portStr)
	}
	t.Port = int32(n)
	return nil
}

func parseProto(s string) (v1.Protocol, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return v1.ProtocolTCP, nil
	case "udp":
		return v1.ProtocolUDP, nil
	case "sctp":
		return v1.ProtocolSCTP, nil
	case "icmp", "icmpv6":
		return ProtocolICMP, nil
	}
	return "", fmt.Errorf("bad protocol %q (tcp, udp, sctp or icmp)", s)
}
