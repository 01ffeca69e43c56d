package trace

import (
	"net/netip"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// parseCase is a case of a target parser: what it returns for in, or a
// part of its error.
type parseCase struct {
	name, in string
	want     Target
	err      string // "" when none
}

func runParseCases(t *testing.T, fn string, parse func(s, defaultNS string) (Target, error), cases []parseCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parse(tc.in, "shop")
			switch {
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("%s(%q) = %+v, %v; want an error with %q", fn, tc.in, got, err, tc.err)
			case tc.err == "" && err != nil:
				t.Fatalf("%s(%q): %v", fn, tc.in, err)
			case tc.err == "" && got != tc.want:
				t.Fatalf("%s(%q) = %+v, want %+v", fn, tc.in, got, tc.want)
			}
		})
	}
}

func podRef(ns, name string) Object { return Object{Kind: KindPod, Namespace: ns, Name: name} }
func svcRef(ns, name string) Object { return Object{Kind: KindService, Namespace: ns, Name: name} }

func TestParseTarget(t *testing.T) {
	addr := netip.MustParseAddr
	runParseCases(t, "ParseTarget", ParseTarget, []parseCase{
		{name: "a pod name is in the default namespace on tcp/80", in: "web-1",
			want: Target{Object: podRef("shop", "web-1"), Bare: true, Protocol: v1.ProtocolTCP, Port: 80}},
		{name: "ns/name names another namespace", in: "kube-system/coredns-0",
			want: Target{Object: podRef("kube-system", "coredns-0"), Protocol: v1.ProtocolTCP, Port: 80}},
		{name: "a pod with a port", in: "web-1:8080",
			want: Target{Object: podRef("shop", "web-1"), Bare: true, Protocol: v1.ProtocolTCP, Port: 8080}},
		{name: "ns/name with port and protocol", in: "kube-system/coredns-0:53/udp",
			want: Target{Object: podRef("kube-system", "coredns-0"), Protocol: v1.ProtocolUDP, Port: 53}},
		{name: "pod/NAME names a pod", in: "pod/web-1:8080",
			want: Target{Object: podRef("shop", "web-1"), Protocol: v1.ProtocolTCP, Port: 8080}},
		{name: "NS/pod/NAME names a pod of another namespace", in: "secure/pod/database:5432",
			want: Target{Object: podRef("secure", "database"), Protocol: v1.ProtocolTCP, Port: 5432}},
		{name: "svc/NAME names a Service", in: "svc/nginx-service:80",
			want: Target{Object: svcRef("shop", "nginx-service"), Protocol: v1.ProtocolTCP, Port: 80}},
		{name: "NS/svc/NAME with a protocol", in: "kube-system/svc/kube-dns:53/udp",
			want: Target{Object: svcRef("kube-system", "kube-dns"), Protocol: v1.ProtocolUDP, Port: 53}},
		{name: "kubectl's other words for the kinds", in: "services/web",
			want: Target{Object: svcRef("shop", "web"), Protocol: v1.ProtocolTCP, Port: 80}},
		{name: "a kind word wins over a namespace of that name", in: "po/web-1",
			want: Target{Object: podRef("shop", "web-1"), Protocol: v1.ProtocolTCP, Port: 80}},
		{name: "a name with a dot is a DNS name", in: "web.shop:8080",
			want: Target{Name: "web.shop", Protocol: v1.ProtocolTCP, Port: 8080}},
		{name: "a fully qualified DNS name keeps its dot", in: "kube-dns.kube-system.svc.cluster.local.:53/udp",
			want: Target{Name: "kube-dns.kube-system.svc.cluster.local.", Protocol: v1.ProtocolUDP, Port: 53}},
		{name: "a name outside the cluster is a DNS name too", in: "example.com",
			want: Target{Name: "example.com", Protocol: v1.ProtocolTCP, Port: 80}},
		{name: "an IPv4 address", in: "10.244.2.7",
			want: Target{Addr: addr("10.244.2.7"), Protocol: v1.ProtocolTCP, Port: 80}},
		{name: "an IPv4 address with port and protocol", in: "203.0.113.5:443/tcp",
			want: Target{Addr: addr("203.0.113.5"), Protocol: v1.ProtocolTCP, Port: 443}},
		{name: "sctp in capitals", in: "10.244.2.7:9/SCTP",
			want: Target{Addr: addr("10.244.2.7"), Protocol: v1.ProtocolSCTP, Port: 9}},
		{name: "a protocol alone keeps the default port", in: "10.244.2.7:udp",
			want: Target{Addr: addr("10.244.2.7"), Protocol: v1.ProtocolUDP, Port: 80}},
		{name: "icmp has no port", in: "web-1:icmp",
			want: Target{Object: podRef("shop", "web-1"), Bare: true, Protocol: ProtocolICMP}},
		{name: "a bare IPv6 address", in: "fd00:10:244::7",
			want: Target{Addr: addr("fd00:10:244::7"), Protocol: v1.ProtocolTCP, Port: 80}},
		{name: "an IPv6 address in brackets", in: "[fd00:10:244::7]",
			want: Target{Addr: addr("fd00:10:244::7"), Protocol: v1.ProtocolTCP, Port: 80}},
		{name: "an IPv6 address with port and protocol", in: "[fd00:10:244::7]:53/udp",
			want: Target{Addr: addr("fd00:10:244::7"), Protocol: v1.ProtocolUDP, Port: 53}},
		{name: "an IPv6 address with icmp", in: "[2001:db8::1]:icmp",
			want: Target{Addr: addr("2001:db8::1"), Protocol: ProtocolICMP}},
		{name: "an IPv4-mapped address is taken as IPv4", in: "::ffff:10.244.2.7",
			want: Target{Addr: addr("10.244.2.7"), Protocol: v1.ProtocolTCP, Port: 80}},

		{name: "icmp with a port is refused", in: "web-1:7/icmp", err: "icmp has no port"},
		{name: "port 0 is refused", in: "web-1:0", err: "bad port"},
		{name: "a port above 65535 is refused", in: "10.0.0.1:65536", err: "bad port"},
		{name: "an empty port is refused", in: "web-1:", err: "empty port"},
		{name: "an unknown protocol is refused", in: "web-1:80/http", err: "bad protocol"},
		{name: "IPv6 with a port needs brackets", in: "fd00::1:80/udp", err: "[ADDR]:PORT"},
		{name: "brackets hold IPv6 only", in: "[10.0.0.1]:80", err: "brackets hold an IPv6 address"},
		{name: "something after the brackets must be a port", in: "[fd00::1]80", err: "expected :PORT"},
		{name: "an unclosed bracket is refused", in: "[fd00::1:80", err: "missing ]"},
		{name: "an address with a zone is refused", in: "[fe80::1%eth0]:80", err: "addresses with a zone"},
		{name: "a bad IPv4 address is not taken for a pod", in: "10.0.0.300:80", err: "bad IPv4 address"},
		{name: "a bad pod name is refused", in: "Web_1", err: "bad pod name"},
		{name: "a bad DNS name is refused", in: "web..shop", err: "bad DNS name"},
		{name: "a bad namespace is refused", in: "Kube_System/x", err: "bad namespace"},
		{name: "two slashes need a kind in the middle", in: "a/b/c", err: "want pod/NAME, svc/NAME, NS/pod/NAME or NS/svc/NAME"},
		{name: "three slashes are refused", in: "a/pod/b/c", err: "want pod/NAME"},
		{name: "a Service name is a DNS label", in: "svc/web.x", err: "bad svc name"},
		{name: "a kind without a name is refused", in: "pod/", err: "bad pod name"},
	})
}

