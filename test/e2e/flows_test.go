package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/podnet/podnet/internal/flow"
	"github.com/podnet/podnet/internal/flow/logrule"
	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/netns"
)

// flowsEnv is a namespace of its own: Deployment web (one pod on node-2,
// TCP 8080 and UDP 8081) behind Service web (80 → 8080), and pods client
// and intruder on node-1. NetworkPolicy web-allow-client isolates web for
// ingress and allows only client on TCP 8080.
type flowsEnv struct {
	c                  *cluster
	ns                 string
	web, client, intr  *npPod
	webNode, otherNode string
}

func setupFlows(t *testing.T) *flowsEnv {
	t.Helper()
	c := sharedCluster(t)
	cs := c.client(t)
	ctx := context.Background()
	e := &flowsEnv{c: c, ns: "flows-" + randHex(3), webNode: c.name + "-node-2", otherNode: c.name + "-node-1"}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	np := &npEnv{c: c, cs: cs}
	t.Cleanup(func() { np.deleteNamespace(t, e.ns) })
	ports := []v1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: v1.ProtocolTCP}, {ContainerPort: 8081, Protocol: v1.ProtocolUDP}}
	webPod := npPodSpec("", e.webNode, map[string]string{"app": "web"}, ports)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{
		Replicas: new(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: webPod.Labels}, Spec: webPod.Spec}}}
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: v1.ServiceSpec{Selector: map[string]string{"app": "web"},
		Ports: []v1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: v1.ProtocolTCP}}}}
	tcp := v1.ProtocolTCP
	port := intstr.FromInt32(8080)
	pol := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "web-allow-client"}, Spec: networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}},
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}}}}}}
	errs := []error{}
	_, err := cs.AppsV1().Deployments(e.ns).Create(ctx, dep, metav1.CreateOptions{})
	errs = append(errs, err)
	_, err = cs.CoreV1().Services(e.ns).Create(ctx, svc, metav1.CreateOptions{})
	errs = append(errs, err)
	_, err = cs.NetworkingV1().NetworkPolicies(e.ns).Create(ctx, pol, metav1.CreateOptions{})
	errs = append(errs, err)
	for _, name := range []string{"client", "intruder"} {
		_, err = cs.CoreV1().Pods(e.ns).Create(ctx, npPodSpec(name, e.otherNode, map[string]string{"app": name}, ports), metav1.CreateOptions{})
		errs = append(errs, err)
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg := localcluster.DefaultConfig(c.name)
	pod := func(selector string) *npPod {
		p := c.runningPods(t, e.ns, selector, 1, true)[0]
		return &npPod{NS: e.ns, Name: p.Name, RealNS: e.ns, Node: p.Spec.NodeName, IP: p.Status.PodIP, UID: p.UID,
			NetNS: netns.Path(cfg.PodNSName(string(p.UID)))}
	}
	e.web, e.client, e.intr = pod("app=web"), pod("app=client"), pod("app=intruder")
	return e
}

