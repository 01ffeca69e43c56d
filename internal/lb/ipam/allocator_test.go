package ipam

// Fixture conventions: pools hand out 172.30.0.200/29 ("default", the local
// cluster's LB pool) and fd00:30::/126 ("v6"); "reserved" is
// 172.30.0.100-172.30.0.101 with autoAssign false; "team-a" is
// 172.30.0.50/31 for Services labelled team=a. Services are built with the
// real v1.Service type and converted by FromService, as the controller does.

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	"github.com/podnet/podnet/internal/lb/pool"
)

func rng(first, last string) pool.Range {
	return pool.Range{First: netip.MustParseAddr(first), Last: netip.MustParseAddr(last)}
}

func fixturePools() []Pool {
	return []Pool{
		{Name: "default", AutoAssign: true, Ranges: []pool.Range{rng("172.30.0.200", "172.30.0.207")}},
		{Name: "v6", AutoAssign: true, Ranges: []pool.Range{rng("fd00:30::", "fd00:30::3")}},
		{Name: "reserved", Ranges: []pool.Range{rng("172.30.0.100", "172.30.0.101")}},
		{Name: "team-a", AutoAssign: true, Ranges: []pool.Range{rng("172.30.0.50", "172.30.0.51")},
			Services: labels.SelectorFromSet(labels.Set{"team": "a"})},
	}
}

// svcOpt changes a fixture Service.
type svcOpt func(*v1.Service)

func annotate(k, v string) svcOpt { return func(s *v1.Service) { s.Annotations[k] = v } }
func ports(ps ...string) svcOpt {
	return func(s *v1.Service) {
		s.Spec.Ports = nil
		for _, p := range ps {
			var port int32
			var proto string
			fmt.Sscanf(strings.Replace(p, "/", " ", 1), "%d %s", &port, &proto)
			s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Port: port, Protocol: v1.Protocol(proto)})
		}
	}
}
func status(ips ...string) svcOpt {
	return func(s *v1.Service) {
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, v1.LoadBalancerIngress{IP: ip})
		}
	}
}
func dual(policy v1.IPFamilyPolicy) svcOpt {
	return func(s *v1.Service) {
		s.Spec.IPFamilyPolicy = &policy
		s.Spec.IPFamilies = []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}
	}
}

// lbService is a LoadBalancer Service ns/name created at minute age.
func lbService(key string, age int, opts ...svcOpt) *v1.Service {
	ns, name, _ := strings.Cut(key, "/")
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{}, Labels: map[string]string{},
			CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, age, 0, 0, time.UTC))},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, IPFamilies: []v1.IPFamily{v1.IPv4Protocol},
			Ports: []v1.ServicePort{{Port: 80, Protocol: v1.ProtocolTCP}}},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func convert(t *testing.T, svcs ...*v1.Service) []Service {
	t.Helper()
	var out []Service
	for _, s := range svcs {
		if c, ok := FromService(s, nil); ok {
			out = append(out, c)
		}
	}
	return out
}

