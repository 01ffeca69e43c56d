package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/flow"
	"github.com/podnet/podnet/internal/trace"
)

// traceEnv is a namespace of its own (unique name, labelled ns=SHORT, and
// deleted with its pods when the test ends) on the shared cluster.
func traceNamespace(t *testing.T, c *cluster, cs kubernetes.Interface, prefix, short string) string {
	t.Helper()
	name := prefix + "-" + randHex(3)
	_, err := cs.CoreV1().Namespaces().Create(context.Background(), &v1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: name, Labels: map[string]string{"ns": short}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() { (&npEnv{cs: cs}).deleteNamespace(t, name) })
	return name
}

// tracePods creates built-in test server pods (ports 80 and 81, TCP and
// UDP) named after their labels' pod= value, on the nodes given, and waits
// until they are Ready.
func tracePods(t *testing.T, c *cluster, cs kubernetes.Interface, ns string, nodeOf map[string]int) {
	t.Helper()
	for name, n := range nodeOf {
		p := npPodSpec(name, fmt.Sprintf("%s-node-%d", c.name, n), map[string]string{"pod": name}, npServingPorts())
		if _, err := cs.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod %s/%s: %v", ns, name, err)
		}
	}
	c.runningPods(t, ns, "", len(nodeOf), true)
}

// traceJSON runs podnet trace ARGS -o json and returns the explanation
// with the probe's check, and the exit status.
type traceJSONOut struct {
	trace.Explanation
	Probe *trace.ProbeCheck `json:"probe"`
	Flows []flow.Record     `json:"flows"`
}

func (c *cluster) traceJSON(t *testing.T, args ...string) (traceJSONOut, int, string) {
	t.Helper()
	out, err := c.podnet(append([]string{"trace", "-o", "json"}, args...)...)
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("podnet trace %v: %v\n%s", args, err, out)
	}
	var r traceJSONOut
	if code < 2 {
		if jerr := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &r); jerr != nil {
			t.Fatalf("podnet trace %v: exit %d, output is no JSON (%v):\n%s", args, code, jerr, out)
		}
	}
	return r, code, out
}

// One trace of a DNS name from a pod on node 1: the pod's search path
// turns web.NS into the Service's name, the Service's one ready endpoint
// is a pod on node 2, the route goes to node 2, and the ingress verdict
// names the rule that allows it; a pod the rule does not select is
// denied by the default deny, named as such. --probe agrees with both.
func TestTraceDNSNameThroughServiceAcrossNodes(t *testing.T) {
	c := sharedCluster(t)
	cs := c.client(t)
	ns := traceNamespace(t, c, cs, "trace", "trace")
	tracePods(t, c, cs, ns, map[string]int{"client": 1, "other": 1, "web": 2})
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: v1.ServiceSpec{
		Selector: map[string]string{"pod": "web"},
		Ports:    []v1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(81), Protocol: v1.ProtocolTCP}}}}
	svc, err := cs.CoreV1().Services(ns).Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := &npEnv{c: c, cs: cs, ns: map[string]string{"t": ns}, policies: map[string][]string{}}
	e.create(t, "t", policy("default-deny-ingress", everything(), ingress))
	e.create(t, "t", withIngress(policy("web-from-client", matchLabels("pod", "web"), ingress),
		from(ports(portNum(tcp, 81)), podPeer(matchLabels("pod", "client")))))

	name := "web." + ns
	var r traceJSONOut
	eventually(t, 30*time.Second, "trace through the Service reaches its endpoint", func() error {
		var code int
		var out string
		r, code, out = c.traceJSON(t, "-n", ns, "client", name+":8080")
		if code != 0 || len(r.Paths) != 1 {
			return fmt.Errorf("exit %d, %d paths:\n%s", code, len(r.Paths), out)
		}
		return nil
	})
	if r.DNS == nil || len(r.DNS.Tries) != 2 || !strings.HasPrefix(r.DNS.Tries[0].Answer, "NXDOMAIN") ||
		r.DNS.Tries[1].Name != name+".svc.cluster.local." || len(r.DNS.Addrs) != 1 || r.DNS.Addrs[0].String() != svc.Spec.ClusterIP {
		t.Errorf("dns step %+v: want %s.NS.svc... NXDOMAIN, then %s.svc.cluster.local. -> %s", r.DNS, name, name, svc.Spec.ClusterIP)
	}
	if r.Service == nil || r.Service.Service != ns+"/web" || r.Service.Outcome != trace.ServiceDNAT || len(r.Service.Endpoints) != 1 ||
		r.Service.Endpoints[0].Addr.Port() != 81 || r.Service.Node != c.name+"-node-1" {
		t.Errorf("service step %+v: want %s/web decided on node 1, one endpoint on port 81", r.Service, ns)
	}
	p := r.Paths[0]
	if p.Pod != ns+"/web" || p.Route.From != c.name+"-node-1" || p.Route.To != c.name+"-node-2" || (p.Route.Kind != trace.RouteDirect && p.Route.Kind != trace.RouteVXLAN) {
		t.Errorf("path %+v: want %s/web, routed from node 1 to node 2", p, ns)
	}
	if want := ns + "/web-from-client ingress[0]"; !strings.Contains(strings.Join(p.Policy.Ingress.AllowedBy, ","), want) || !p.Policy.Egress.Allowed {
		t.Errorf("policy %+v: want ingress allowed by %s", p.Policy, want)
	}

	// --probe: the allowed connection gets through, the denied one not.
	eventually(t, 30*time.Second, "trace --probe agrees (allowed)", func() error {
		r, code, out := c.traceJSON(t, "-n", ns, "client", name+":8080", "--probe")
		if code != 0 || r.Probe == nil || !r.Probe.Agrees || !r.Probe.Replied || r.Probe.Pod != "web" {
			return fmt.Errorf("exit %d:\n%s", code, out)
		}
		return nil
	})
	eventually(t, 30*time.Second, "trace --probe agrees (denied)", func() error {
		r, code, out := c.traceJSON(t, "-n", ns, "other", name+":8080", "--probe")
		if code != 1 || r.Verdict != trace.VerdictDenied || r.Probe == nil || !r.Probe.Agrees || r.Probe.Replied {
			return fmt.Errorf("exit %d:\n%s", code, out)
		}
		if iso := strings.Join(r.Paths[0].Policy.Ingress.IsolatedBy, ","); !strings.Contains(iso, ns+"/default-deny-ingress") {
			return fmt.Errorf("isolated by %q, want the default deny", iso)
		}
		// The flow record the probe produced: dropped at the destination,
		// naming the same default deny.
		if !slices.ContainsFunc(r.Flows, func(f flow.Record) bool {
			return f.Verdict == flow.Dropped && strings.Contains(f.PolicyText(), ns+"/default-deny-ingress")
		}) {
			return fmt.Errorf("no dropped flow record naming %s/default-deny-ingress among %d:\n%s", ns, len(r.Flows), out)
		}
		return nil
	})

	// The text form, step by step.
	out, err := c.podnet("trace", "-n", ns, "client", name+":8080")
	for _, want := range []string{
		"dns: " + name + " (search " + ns + ".svc.cluster.local svc.cluster.local cluster.local",
		"service: " + ns + "/web (cluster IP " + svc.Spec.ClusterIP + "), decided on " + c.name + "-node-1",
		"route: " + c.name + "-node-1 -> " + c.name + "-node-2: ",
		"allowed by " + ns + "/web-from-client ingress[0]",
	} {
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("podnet trace: %v\n%s\nwant it to contain %q", err, out, want)
		}
	}
}

