package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/testserver"
)

const (
	ingress = networkingv1.PolicyTypeIngress
	egress  = networkingv1.PolicyTypeEgress
	tcp     = v1.ProtocolTCP
	udp     = v1.ProtocolUDP
)

// everything selects every pod (or namespace).
func everything() *metav1.LabelSelector { return &metav1.LabelSelector{} }

// TestNetworkPolicies is the NetworkPolicy truth-table suite: each case
// applies policies and checks the 9x9 reachability matrix of pods a, b, c in
// namespaces x, y, z against a matrix written by hand. Cases run in order
// on the same pods; each removes its policies and waits for the open matrix
// before the next starts. Pods alternate between the two nodes, so a matrix
// covers same-node and cross-node traffic.
func TestNetworkPolicies(t *testing.T) {
	e := setupNetpol(t)
	suiteStart := time.Now()
	run := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			e.begin(t)
			f(t)
		})
	}
	X, Y, Z := peer{NS: "x"}, peer{NS: "y"}, peer{NS: "z"}
	xa, xb, xc := peer{"x", "a"}, peer{"x", "b"}, peer{"x", "c"}
	yb, yc := peer{"y", "b"}, peer{"y", "c"}
	zc := peer{"z", "c"}
	anyB := peer{Pod: "b"}

	run("without policies every pod reaches every pod on every port", func(t *testing.T) {
		e.validate(t, "no policies", e.reach(true), "tcp/80", "tcp/81", "udp/80", "udp/81")
	})

	run("deny-all ingress blocks every connection into the namespace", func(t *testing.T) {
		e.create(t, "x", policy("deny-all-ingress", everything(), ingress))
		e.validate(t, "deny-all ingress in x", e.reach(true).ingress(X, false), "tcp/80", "udp/81")
	})

	run("allow-all ingress reopens a namespace that deny-all closed", func(t *testing.T) {
		e.create(t, "x", policy("deny-all-ingress", everything(), ingress))
		e.validate(t, "deny-all ingress in x", e.reach(true).ingress(X, false), "tcp/80")
		e.create(t, "x", withIngress(policy("allow-all-ingress", everything(), ingress), from(nil)))
		e.validate(t, "deny-all + allow-all ingress in x", e.reach(true), "tcp/80", "tcp/81")
	})

	run("default-deny egress blocks what the namespace sends until an egress rule allows specific pods", func(t *testing.T) {
		e.create(t, "x", policy("deny-all-egress", everything(), egress))
		r := e.reach(true).egress(X, false)
		e.validate(t, "deny-all egress in x", r, "tcp/80", "udp/80")
		e.create(t, "x", withEgress(policy("allow-to-y-b-and-x-c", everything(), egress),
			to(nil, podNSPeer(matchLabels("ns", "y"), matchLabels("pod", "b")), podPeer(matchLabels("pod", "c")))))
		r.expect(X, yb, true).expect(X, xc, true)
		e.validate(t, "deny-all egress + egress to y/b and x/c", r, "tcp/80", "udp/80")
	})

	run("a pod selector peer allows only the selected pods of the policy's own namespace", func(t *testing.T) {
		e.create(t, "x", withIngress(policy("a-from-b", matchLabels("pod", "a"), ingress),
			from(nil, podPeer(matchLabels("pod", "b")))))
		e.validate(t, "x/a from pod=b", e.reach(true).ingress(xa, false).expect(xb, xa, true), "tcp/80")
	})

	run("a namespace selector peer allows every pod of the selected namespaces", func(t *testing.T) {
		e.create(t, "x", withIngress(policy("a-from-ns-y", matchLabels("pod", "a"), ingress),
			from(nil, nsPeer(matchLabels("ns", "y")))))
		e.validate(t, "x/a from ns=y", e.reach(true).ingress(xa, false).expect(Y, xa, true), "tcp/80")
	})

	run("pod and namespace selectors in one peer allow only pods matching both", func(t *testing.T) {
		e.create(t, "x", withIngress(policy("a-from-y-b", matchLabels("pod", "a"), ingress),
			from(nil, podNSPeer(matchLabels("ns", "y"), matchLabels("pod", "b")))))
		e.validate(t, "x/a from {ns=y, pod=b}", e.reach(true).ingress(xa, false).expect(yb, xa, true), "tcp/80")
	})

	run("pod and namespace selectors in two peers allow pods matching either", func(t *testing.T) {
		e.create(t, "x", withIngress(policy("a-from-y-or-b", matchLabels("pod", "a"), ingress),
			from(nil, nsPeer(matchLabels("ns", "y")), podPeer(matchLabels("pod", "b")))))
		// The lone pod selector means pod=b of x only, not of z.
		e.validate(t, "x/a from {ns=y} or {pod=b}", e.reach(true).ingress(xa, false).expect(Y, xa, true).expect(xb, xa, true), "tcp/80")
	})

	run("matchExpressions In selects the listed pods and namespaces", func(t *testing.T) {
		e.create(t, "x", withIngress(policy("in", matchExpr("pod", metav1.LabelSelectorOpIn, "a", "b"), ingress),
			from(nil, nsPeer(matchExpr("ns", metav1.LabelSelectorOpIn, "y")))))
		e.validate(t, "x/a, x/b from ns In [y]", e.reach(true).ingress(xa, false).ingress(xb, false).expect(Y, xa, true).expect(Y, xb, true), "tcp/80")
	})

	run("matchExpressions NotIn excludes the listed namespaces", func(t *testing.T) {
		e.create(t, "x", withIngress(policy("not-in", everything(), ingress),
			from(nil, nsPeer(matchExpr("ns", metav1.LabelSelectorOpNotIn, "y")))))
		e.validate(t, "x from ns NotIn [y]", e.reach(true).expect(Y, X, false), "tcp/80")
	})

	run("matchExpressions Exists selects the pods that carry the key", func(t *testing.T) {
		e.create(t, "x", withIngress(policy("exists", matchLabels("pod", "a"), ingress),
			from(nil, podNSPeer(everything(), matchExpr("tier", metav1.LabelSelectorOpExists)))))
		e.validate(t, "x/a from tier Exists (the b pods)", e.reach(true).ingress(xa, false).expect(anyB, xa, true), "tcp/80")
	})

	run("matchExpressions DoesNotExist selects the pods without the key", func(t *testing.T) {
		e.create(t, "x", withIngress(policy("does-not-exist", matchExpr("tier", metav1.LabelSelectorOpDoesNotExist), ingress),
			from(nil, nsPeer(matchLabels("ns", "z")))))
		e.validate(t, "x/a, x/c (no tier) from ns=z", e.reach(true).ingress(xa, false).ingress(xc, false).expect(Z, xa, true).expect(Z, xc, true), "tcp/80")
	})

	run("a named port allows only the port of that name and protocol", func(t *testing.T) {
		e.create(t, "x", withIngress(policy("named-81", everything(), ingress),
			from(ports(portName(tcp, "serve-81-tcp")))))
		closed := e.reach(true).ingress(X, false)
		e.validate(t, "x allows serve-81-tcp", closed, "tcp/80", "udp/81")
		e.validate(t, "x allows serve-81-tcp", e.reach(true), "tcp/81")
	})

	run("a port name resolves in each destination pod: web is 80 in np1 and 81 in np2", func(t *testing.T) {
		np1, np2 := e.pod("w/np1"), e.pod("w/np2")
		tos := []*npPod{np1, np2}
		e.create(t, "w", withIngress(policy("web", everything(), ingress), from(ports(portName(tcp, "web")))))
		e.check(t, "ingress to port web", newReachability(e.pods, tos, true).ingress(peer{"w", "np2"}, false), tcp, 80)
		e.check(t, "ingress to port web", newReachability(e.pods, tos, true).ingress(peer{"w", "np1"}, false), tcp, 81)
		// Egress: the name resolves against the destination pod too.
		e.delete(t, "w", "web")
		e.create(t, "x", withEgress(policy("a-to-web", matchLabels("pod", "a"), egress), to(ports(portName(tcp, "web")))))
		e.check(t, "x/a egress to port web", newReachability(e.pods, tos, true).expect(xa, peer{"w", "np2"}, false), tcp, 80)
		e.check(t, "x/a egress to port web", newReachability(e.pods, tos, true).expect(xa, peer{"w", "np1"}, false), tcp, 81)
	})

	run("endPort allows a range of ports of one protocol", func(t *testing.T) {
		e.create(t, "x", withIngress(policy("ranges", everything(), ingress),
			from(ports(portRange(tcp, 81, 90), portRange(udp, 75, 80)))))
		closed := e.reach(true).ingress(X, false)
		e.validate(t, "x allows tcp 81-90, udp 75-80", closed, "tcp/80", "udp/81")
		e.validate(t, "x allows tcp 81-90, udp 75-80", e.reach(true), "tcp/81", "udp/80")
	})

	run("an ipBlock with a pod's /32 allows just that pod", func(t *testing.T) {
		e.create(t, "x", withIngress(policy("a-from-ip", matchLabels("pod", "a"), ingress),
			from(nil, ipPeer(e.pod("y/b").IP+"/32"))))
		e.validate(t, "x/a from y/b's /32", e.reach(true).ingress(xa, false).expect(yb, xa, true), "tcp/80")
	})

	run("ipBlock except carves pods out of a range, for ingress and egress", func(t *testing.T) {
		// Ingress: x/a from node 1's pod CIDR except x/c.
		node1 := e.c.name + "-node-1"
		n, err := e.cs.CoreV1().Nodes().Get(context.Background(), node1, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		excluded := e.pod("x/c")
		if excluded.Node != node1 {
			t.Fatalf("x/c is on %s, want %s (the fixture alternates nodes)", excluded.Node, node1)
		}
		e.create(t, "x", withIngress(policy("a-from-node1-range", matchLabels("pod", "a"), ingress),
			from(nil, ipPeer(n.Spec.PodCIDR, excluded.IP+"/32"))))
		r := e.reach(true).ingress(xa, false)
		for _, p := range e.podsOn(node1) {
			r.expect(peer{p.NS, p.Name}, xa, p != excluded)
		}
		// Egress: x/b to the cluster's pod CIDR (sharedCluster's) except z's pods.
		var except []string
		for _, p := range e.pods {
			if p.NS == "z" {
				except = append(except, p.IP+"/32")
			}
		}
		e.create(t, "x", withEgress(policy("b-to-all-but-z", matchLabels("pod", "b"), egress),
			to(nil, ipPeer("10.160.0.0/16", except...))))
		r.expect(xb, Z, false)
		e.validate(t, "x/a from node-1 range except x/c; x/b to pods except z", r, "tcp/80", "udp/81")
	})

	run("ingress and egress together: both ends must allow a connection", func(t *testing.T) {
		p := policy("a-in-from-y-out-to-z", matchLabels("pod", "a"), ingress, egress)
		p = withEgress(withIngress(p, from(nil, nsPeer(matchLabels("ns", "y")))), to(nil, nsPeer(matchLabels("ns", "z"))))
		e.create(t, "x", p)
		e.create(t, "z", withIngress(policy("from-x-a", everything(), ingress),
			from(nil, podNSPeer(matchLabels("ns", "x"), matchLabels("pod", "a")))))
		r := e.reach(true)
		r.ingress(xa, false).expect(Y, xa, true) // x/a accepts only y
		r.egress(xa, false)                      // x/a sends only to z ...
		r.ingress(Z, false).expect(xa, Z, true)  // ... and z accepts only x/a
		e.validate(t, "x/a in from y, out to z; z in from x/a", r, "tcp/80", "udp/81")
	})

	run("updating a policy's selectors moves the isolation", func(t *testing.T) {
		p := withIngress(policy("moving", matchLabels("pod", "a"), ingress), from(nil, podPeer(matchLabels("pod", "b"))))
		e.create(t, "x", p)
		e.validate(t, "x/a from x/b", e.reach(true).ingress(xa, false).expect(xb, xa, true), "tcp/80")
		p = withIngress(policy("moving", matchLabels("pod", "c"), ingress), from(nil, nsPeer(matchLabels("ns", "z"))))
		e.update(t, "x", p)
		e.validate(t, "updated: x/c from z", e.reach(true).ingress(xc, false).expect(Z, xc, true), "tcp/80")
	})

	run("relabelling pods changes who is isolated and who is allowed", func(t *testing.T) {
		e.create(t, "x", withIngress(policy("by-labels", matchLabels("isolated", "true"), ingress),
			from(nil, podNSPeer(everything(), matchLabels("allowed", "true")))))
		e.validate(t, "no pod labelled", e.reach(true), "tcp/80")
		e.setPodLabel(t, "x/a", "isolated", strp("true"))
		r := e.reach(true).ingress(xa, false)
		e.validate(t, "x/a isolated", r, "tcp/80")
		e.setPodLabel(t, "y/c", "allowed", strp("true"))
		r.expect(yc, xa, true)
		e.validate(t, "x/a isolated, y/c allowed", r, "tcp/80")
		e.setPodLabel(t, "x/b", "isolated", strp("true"))
		r.ingress(xb, false).expect(yc, xb, true)
		e.validate(t, "x/a and x/b isolated, y/c allowed", r, "tcp/80")
		e.setPodLabel(t, "x/a", "isolated", nil)
		r.ingress(xa, true)
		e.validate(t, "x/b isolated, y/c allowed", r, "tcp/80")
	})

	run("relabelling a namespace changes which namespaces are allowed", func(t *testing.T) {
		e.create(t, "x", withIngress(policy("from-trusted", everything(), ingress),
			from(nil, nsPeer(matchLabels("trusted", "true")))))
		e.validate(t, "no namespace trusted", e.reach(true).ingress(X, false), "tcp/80")
		e.setNamespaceLabel(t, "y", "trusted", strp("true"))
		e.validate(t, "y trusted", e.reach(true).ingress(X, false).expect(Y, X, true), "tcp/80")
		e.setNamespaceLabel(t, "y", "trusted", nil)
		e.setNamespaceLabel(t, "z", "trusted", strp("true"))
		e.validate(t, "z trusted, y no longer", e.reach(true).ingress(X, false).expect(Z, X, true), "tcp/80")
	})

	run("multiple policies selecting the same pod add up", func(t *testing.T) {
		e.create(t, "x", withIngress(policy("a-from-y", matchLabels("pod", "a"), ingress), from(nil, nsPeer(matchLabels("ns", "y")))))
		r := e.reach(true).ingress(xa, false).expect(Y, xa, true)
		e.validate(t, "x/a from y", r, "tcp/80")
		e.create(t, "x", withIngress(policy("a-from-z-c", matchLabels("pod", "a"), ingress),
			from(nil, podNSPeer(matchLabels("ns", "z"), matchLabels("pod", "c")))))
		e.create(t, "x", withIngress(policy("ab-from-c", matchExpr("pod", metav1.LabelSelectorOpIn, "a", "b"), ingress),
			from(nil, podPeer(matchLabels("pod", "c")))))
		r.expect(zc, xa, true).expect(xc, xa, true).ingress(xb, false).expect(xc, xb, true)
		e.validate(t, "x/a from y, z/c, x/c; x/b from x/c", r, "tcp/80")
	})

	run("UDP rules open UDP only, and a port without a number is every port of its protocol", func(t *testing.T) {
		e.create(t, "x", policy("deny-all-ingress", everything(), ingress))
		e.create(t, "x", withIngress(policy("udp-80-from-y", everything(), ingress),
			from(ports(portNum(udp, 80)), nsPeer(matchLabels("ns", "y")))))
		e.create(t, "z", withEgress(policy("udp-only-out", everything(), egress), to(ports(allPortsOf(udp)))))
		e.validate(t, "x in: udp/80 from y; z out: UDP only", e.reach(true).ingress(X, false).egress(Z, false), "tcp/80")
		e.validate(t, "x in: udp/80 from y; z out: UDP only", e.reach(true).ingress(X, false).expect(Y, X, true), "udp/80")
		e.validate(t, "x in: udp/80 from y; z out: UDP only", e.reach(true).ingress(X, false), "udp/81")
	})

	run("the node still reaches its pods under deny-all both ways, so they stay Ready", func(t *testing.T) {
		for _, ns := range npNamespaces {
			e.create(t, ns, policy("deny-all", everything(), ingress, egress))
		}
		e.validate(t, "deny-all both ways everywhere", e.reach(false), "tcp/80")
		for _, p := range e.pods {
			for _, pp := range []string{"tcp/80", "udp/81"} {
				proto, port := parseProtoPort(pp)
				reply, err := probeConn(netns.Path(p.Node), proto, net.JoinHostPort(p.IP, fmt.Sprint(port)), npProbeTimeout)
				if pod, _, ok := testserver.ParseReply(reply); err != nil || !ok || pod != p.Name {
					t.Errorf("node %s -> %s (%s) %s: %v %q", p.Node, p.Key(), p.IP, pp, err, strings.TrimSpace(reply))
				}
			}
		}
		// Readiness probes run every second with failureThreshold 1: if
		// the node's probes were dropped, pods would be NotReady by now.
		time.Sleep(3 * time.Second)
		for _, p := range e.pods {
			got, err := e.cs.CoreV1().Pods(p.RealNS).Get(context.Background(), p.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !podReady(got) {
				t.Errorf("pod %s is not Ready under deny-all: the node's readiness probes are blocked", p.Key())
			}
		}
	})
	t.Logf("netpol cases took %s", time.Since(suiteStart).Round(100*time.Millisecond))
}