// flows runs podnet flows -o json with args and returns the records.
func (e *flowsEnv) flows(t *testing.T, args ...string) []flow.Record {
	t.Helper()
	out, err := e.c.podnet(append([]string{"flows", "-o", "json", "-n", e.ns}, args...)...)
	if err != nil {
		t.Fatalf("podnet flows %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var recs []flow.Record
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r flow.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("podnet flows printed %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// TestFlowsDeniedConnectionNamesPolicyAndDirection: a connection the
// policy denies shows in podnet flows within a second of being sent, as a
// drop at the destination's ingress with the isolating policy.
func TestFlowsDeniedConnectionNamesPolicyAndDirection(t *testing.T) {
	e := setupFlows(t)
	start := time.Now()
	go func() {
		_, _ = probeConn(e.intr.NetNS, v1.ProtocolTCP, net.JoinHostPort(e.web.IP, "8080"), 2*time.Second)
	}()
	var found *flow.Record
	var seenAfter time.Duration
	for time.Since(start) < 5*time.Second && found == nil {
		for _, r := range e.flows(t, "--verdict", "dropped", "--from-pod", e.intr.Name, "--since", "1m") {
			if r.Destination.Pod == e.web.Name {
				found = &r
				break
			}
		}
		seenAfter = time.Since(start)
	}
	if found == nil {
		t.Fatal("no record of the denied connection after 5s")
	}
	t.Logf("record %+v visible through podnet flows %s after the SYN", *found, seenAfter.Round(time.Millisecond))
	if d := found.Time.Sub(start); d > time.Second || d < -time.Second {
		t.Errorf("the record's time is %s after the SYN, want within a second", d)
	}
	if seenAfter > 2*time.Second {
		t.Errorf("podnet flows showed it only %s after the SYN", seenAfter)
	}
	want := []flow.Policy{{Direction: "ingress", IsolatedBy: []string{e.ns + "/web-allow-client"}, DefaultDeny: true}}
	if found.Node != e.webNode || found.Direction != "ingress" || found.Reason != "policy-denied" ||
		found.Destination.Workload != "Deployment/web" || found.Destination.Port != 8080 || fmt.Sprint(found.Policies) != fmt.Sprint(want) {
		t.Errorf("record %+v: want node %s, ingress, policy-denied, Deployment/web:8080, policies %+v", *found, e.webNode, want)
	}
}

// TestFlowsAllowedConnectionNamesServiceAndEndpoint: a connection through
// the Service is a forwarded record at the client's node with the Service,
// the endpoint pod and the rule that allowed it.
func TestFlowsAllowedConnectionNamesServiceAndEndpoint(t *testing.T) {
	e := setupFlows(t)
	svc, err := e.c.client(t).CoreV1().Services(e.ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "client reaches the Service", func() error {
		_, err := probeConn(e.client.NetNS, v1.ProtocolTCP, net.JoinHostPort(svc.Spec.ClusterIP, "80"), 2*time.Second)
		return err
	})
	var got *flow.Record
	eventually(t, 5*time.Second, "a record of the connection", func() error {
		for _, r := range e.flows(t, "--verdict", "forwarded", "--to-service", "web", "--since", "1m") {
			if r.Source.Pod == e.client.Name && r.Event == flow.EventNew {
				got = &r
				return nil
			}
		}
		return fmt.Errorf("none yet")
	})
	t.Logf("record %+v service %+v", *got, *got.Service)
	wantPolicy := []flow.Policy{{Direction: "ingress", IsolatedBy: []string{e.ns + "/web-allow-client"},
		AllowedBy: []string{e.ns + "/web-allow-client ingress[0]"}}}
	if got.Node != e.otherNode || got.Direction != "egress" || got.Service.Name != "web" || got.Service.Port != 80 ||
		got.Service.IP.String() != svc.Spec.ClusterIP || got.Destination.Pod != e.web.Name || got.Destination.Port != 8080 ||
		got.Destination.IP.String() != e.web.IP || fmt.Sprint(got.Policies) != fmt.Sprint(wantPolicy) {
		t.Errorf("record %+v: want egress from %s on %s to Service web:80 → %s:8080, policies %+v", *got, e.client.Name, e.otherNode, e.web.Name, wantPolicy)
	}
	// The table form shows the same.
	out, err := e.c.podnet("flows", "-n", e.ns, "--to-service", "web", "--verdict", "forwarded")
	if err != nil || !strings.Contains(out, e.ns+"/web:80") || !strings.Contains(out, e.ns+"/"+e.web.Name+":8080") {
		t.Errorf("podnet flows table: %v\n%s", err, out)
	}
}

// TestFlowsFloodIsRateLimitedWithTheLossesCounted: 3,000 denied UDP
// datagrams in a burst: the records stay within the log's rate limit, the
// rest is counted in podnet_flow_records_dropped_total{reason="rate-limit"},
// and the node's ring stays within its size.
func TestFlowsFloodIsRateLimitedWithTheLossesCounted(t *testing.T) {
	e := setupFlows(t)
	before := e.metric(t, e.webNode, `podnet_flow_records_dropped_total{reason="rate-limit"}`)
	const sent = 3000
	start := time.Now()
	err := netns.Do(e.intr.NetNS, func() error {
		c, err := net.Dial("udp", net.JoinHostPort(e.web.IP, "8081"))
		if err != nil {
			return err
		}
		defer c.Close()
		for i := 0; i < sent; i++ {
			if _, err := c.Write([]byte("flood")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	time.Sleep(1500 * time.Millisecond) // the excess counter is read at most once a second
	after := e.metric(t, e.webNode, `podnet_flow_records_dropped_total{reason="rate-limit"}`)
	var logged int
	for _, r := range e.flows(t, "--verdict", "dropped", "--from-pod", e.intr.Name, "--last", "0", "--since", "1m") {
		if r.Destination.Port == 8081 && r.Protocol == "UDP" {
			logged++
		}
	}
	limit := logrule.Burst + int(float64(logrule.Rate)*(elapsed.Seconds()+1))
	t.Logf("sent %d in %s: %d records, %v counted as rate-limited", sent, elapsed, logged, after-before)
	if logged == 0 || logged > limit {
		t.Errorf("%d records of the flood; want some, at most %d", logged, limit)
	}
	// Datagrams may also be lost before the node (the veth's queue): the
	// records plus the counted excess cannot exceed what was sent, and
	// the excess is most of it.
	if excess := int(after - before); excess < sent/2 || logged+excess > sent {
		t.Errorf("counted excess %d with %d records of %d sent", excess, logged, sent)
	}
	held := e.metric(t, e.webNode, "podnet_flow_ring_records")
	if capacity := e.metric(t, e.webNode, "podnet_flow_ring_capacity"); held > capacity || capacity != flow.RingSize {
		t.Errorf("the ring holds %v records of %v (want a capacity of %d)", held, capacity, flow.RingSize)
	}
}

// metric reads one sample of the agent on node through the API server's
// node proxy.
func (e *flowsEnv) metric(t *testing.T, node, name string) float64 {
	t.Helper()
	b, err := e.c.client(t).CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node+":10249", "proxy/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("metrics of %s: %v", node, err)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`)
	m := re.FindStringSubmatch(string(b))
	if m == nil {
		lines := slices.DeleteFunc(strings.Split(string(b), "\n"), func(l string) bool { return !strings.Contains(l, "podnet_flow") })
		t.Fatalf("no sample %s on %s:\n%s", name, node, strings.Join(lines, "\n"))
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