func TestParsePod(t *testing.T) {
	for in, want := range map[string]PodName{"web-1": {"shop", "web-1"}, "kube-system/coredns-0": {"kube-system", "coredns-0"},
		"pod/web-1": {"shop", "web-1"}, "secure/pod/database": {"secure", "database"}} {
		if got, err := ParsePod(in, "shop"); err != nil || got != want {
			t.Errorf("ParsePod(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "/x", "ns/", "UPPER", "a/b/c", "svc/web", "pod/"} {
		if got, err := ParsePod(in, "shop"); err == nil {
			t.Errorf("ParsePod(%q) = %v, want an error", in, got)
		}
	}
}

// probe's TARGET:PORT: an address or a pod or Service by kind; a name alone
// is refused with the forms that work, since it reads like a DNS name.
func TestParseHostPort(t *testing.T) {
	addr := netip.MustParseAddr
	runParseCases(t, "ParseHostPort", ParseHostPort, []parseCase{
		{name: "an IPv4 address and port", in: "10.244.2.7:8080",
			want: Target{Addr: addr("10.244.2.7"), Protocol: v1.ProtocolTCP, Port: 8080}},
		{name: "an IPv6 address in brackets", in: "[fd00:10:244::7]:53",
			want: Target{Addr: addr("fd00:10:244::7"), Protocol: v1.ProtocolTCP, Port: 53}},
		{name: "pod/NAME in the default namespace", in: "pod/api:8080",
			want: Target{Object: podRef("shop", "api"), Protocol: v1.ProtocolTCP, Port: 8080}},
		{name: "svc/NAME in the default namespace", in: "svc/nginx-service:80",
			want: Target{Object: svcRef("shop", "nginx-service"), Protocol: v1.ProtocolTCP, Port: 80}},
		{name: "NS/pod/NAME", in: "secure/pod/database:5432",
			want: Target{Object: podRef("secure", "database"), Protocol: v1.ProtocolTCP, Port: 5432}},
		{name: "NS/svc/NAME", in: "kube-system/svc/kube-dns:53",
			want: Target{Object: svcRef("kube-system", "kube-dns"), Protocol: v1.ProtocolTCP, Port: 53}},

		{name: "a name alone is refused with the forms that work", in: "api:8080",
			err: `"api:8080": a name alone is not looked up (this machine's resolver would answer, not the cluster's DNS): name a pod or Service as pod/NAME, svc/NAME, NS/pod/NAME or NS/svc/NAME, or give an IP address`},
		{name: "NS/NAME alone is refused too", in: "secure/database:5432", err: "a name alone is not looked up"},
		{name: "a DNS name is refused", in: "example.com:443", err: "a name alone is not looked up"},
		{name: "a missing port is refused", in: "pod/api", err: "missing port"},
		{name: "a bad port is refused", in: "pod/api:http", err: `bad port "http"`},
		{name: "port 0 is refused", in: "10.0.0.1:0", err: "bad port"},
		{name: "IPv6 without brackets is refused", in: "fd00::1:80", err: "too many colons"},
		{name: "a bad IPv4 address is refused", in: "10.0.0.300:80", err: "bad IPv4 address"},
		{name: "a bad name is refused", in: "pod/Web_1:80", err: "bad pod name"},
	})
}