// render writes a result as sorted lines "ns/name: ip,ip" or
// "ns/name: pending Reason".
func render(r Result) string {
	var lines []string
	for k, as := range r.Assigned {
		var s []string
		for _, a := range as {
			s = append(s, a.String())
		}
		lines = append(lines, k+": "+strings.Join(s, ","))
	}
	for k, p := range r.Pending {
		lines = append(lines, k+": pending "+string(p.Reason))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func TestAllocate(t *testing.T) {
	tests := []struct {
		name  string
		pools []Pool // default fixturePools
		svcs  []*v1.Service
		want  string
	}{
		{name: "a Service gets the lowest free address of the first pool",
			svcs: []*v1.Service{lbService("a/web", 1)}, want: "a/web: 172.30.0.200"},
		{name: "the older Service gets the lower address whatever the input order",
			svcs: []*v1.Service{lbService("z/new", 2), lbService("a/old", 1)},
			want: "a/old: 172.30.0.200\nz/new: 172.30.0.201"},
		{name: "Services of other types and classes are left alone",
			svcs: []*v1.Service{
				lbService("a/np", 1, func(s *v1.Service) { s.Spec.Type = v1.ServiceTypeNodePort }),
				lbService("a/other", 1, func(s *v1.Service) { s.Spec.LoadBalancerClass = ptr.To("example.com/lb") }),
				lbService("a/ours", 2, func(s *v1.Service) { s.Spec.LoadBalancerClass = ptr.To(Class) }),
			},
			want: "a/ours: 172.30.0.200"},
		{name: "an address in the status is kept, even when a lower one is free",
			svcs: []*v1.Service{lbService("a/web", 1, status("172.30.0.205")), lbService("a/b", 2)},
			want: "a/b: 172.30.0.200\na/web: 172.30.0.205"},
		{name: "two Services holding one address in their status: the older keeps it",
			svcs: []*v1.Service{lbService("a/new", 2, status("172.30.0.203")), lbService("a/old", 1, status("172.30.0.203"))},
			want: "a/new: 172.30.0.200\na/old: 172.30.0.203"},
		{name: "an address in the status outside every pool is replaced",
			svcs: []*v1.Service{lbService("a/web", 1, status("192.0.2.1"))},
			want: "a/web: 172.30.0.200"},
		{name: "the annotation's address is honoured, also from a pool without autoAssign",
			svcs: []*v1.Service{lbService("a/web", 1, annotate(AnnotationIP, "172.30.0.101"))},
			want: "a/web: 172.30.0.101"},
		{name: "the deprecated spec.loadBalancerIP is honoured",
			svcs: []*v1.Service{lbService("a/web", 1, func(s *v1.Service) { s.Spec.LoadBalancerIP = "172.30.0.206" })},
			want: "a/web: 172.30.0.206"},
		{name: "a requested address moves a Service off its old one",
			svcs: []*v1.Service{lbService("a/web", 1, status("172.30.0.200"), annotate(AnnotationIP, "172.30.0.204"))},
			want: "a/web: 172.30.0.204"},
		{name: "a requested address held by an older Service leaves the newer pending",
			svcs: []*v1.Service{lbService("a/old", 1, status("172.30.0.202")), lbService("a/new", 2, annotate(AnnotationIP, "172.30.0.202"))},
			want: "a/new: pending RequestedIPTaken\na/old: 172.30.0.202"},
		{name: "an address in use is not taken away by a request, even an older Service's",
			svcs: []*v1.Service{lbService("a/req", 1, annotate(AnnotationIP, "172.30.0.202")), lbService("a/had", 2, status("172.30.0.202"))},
			want: "a/had: 172.30.0.202\na/req: pending RequestedIPTaken"},
		{name: "a request is served before addresses are handed out, even to older Services",
			svcs: []*v1.Service{lbService("a/auto", 1), lbService("a/req", 2, annotate(AnnotationIP, "172.30.0.200"))},
			want: "a/auto: 172.30.0.201\na/req: 172.30.0.200"},
		{name: "a requested address outside every pool leaves the Service pending",
			svcs: []*v1.Service{lbService("a/web", 1, annotate(AnnotationIP, "192.0.2.7"))},
			want: "a/web: pending RequestedIPOutsidePools"},
		{name: "an unreadable request leaves the Service pending",
			svcs: []*v1.Service{lbService("a/web", 1, annotate(AnnotationIP, "172.30.0.300"))},
			want: "a/web: pending InvalidRequest"},
		{name: "a request of a family the Service does not have is refused",
			svcs: []*v1.Service{lbService("a/web", 1, annotate(AnnotationIP, "fd00:30::1"))},
			want: "a/web: pending InvalidRequest"},
		{name: "an exhausted pool leaves the newest Service pending",
			pools: []Pool{{Name: "small", AutoAssign: true, Ranges: []pool.Range{rng("10.0.0.1", "10.0.0.2")}}},
			svcs:  []*v1.Service{lbService("a/s1", 1), lbService("a/s2", 2), lbService("a/s3", 3)},
			want:  "a/s1: 10.0.0.1\na/s2: 10.0.0.2\na/s3: pending PoolExhausted"},
		{name: "dual-stack gets one address of each family",
			svcs: []*v1.Service{lbService("a/web", 1, dual(v1.IPFamilyPolicyRequireDualStack))},
			want: "a/web: 172.30.0.200,fd00:30::"},
		{name: "RequireDualStack without an IPv6 pool stays pending and holds nothing",
			pools: fixturePools()[:1],
			svcs:  []*v1.Service{lbService("a/dual", 1, dual(v1.IPFamilyPolicyRequireDualStack)), lbService("a/v4", 2)},
			want:  "a/dual: pending NoEligiblePool\na/v4: 172.30.0.200"},
		{name: "PreferDualStack without an IPv6 pool gets its IPv4 address",
			pools: fixturePools()[:1],
			svcs:  []*v1.Service{lbService("a/dual", 1, dual(v1.IPFamilyPolicyPreferDualStack))},
			want:  "a/dual: 172.30.0.200"},
		{name: "Services with one sharing key and distinct ports share an address",
			svcs: []*v1.Service{lbService("a/http", 1, annotate(AnnotationSharingKey, "k"), ports("80/TCP")),
				lbService("b/dns", 2, annotate(AnnotationSharingKey, "k"), ports("53/UDP", "53/TCP"))},
			want: "a/http: 172.30.0.200\nb/dns: 172.30.0.200"},
		{name: "the same port number of another protocol does not overlap",
			svcs: []*v1.Service{lbService("a/tcp", 1, annotate(AnnotationSharingKey, "k"), ports("53/TCP")),
				lbService("a/udp", 2, annotate(AnnotationSharingKey, "k"), ports("53/UDP"))},
			want: "a/tcp: 172.30.0.200\na/udp: 172.30.0.200"},
		{name: "a sharing key with overlapping ports gets another address",
			svcs: []*v1.Service{lbService("a/one", 1, annotate(AnnotationSharingKey, "k")),
				lbService("a/two", 2, annotate(AnnotationSharingKey, "k"))},
			want: "a/one: 172.30.0.200\na/two: 172.30.0.201"},
		{name: "a Service without the key never shares",
			svcs: []*v1.Service{lbService("a/one", 1, annotate(AnnotationSharingKey, "k"), ports("80/TCP"), status("172.30.0.200")),
				lbService("a/two", 2, annotate(AnnotationIP, "172.30.0.200"), ports("443/TCP"))},
			want: "a/one: 172.30.0.200\na/two: pending RequestedIPTaken"},
		{name: "a requested shared address is honoured when the ports are distinct",
			svcs: []*v1.Service{lbService("a/one", 1, annotate(AnnotationSharingKey, "k"), annotate(AnnotationIP, "172.30.0.203"), ports("80/TCP")),
				lbService("a/two", 2, annotate(AnnotationSharingKey, "k"), annotate(AnnotationIP, "172.30.0.203"), ports("443/TCP"))},
			want: "a/one: 172.30.0.203\na/two: 172.30.0.203"},
		{name: "a pool's service selector keeps others out and lets its Services in",
			pools: fixturePools()[3:],
			svcs: []*v1.Service{lbService("a/mine", 1, func(s *v1.Service) { s.Labels["team"] = "a" }),
				lbService("b/theirs", 2)},
			want: "a/mine: 172.30.0.50\nb/theirs: pending NoEligiblePool"},
		{name: "the pool annotation picks a pool without autoAssign",
			svcs: []*v1.Service{lbService("a/web", 1, annotate(AnnotationPool, "reserved"))},
			want: "a/web: 172.30.0.100"},
		{name: "a pool without autoAssign serves nobody who did not ask",
			pools: fixturePools()[2:3],
			svcs:  []*v1.Service{lbService("a/web", 1)},
			want:  "a/web: pending NoEligiblePool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pools := tt.pools
			if pools == nil {
				pools = fixturePools()
			}
			got := render(Allocate(pools, convert(t, tt.svcs...)))
			if got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestAllocateCountsPoolUsage(t *testing.T) {
	r := Allocate(fixturePools(), convert(t, lbService("a/one", 1), lbService("a/two", 2, dual(v1.IPFamilyPolicyRequireDualStack))))
	want := map[string]Usage{"default": {Used: 2, Free: 6}, "v6": {Used: 1, Free: 3}, "reserved": {Free: 2}, "team-a": {Free: 2}}
	for name, u := range want {
		if r.Usage[name] != u {
			t.Errorf("pool %s: usage %+v, want %+v", name, r.Usage[name], u)
		}
	}
	big := Allocate([]Pool{{Name: "huge", Ranges: []pool.Range{rng("fd00::", "fd00::ffff:ffff:ffff:ffff:ffff")}}}, nil)
	if big.Usage["huge"].Free != 1<<63-1 {
		t.Errorf("a pool larger than int64 has free %d, want it saturated", big.Usage["huge"].Free)
	}
}

func TestAllocateTellsWhoHoldsARequestedAddress(t *testing.T) {
	r := Allocate(fixturePools(), convert(t, lbService("a/old", 1, status("172.30.0.202")), lbService("a/new", 2, annotate(AnnotationIP, "172.30.0.202"))))
	if msg := r.Pending["a/new"].Message; !strings.Contains(msg, "172.30.0.202") || !strings.Contains(msg, "a/old") {
		t.Errorf("pending message %q should name the address and its holder", msg)
	}
}