// A name outside the cluster goes through the search path, then upstream;
// a Service without a ready endpoint is rejected.
func TestTraceExternalNameAndServiceWithoutEndpoints(t *testing.T) {
	c := sharedCluster(t)
	cs := c.client(t)
	ns := traceNamespace(t, c, cs, "trace", "trace")
	tracePods(t, c, cs, ns, map[string]int{"client": 1})
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "nobody"}, Spec: v1.ServiceSpec{
		Selector: map[string]string{"pod": "none"}, Ports: []v1.ServicePort{{Port: 80, Protocol: v1.ProtocolTCP}}}}
	if _, err := cs.CoreV1().Services(ns).Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r, code, out := c.traceJSON(t, "-n", ns, "client", "example.com:443")
	if code != 1 || r.Verdict != trace.VerdictUnresolved || r.DNS == nil || r.DNS.Forwarded != "example.com." {
		t.Errorf("example.com: exit %d, want 1 and forwarded upstream:\n%s", code, out)
	}
	r, code, out = c.traceJSON(t, "-n", ns, "client", "svc/nobody:80", "--probe")
	if code != 1 || r.Verdict != trace.VerdictRejected || r.Probe == nil || !r.Probe.Agrees || r.Probe.Replied {
		t.Errorf("a Service without endpoints: exit %d, want 1, rejected, and a probe that agrees:\n%s", code, out)
	}
}

// trace --probe agrees with reality on cases of the NetworkPolicy suite
// (TestNetworkPolicies), for every pair of pods x/a, x/b, y/a, y/b spread
// over both nodes.
func TestTraceProbeAgreesOnNetworkPolicyCases(t *testing.T) {
	c := sharedCluster(t)
	cs := c.client(t)
	e := &npEnv{c: c, cs: cs, ns: map[string]string{}, policies: map[string][]string{}}
	for _, short := range []string{"x", "y"} {
		e.ns[short] = traceNamespace(t, c, cs, "trace-"+short, short)
		tracePods(t, c, cs, e.ns[short], map[string]int{"a": 1, "b": 2})
	}
	pods := []string{"x/a", "x/b", "y/a", "y/b"}
	for _, tc := range []struct {
		name     string
		policies func(t *testing.T)
		port     string
	}{
		{"x/a from pod=b only", func(t *testing.T) {
			e.create(t, "x", withIngress(policy("a-from-b", matchLabels("pod", "a"), ingress), from(nil, podPeer(matchLabels("pod", "b")))))
		}, "80"},
		{"deny-all egress in y but to x/b", func(t *testing.T) {
			e.create(t, "y", policy("deny-all-egress", everything(), egress))
			e.create(t, "y", withEgress(policy("to-x-b", everything(), egress),
				to(nil, podNSPeer(matchLabels("ns", "x"), matchLabels("pod", "b")))))
		}, "81/udp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.policies(t)
			t.Cleanup(func() {
				for ns, names := range e.policies {
					for _, n := range names {
						_ = cs.NetworkingV1().NetworkPolicies(ns).Delete(context.Background(), n, metav1.DeleteOptions{})
					}
				}
				e.policies = map[string][]string{}
			})
			for _, from := range pods {
				for _, to := range pods {
					fns, fname, _ := strings.Cut(from, "/")
					tns, tname, _ := strings.Cut(to, "/")
					target := e.ns[tns] + "/pod/" + tname + ":" + tc.port
					eventually(t, 20*time.Second, from+" -> "+to+" trace --probe agrees", func() error {
						r, code, out := c.traceJSON(t, "-n", e.ns[fns], fname, target, "--probe")
						if code == 2 || r.Probe == nil || !r.Probe.Agrees {
							return fmt.Errorf("exit %d:\n%s", code, out)
						}
						return nil
					})
				}
			}
		})
	}
}
