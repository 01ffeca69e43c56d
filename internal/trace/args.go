package trace

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// PodName is a namespaced pod name.
type PodName struct{ Namespace, Name string }

func (p PodName) String() string { return p.Namespace + "/" + p.Name }

// ParsePod parses NAME (in defaultNS) or NS/NAME.
func ParsePod(s, defaultNS string) (PodName, error) {
	ns, name, found := strings.Cut(s, "/")
	if !found {
		ns, name = defaultNS, s
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return PodName{}, fmt.Errorf("%q: bad namespace %q: %s", s, ns, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return PodName{}, fmt.Errorf("%q: bad pod name %q: %s", s, name, strings.Join(errs, "; "))
	}
	return PodName{ns, name}, nil
}

// Target is a parsed TARGET[:PORT[/PROTO]]: a pod or an address, and what
// to reach on it.
type Target struct {
	Pod  PodName    // when Addr is not valid
	Addr netip.Addr // valid when the target is an address
	// Protocol is TCP, UDP, SCTP or ProtocolICMP; Port is 0 for ICMP.
	Protocol v1.Protocol
	Port     int32
}

// ParseTarget parses TARGET[:PORT[/PROTO]] where TARGET is NAME, NS/NAME,
// an IPv4 address, an IPv6 address (in brackets when a port follows), and
// the part after the colon is PORT, PORT/PROTO or PROTO alone (icmp, or a
// protocol with the default port 80). A pod NAME is in defaultNS.
func ParseTarget(s, defaultNS string) (Target, error) {
	host, spec, hasSpec, err := splitTarget(s)
	if err != nil {
		return Target{}, err
	}
	t := Target{Protocol: v1.ProtocolTCP, Port: 80}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return Target{}, fmt.Errorf("%q: addresses with a zone are not pod or cluster addresses", s)
		}
		t.Addr = a.Unmap()
	} else if strings.Count(host, ".") == 3 && strings.Trim(host, "0123456789.") == "" {
		return Target{}, fmt.Errorf("%q: bad IPv4 address: %w", s, err)
	} else if t.Pod, err = ParsePod(host, defaultNS); err != nil {
		return Target{}, err
	}
	if hasSpec {
		if err := parsePortSpec(spec, &t); err != nil {
			return Target{}, fmt.Errorf("%q: %w", s, err)
		}
	}
	return t, nil
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
