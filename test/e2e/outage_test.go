package e2e

// The API-server outage of issue 16: the API server and etcd stop for a
// minute while traffic runs, and nothing the nodes do may change.
//
// Fixture conventions: a cluster of its own, e2e-outage-<hex>, two nodes;
// nodes 172.29.60.0/24, pods 10.190.0.0/16, services 10.193.0.0/16, world
// 198.18.60.0/24. In namespace default: Deployment web (two replicas, one
// per node, TCP 8080 named http) behind Service web (80 → http); pod client
// on node 1 and pod intruder on node 2; NetworkPolicy web-allow-client
// isolates web for ingress and admits client on TCP 8080 only.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/flow"
	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/localcluster/addons"
	"github.com/podnet/podnet/internal/localcluster/controlplane"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/proc"
	"github.com/podnet/podnet/internal/testserver"
)

var outagePlan = []string{"--node-network", "172.29.60.0/24", "--pod-cidr", "10.190.0.0/16",
	"--service-cidr", "10.193.0.0/16", "--world-network", "198.18.60.0/24"}

const (
	// apiOutage is how long the API server and etcd stay down: the minute
	// of issue 16. $PODNET_E2E_OUTAGE (a Go duration, e.g. 15s) shortens
	// it for a quick run.
	apiOutage    = time.Minute
	apiOutageEnv = "PODNET_E2E_OUTAGE"
	// outageRound is how often the checks run during the outage.
	outageRound = 5 * time.Second
	// afterReturn is the window after the API server's return whose
	// requests and syncs are counted.
	afterReturn = time.Minute
	// catchUp bounds how long a change made after the return may take to
	// be enforced.
	catchUp = 15 * time.Second
)

// outageFixture is the scenario's cluster and pods.
type outageFixture struct {
	c        *cluster
	cfg      *localcluster.Config
	cs       kubernetes.Interface
	web      []*npPod // one per node
	client   *npPod   // node 1
	intruder *npPod   // node 2
	dns      []*npPod // the cluster DNS pods
	svcIP    string   // Service web's ClusterIP
}

func outageManifest(cfg *localcluster.Config) string {
	return fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 0
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: srv
        image: podnet/test
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-allow-client}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{protocol: TCP, port: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 0
  containers: [{name: srv, image: podnet/test, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: intruder, labels: {app: intruder}}
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 0
  containers: [{name: srv, image: podnet/test, ports: [{containerPort: 8080}]}]
`, cfg.NodeName(1), cfg.NodeName(2))
}

// outageLength is apiOutage, or $PODNET_E2E_OUTAGE for a quick run.
func outageLength(t *testing.T) time.Duration {
	s := os.Getenv(apiOutageEnv)
	if s == "" {
		return apiOutage
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration", apiOutageEnv, s)
	}
	t.Logf("%s: an outage of %s instead of %s", apiOutageEnv, d, apiOutage)
	return d
}

func setupOutage(t *testing.T) *outageFixture {
	t.Helper()
	c, cfg := upOwn(t, "e2e-outage-"+randHex(2), "(outage)", outagePlan...)
	f := &outageFixture{c: c, cfg: cfg, cs: c.client(t)}
	c.apply(t, outageManifest(cfg))
	pod := func(p v1.Pod) *npPod {
		return &npPod{NS: p.Namespace, Name: p.Name, RealNS: p.Namespace, IP: p.Status.PodIP, Node: p.Spec.NodeName,
			UID: p.UID, NetNS: netns.Path(cfg.PodNSName(string(p.UID)))}
	}
	for _, p := range c.runningPods(t, "default", "app=web", 2, true) {
		f.web = append(f.web, pod(p))
	}
	if f.web[0].Node == f.web[1].Node {
		t.Fatalf("both web replicas on %s", f.web[0].Node)
	}
	f.client = pod(c.runningPods(t, "default", "app=client", 1, false)[0])
	f.intruder = pod(c.runningPods(t, "default", "app=intruder", 1, false)[0])
	for _, p := range c.runningPods(t, "kube-system", addons.DNSAppLabelKey+"=kube-dns", addons.DNSReplicas, true) {
		f.dns = append(f.dns, pod(p))
	}
	svc, err := f.cs.CoreV1().Services("default").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.svcIP = svc.Spec.ClusterIP
	// Everything is in force before the outage: the Service answers,
	// the policy admits client and drops intruder, DNS knows web.
	eventually(t, 30*time.Second, "the scenario in force before the outage", func() error {
		for _, ck := range f.checks() {
			if err := ck.run(); err != nil {
				return fmt.Errorf("%s: %w", ck.name, err)
			}
		}
		return nil
	})
	return f
}

// outageCheck is one thing that must hold while the API server is away.
type outageCheck struct {
	name string
	run  func() error
}

// checks are what must hold during the outage (and before it): traffic,
// policy and DNS, and the nodes' own state (tables, health, processes).
func (f *outageFixture) checks() []outageCheck {
	svc := net.JoinHostPort(f.svcIP, "80")
	reach := func(from *npPod, target, wantPrefix string) func() error {
		return func() error {
			reply, err := probeConn(from.NetNS, v1.ProtocolTCP, target, 2*time.Second)
			if err != nil {
				return err
			}
			if pod, _, ok := testserver.ParseReply(reply); !ok || !strings.HasPrefix(pod, wantPrefix) {
				return fmt.Errorf("answered %q, want a pod %s*", reply, wantPrefix)
			}
			return nil
		}
	}
	denied := func(from *npPod, target string) func() error {
		return func() error {
			if reply, err := probeConn(from.NetNS, v1.ProtocolTCP, target, time.Second); err == nil {
				return fmt.Errorf("connected, answered %q", strings.TrimSpace(reply))
			}
			return nil
		}
	}
	cks := []outageCheck{
		{"client → Service web (new connection)", reach(f.client, svc, "web-")},
		{"intruder → Service web is dropped", denied(f.intruder, svc)},
		{"DNS web.default.svc from client", f.resolves("web.default.svc."+addons.ClusterDomain, f.svcIP)},
		{"DNS kubernetes.default.svc from intruder", f.resolvesFrom(f.intruder, "kubernetes.default.svc."+addons.ClusterDomain,
			f.cfg.KubernetesServiceIP().String())},
	}
	for _, w := range f.web {
		target := net.JoinHostPort(w.IP, "8080")
		cks = append(cks,
			outageCheck{"client → pod " + w.Name + " on " + w.Node, reach(f.client, target, w.Name)},
			outageCheck{"intruder → pod " + w.Name + " on " + w.Node + " is dropped", denied(f.intruder, target)})
	}
	for i := 1; i <= 2; i++ {
		node := f.cfg.NodeName(i)
		cks = append(cks,
			outageCheck{"tables of " + node + " hold Service web and the policy", f.tablesHold(i)},
			outageCheck{"agent of " + node + " ready", f.httpOK(netns.Path(f.cfg.NodeNSName(i)), "http://127.0.0.1:10256/readyz")},
			outageCheck{"agent and runtime of " + node + " running", f.running("agent-"+node, "runtime-"+node)})
	}
	for _, d := range f.dns {
		cks = append(cks, outageCheck{"DNS pod " + d.Name + " ready", f.httpOK(d.NetNS,
			fmt.Sprintf("http://127.0.0.1:%d/ready", addons.DNSHealthPort))})
	}
	return cks
}

// resolves checks that name has exactly the A record want, asked from
// client to the cluster DNS Service.
func (f *outageFixture) resolves(name, want string) func() error {
	return f.resolvesFrom(f.client, name, want)
}

func (f *outageFixture) resolvesFrom(from *npPod, name, want string) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "nsenter", "--net="+from.NetNS, "dig", "+time=2", "+tries=2", "+nocmd", "+noall",
			"+comments", "+answer", "@"+f.cfg.DNSServiceIP().String(), name, "A").CombinedOutput()
		if err != nil {
			return fmt.Errorf("dig %s: %v %s", name, err, out)
		}
		r := parseDig(string(out))
		if r.status != "NOERROR" || !slices.Equal(r.rdata("A"), []string{want}) {
			return fmt.Errorf("dig %s: %s, want NOERROR %s", name, r, want)
		}
		return nil
	}
}

// tablesHold checks node i's nftables: the proxy's table maps Service
// web's ClusterIP, and the policy's table isolates the web pod of that
// node. It reads the kernel, not the agent.
func (f *outageFixture) tablesHold(i int) func() error {
	nodeNS := netns.Path(f.cfg.NodeNSName(i))
	return func() error {
		list := func(table string) (string, error) {
			out, err := exec.Command("nsenter", "--net="+nodeNS, "nft", "list", "table", "inet", table).CombinedOutput()
			if err != nil {
				return "", fmt.Errorf("nft list table inet %s: %v %s", table, err, out)
			}
			return string(out), nil
		}
		proxyTable, err := list("podnet-proxy")
		if err != nil {
			return err
		}
		if !strings.Contains(proxyTable, f.svcIP+" . tcp . 80 : goto ") {
			return fmt.Errorf("table podnet-proxy (%d lines) has no entry for %s . tcp . 80", strings.Count(proxyTable, "\n"), f.svcIP)
		}
		policyTable, err := list("podnet-policy")
		if err != nil {
			return err
		}
		for _, w := range f.web {
			if w.Node == f.cfg.NodeName(i) && !strings.Contains(policyTable, w.IP) {
				return fmt.Errorf("table podnet-policy (%d lines) does not name web pod %s (%s)", strings.Count(policyTable, "\n"), w.Name, w.IP)
			}
		}
		return nil
	}
}

func (f *outageFixture) httpOK(nsPath, url string) func() error {
	return func() error {
		code, err := statusIn(nsPath, url)
		if err == nil && code != 200 {
			err = fmt.Errorf("%s answered %d", url, code)
		}
		return err
	}
}

func (f *outageFixture) running(names ...string) func() error {
	return func() error {
		for _, n := range names {
			rec, err := proc.Read(f.cfg.ProcsDir(), n)
			if err != nil {
				return err
			}
			if !proc.Alive(rec) {
				return fmt.Errorf("%s (pid %d) is gone", n, rec.PID)
			}
		}
		return nil
	}
}

// tableWatch reads the nodes' tables (tablesHold) every interval until
// stopped.
type tableWatch struct {
	tally
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func (f *outageFixture) watchTables(every time.Duration) *tableWatch {
	ctx, cancel := context.WithCancel(context.Background())
	tw := &tableWatch{cancel: cancel}
	tw.done.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for i := 1; i <= 2; i++ {
				tw.add(f.tablesHold(i)())
			}
		}
	})
	return tw
}

func (tw *tableWatch) stop() {
	tw.cancel()
	tw.done.Wait()
}

// componentCounts are what the nodes' agents and the DNS pods counted at
// one moment.
type componentCounts struct {
	agents map[string]samples // by node
	dns    map[string]samples // by DNS pod
}

func (f *outageFixture) scrape(t *testing.T) componentCounts {
	t.Helper()
	cc := componentCounts{agents: map[string]samples{}, dns: map[string]samples{}}
	for i := 1; i <= 2; i++ {
		s, err := scrapeIn(netns.Path(f.cfg.NodeNSName(i)), "http://127.0.0.1:10249/metrics")
		if err != nil {
			t.Fatalf("agent metrics: %v", err)
		}
		cc.agents[f.cfg.NodeName(i)] = s
	}
	for _, d := range f.dns {
		s, err := scrapeIn(d.NetNS, fmt.Sprintf("http://127.0.0.1:%d/metrics", addons.DNSHealthPort))
		if err != nil {
			t.Fatalf("DNS metrics: %v", err)
		}
		cc.dns[d.Name] = s
	}
	return cc
}

// agentControllers are the controllers of a local cluster's agent.
var agentControllers = []string{"routing", "cni-config", "proxy", "policy", "lb-announce"}

// syncReport says what each component did between from and to, one line
// per node and DNS pod, and returns the full syncs of the proxy and
// policy and the failed syncs of any controller.
func syncReport(from, to componentCounts) (report string, full, failed map[string]float64) {
	full, failed = map[string]float64{}, map[string]float64{}
	var b strings.Builder
	for _, node := range slices.Sorted(maps.Keys(to.agents)) {
		a, z := from.agents[node], to.agents[node]
		d := func(name string, labels ...string) float64 { return z.sum(name, labels...) - a.sum(name, labels...) }
		fmt.Fprintf(&b, "  agent %s: syncs", node)
		for _, ctl := range agentControllers {
			fmt.Fprintf(&b, " %s %.0f", ctl, d("podnet_controller_sync_duration_seconds_count", label("controller", ctl)))
			failed[node+" "+ctl] = d("podnet_controller_sync_failures_total", label("controller", ctl))
		}
		for _, c := range []string{"proxy", "policy"} {
			f, p := d("podnet_"+c+"_sync_duration_seconds_count", label("kind", "full")), d("podnet_"+c+"_sync_duration_seconds_count", label("kind", "partial"))
			fmt.Fprintf(&b, "; %s full %.0f partial %.0f", c, f, p)
			full[node+" "+c] = f
		}
		b.WriteString("; informer events changed/unchanged/ignored")
		for _, c := range []string{"proxy", "policy"} {
			ev := func(o string) float64 {
				return d("podnet_controller_events_total", label("controller", c), label("outcome", o))
			}
			fmt.Fprintf(&b, " %s %.0f/%.0f/%.0f", c, ev("changed"), ev("unchanged"), ev("ignored"))
		}
		fmt.Fprintf(&b, "; failed %.0f; proxy ops in last transaction %.0f\n", sumMap(failed, node+" "),
			z.sum("podnet_proxy_transaction_operations"))
	}
	for _, pod := range slices.Sorted(maps.Keys(to.dns)) {
		a, z := from.dns[pod], to.dns[pod]
		d := func(name string, labels ...string) float64 { return z.sum(name, labels...) - a.sum(name, labels...) }
		fmt.Fprintf(&b, "  dns %s: zone rebuilds %.0f, failed %.0f, informer events changed/unchanged/ignored %.0f/%.0f/%.0f, "+
			"queries answered %.0f (%.0f NOERROR, %.0f SERVFAIL)\n", pod,
			d("podnet_controller_sync_duration_seconds_count", label("controller", "dns")),
			d("podnet_controller_sync_failures_total", label("controller", "dns")),
			d("podnet_controller_events_total", label("controller", "dns"), label("outcome", "changed")),
			d("podnet_controller_events_total", label("controller", "dns"), label("outcome", "unchanged")),
			d("podnet_controller_events_total", label("controller", "dns"), label("outcome", "ignored")),
			d("podnet_dns_requests_total"), d("podnet_dns_requests_total", label("rcode", "NOERROR")),
			d("podnet_dns_requests_total", label("rcode", "SERVFAIL")))
		failed["dns "+pod] = d("podnet_controller_sync_failures_total", label("controller", "dns"))
	}
	return b.String(), full, failed
}

func sumMap(m map[string]float64, prefix string) float64 {
	var s float64
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			s += v
		}
	}
	return s
}

// TestAPIServerOutageChangesNothing (issue 16, "Faults"): the API server
// and etcd stop for a minute while traffic runs. During it, an established
// connection through a Service keeps exchanging data, new connections to
// the Service and to pods on both nodes are served, the policy keeps
// admitting client and dropping intruder, DNS answers from its last
// snapshot, the nodes' tables stay whole, the agents and DNS stay ready and
// flow records keep naming pods and policies. kube-controller-manager and
// kube-scheduler keep running (as in a real cluster, where they do not
// stop with the API server); they only retry. When etcd and the API server
// are started again from their records, changes made after the return (a
// new Service, a scaled Deployment, a changed policy) are enforced within
// catchUp, and the minute after the return is counted: the syncs of every
// controller (no full rewrite of the proxy's or the policy's table, no
// failed sync) and the requests each client sent the API server (each
// podnet client lists each resource at most twice: one relist per informer).
func TestAPIServerOutageChangesNothing(t *testing.T) {
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	outage := outageLength(t)
	f := setupOutage(t)
	c, cfg, cs := f.c, f.cfg, f.cs
	ctx := context.Background()

	pids := map[string]int{}
	for _, n := range []string{"agent-" + cfg.NodeName(1), "agent-" + cfg.NodeName(2), "runtime-" + cfg.NodeName(1),
		"runtime-" + cfg.NodeName(2), controlplane.ProcControllerManager, controlplane.ProcScheduler} {
		rec, err := proc.Read(cfg.ProcsDir(), n)
		if err != nil {
			t.Fatal(err)
		}
		pids[n] = rec.PID
	}
	restarts := f.restarts(t)
	before := f.scrape(t)
	tr := startTraffic(t, f.client.NetNS, net.JoinHostPort(f.svcIP, "80"), "web-", 200*time.Millisecond)
	defer tr.stop()
	// The tables are read twice a second from before the outage to a
	// minute after the return: no sync may empty them, not during the
	// outage and not when the informers relist.
	tables := f.watchTables(500 * time.Millisecond)
	defer tables.stop()
	time.Sleep(time.Second)

	// The outage. kube-apiserver first (its clients see their watches
	// end), then etcd.
	stopped := stopProcs(t, cfg, controlplane.ProcAPIServer, controlplane.ProcEtcd)
	down := time.Now()
	t.Logf("kube-apiserver and etcd stopped; the outage lasts %s", outage)
	if _, err := cs.Discovery().ServerVersion(); err == nil {
		t.Fatal("the API server still answers after it was stopped")
	}
	failures := map[string]*tally{}
	rounds := 0
	for time.Since(down) < outage {
		start := time.Now()
		rounds++
		for _, ck := range f.checks() {
			if failures[ck.name] == nil {
				failures[ck.name] = &tally{}
			}
			failures[ck.name].add(ck.run())
		}
		next := start.Add(outageRound)
		if end := down.Add(outage); next.After(end) {
			next = end
		}
		time.Sleep(time.Until(next))
	}
	f.checkFlowsDuringOutage(t, down)
	endOfOutage := f.scrape(t)
	for _, name := range slices.Sorted(maps.Keys(failures)) {
		if ok, fail, _ := failures[name].counts(); fail > 0 || ok == 0 {
			t.Errorf("during the outage: %s: %s", name, failures[name])
		}
	}
	t.Logf("during the outage (%s, %d rounds of %d checks): long-lived connection %s; new connections %s",
		time.Since(down).Round(time.Second), rounds, len(failures), &tr.established, &tr.fresh)
	rep, fullDuring, _ := syncReport(before, endOfOutage)
	t.Logf("what the components did during the outage:\n%s", rep)

	// The return, from the records. The API server comes back with an
	// audit log (its metadata only): who lists and watches what after
	// the return.
	auditLog, auditPolicyFile := filepath.Join(cfg.LogsDir(), "outage-audit.log"), filepath.Join(cfg.LogsDir(), "outage-audit-policy.yaml")
	if err := os.WriteFile(auditPolicyFile, []byte(auditPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	startBack := time.Now()
	etcd, api := stopped[1], stopped[0]
	if _, err := startRecorded(cfg, etcd); err != nil {
		t.Fatalf("restart etcd: %v", err)
	}
	if err := waitHTTP(flagValue(etcd.rec.Argv, "listen-client-urls")+"/health", 30*time.Second); err != nil {
		t.Fatalf("etcd after its restart: %v", err)
	}
	if _, err := startRecorded(cfg, api, "--audit-policy-file="+auditPolicyFile, "--audit-log-path="+auditLog); err != nil {
		t.Fatalf("restart kube-apiserver: %v", err)
	}
	eventually(t, 60*time.Second, "kube-apiserver ready after its restart", func() error {
		_, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	})
	back := time.Now()
	t.Logf("etcd and kube-apiserver back and ready in %s (outage %s)", back.Sub(startBack).Round(100*time.Millisecond),
		back.Sub(down).Round(100*time.Millisecond))
	checkConfined(t, cfg, c.status(t))

	// Changes after the return are enforced within catchUp.
	f.catchUpNewService(t)
	f.catchUpPolicy(t, []string{"client", "intruder"}, map[*npPod]bool{f.client: true, f.intruder: true})
	f.catchUpScale(t, tr)

	if d := afterReturn - time.Since(back); d > 0 {
		time.Sleep(d)
	}
	tr.stop()
	tables.stop()
	if ok, fail, _ := tables.counts(); fail > 0 || ok == 0 {
		t.Errorf("the nodes' tables, read every 500 ms from before the outage to %s after the return: %s", afterReturn, &tables.tally)
	} else {
		t.Logf("the nodes' tables held Service web and the policy in all %d reads from before the outage to %s after the return", ok, afterReturn)
	}
	after := f.scrape(t)
	if ok, fail, _ := tr.established.counts(); fail > 0 || ok == 0 {
		t.Errorf("the long-lived connection through Service web: %s", &tr.established)
	}
	if ok, fail, _ := tr.fresh.counts(); fail > 0 || ok == 0 {
		t.Errorf("new connections to Service web (every 200 ms from before the outage to a minute after): %s", &tr.fresh)
	}
	t.Logf("traffic from before the outage to %s after the return: long-lived connection %s; new connections %s, answered by %v",
		afterReturn, &tr.established, &tr.fresh, tr.answeredBy())

	rep, fullAfter, _ := syncReport(endOfOutage, after)
	t.Logf("what the components did in the %s after the return (changes made: a Service, a replica, a policy):\n%s",
		time.Since(back).Round(time.Second), rep)
	// Nothing restarted, so nothing may rewrite a whole table: not the
	// outage, not the relists after it.
	for _, k := range slices.Sorted(maps.Keys(fullAfter)) {
		if fullDuring[k] != 0 || fullAfter[k] != 0 {
			t.Errorf("%s: %.0f full syncs during the outage and %.0f after the return (want 0: only what changed is written)",
				k, fullDuring[k], fullAfter[k])
		}
	}
	_, _, failed := syncReport(before, after)
	for _, k := range slices.Sorted(maps.Keys(failed)) {
		if failed[k] != 0 {
			t.Errorf("%s: %.0f failed syncs between the start of the outage and a minute after it (want 0)", k, failed[k])
		}
	}
	f.reportAPIRequests(t, auditLog)

	for n, pid := range pids {
		rec, err := proc.Read(cfg.ProcsDir(), n)
		if err != nil || rec.PID != pid || !proc.Alive(rec) {
			t.Errorf("%s: pid %d before the outage, now %v (alive %v, %v): it exited or was restarted", n, pid, recPID(rec), rec != nil && proc.Alive(rec), err)
		}
	}
	f.reportNotReady(t, down)
	now := f.restarts(t)
	t.Logf("kube-system pods' container restarts: %v before the outage, %v after", restarts, now)
	for _, d := range f.dns {
		if now[d.Name] != restarts[d.Name] {
			t.Errorf("DNS pod %s: %d container restarts before the outage, %d after", d.Name, restarts[d.Name], now[d.Name])
		}
	}

	// Last, a change that denies: the policy admits intruder only.
	f.catchUpPolicy(t, []string{"intruder"}, map[*npPod]bool{f.client: false, f.intruder: true})
}

func recPID(r *proc.Record) int {
	if r == nil {
		return 0
	}
	return r.PID
}

// restarts returns the container restarts of every pod in kube-system
// (the DNS pods and the LoadBalancer IPAM controller).
func (f *outageFixture) restarts(t *testing.T) map[string]int32 {
	t.Helper()
	l, err := f.cs.CoreV1().Pods("kube-system").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int32{}
	for _, p := range l.Items {
		out[p.Name] = 0
		for _, st := range p.Status.ContainerStatuses {
			out[p.Name] += st.RestartCount
		}
	}
	return out
}

// reportNotReady reports what kube-controller-manager's node lifecycle
// controller did after the return: the NodeNotReady Events it recorded
// since the outage began (on Nodes, and on the pods it marked not Ready).
func (f *outageFixture) reportNotReady(t *testing.T, since time.Time) {
	t.Helper()
	l, err := f.cs.CoreV1().Events("").List(context.Background(), metav1.ListOptions{FieldSelector: "reason=NodeNotReady"})
	if err != nil {
		t.Errorf("events: %v", err)
		return
	}
	byKind := map[string][]string{}
	for _, e := range l.Items {
		if last := e.LastTimestamp.Time; last.IsZero() || last.After(since.Add(-time.Second)) {
			byKind[e.InvolvedObject.Kind] = append(byKind[e.InvolvedObject.Kind], e.InvolvedObject.Name)
		}
	}
	t.Logf("NodeNotReady events since the outage began (kube-controller-manager found the nodes' leases stale): %v", byKind)
}

// checkFlowsDuringOutage: the agents kept recording flows with names from
// their caches: intruder's dropped connections during the outage are on
// the web pods' nodes with the pod names and the isolating policy.
func (f *outageFixture) checkFlowsDuringOutage(t *testing.T, since time.Time) {
	t.Helper()
	for _, w := range f.web {
		i := 1
		if w.Node == f.cfg.NodeName(2) {
			i = 2
		}
		out, err := exec.Command("nsenter", "--net="+netns.Path(f.cfg.NodeNSName(i)), "curl", "-sS", "--max-time", "5", "-f",
			"http://127.0.0.1:10249/flows").Output()
		if err != nil {
			t.Errorf("flows of %s during the outage: %v", w.Node, err)
			continue
		}
		var found *flow.Record
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		n := 0
		for sc.Scan() {
			var r flow.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("flows of %s: %q: %v", w.Node, sc.Text(), err)
			}
			n++
			if r.Time.After(since) && r.Verdict == "dropped" && r.Source.IP == netip.MustParseAddr(f.intruder.IP) &&
				r.Destination.IP == netip.MustParseAddr(w.IP) && r.Source.Pod == f.intruder.Name && r.Destination.Pod == w.Name &&
				slices.ContainsFunc(r.Policies, func(p flow.Policy) bool { return slices.Contains(p.IsolatedBy, "default/web-allow-client") }) {
				found = &r
			}
		}
		if found == nil {
			t.Errorf("no flow record on %s (of %d) of intruder's connection to %s dropped by default/web-allow-client during the outage",
				w.Node, n, w.Name)
			continue
		}
		t.Logf("flow record on %s during the outage: %s %s %s/%s -> %s/%s policies %+v", w.Node, found.Time.Format("15:04:05.000"),
			found.Verdict, found.Source.Namespace, found.Source.Pod, found.Destination.Namespace, found.Destination.Pod, found.Policies)
	}
}

// catchUpHard bounds how long a catch-up that also waits for the upstream
// controllers (EndpointSlices, Deployments, scheduling) is measured: their
// informers back off while the API server is away, up to a minute more.
const catchUpHard = 2 * time.Minute

// until polls check from start until it passes or limit has passed since
// start, and returns how long after start it passed (0 and the last error
// when it never did).
func until(start time.Time, limit time.Duration, check func() error) (time.Duration, error) {
	for {
		err := check()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return 0, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// caughtUp reports one catch-up: an error unless it passed within want.
func caughtUp(t *testing.T, what string, took time.Duration, err error, want time.Duration) {
	t.Helper()
	switch {
	case err != nil:
		t.Errorf("after the return, %s: not after %s: %v", what, catchUpHard, err)
	case took > want:
		t.Errorf("after the return, %s took %s, want at most %s", what, took.Round(time.Millisecond), want)
	default:
		t.Logf("after the return, %s: %s", what, took.Round(time.Millisecond))
	}
}

// catchUpNewService creates Service late after the return: the nodes'
// proxy tables map its ClusterIP and DNS knows it within catchUp (podnet's
// part); it answers once kube-controller-manager has published its
// EndpointSlice (reported, bounded by catchUpHard).
func (f *outageFixture) catchUpNewService(t *testing.T) {
	t.Helper()
	start := time.Now()
	svc, err := f.cs.CoreV1().Services("default").Create(context.Background(), &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "late"},
		Spec: v1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []v1.ServicePort{{Port: 81, TargetPort: intstr.FromString("http"), Protocol: v1.ProtocolTCP}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Service late: %v", err)
	}
	ip := svc.Spec.ClusterIP
	took, err := until(start, catchUpHard, func() error {
		for i := 1; i <= 2; i++ {
			// In service-ips-v4 once it has endpoints, in
			// no-endpoint-services-v4 (rejected) until then.
			out, err := exec.Command("nsenter", "--net="+netns.Path(f.cfg.NodeNSName(i)), "nft", "list", "table", "inet", "podnet-proxy").CombinedOutput()
			if err != nil || !strings.Contains(string(out), ip+" . tcp . 81 : goto ") {
				return fmt.Errorf("node %d's proxy table has no %s . tcp . 81 (%v)", i, ip, err)
			}
		}
		return nil
	})
	caughtUp(t, "Service late in both nodes' proxy tables", took, err, catchUp)
	took, err = until(start, catchUpHard, f.resolves("late.default.svc."+addons.ClusterDomain, ip))
	caughtUp(t, "Service late in DNS", took, err, catchUp)
	took, err = until(start, catchUpHard, func() error {
		reply, err := probeConn(f.client.NetNS, v1.ProtocolTCP, net.JoinHostPort(ip, "81"), time.Second)
		if pod, _, ok := testserver.ParseReply(reply); err != nil || !ok || !strings.HasPrefix(pod, "web-") {
			return fmt.Errorf("%v %q", err, reply)
		}
		return nil
	})
	caughtUp(t, "Service late answering (after kube-controller-manager's EndpointSlice)", took, err, catchUpHard)
}

// catchUpScale scales web to 3 after the return: the new replica, once
// Ready (kube-controller-manager, the scheduler and the node's runtime:
// reported), answers through Service web within catchUp of its readiness.
func (f *outageFixture) catchUpScale(t *testing.T, tr *traffic) {
	t.Helper()
	start := time.Now()
	patch := []byte(`{"spec":{"replicas":3}}`)
	if _, err := f.cs.AppsV1().Deployments("default").Patch(context.Background(), "web", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("scale web: %v", err)
	}
	var added, addedIP string
	took, err := until(start, catchUpHard, func() error {
		l, err := f.cs.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return err
		}
		for _, p := range l.Items {
			if !slices.ContainsFunc(f.web, func(w *npPod) bool { return w.Name == p.Name }) && podReady(&p) {
				added, addedIP = p.Name, p.Status.PodIP
				return nil
			}
		}
		return fmt.Errorf("no third replica Ready among %d pods", len(l.Items))
	})
	caughtUp(t, "the third web replica Ready (kube-controller-manager, scheduler, runtime)", took, err, catchUpHard)
	if err != nil {
		return
	}
	ready := time.Now()
	took, err = until(ready, catchUpHard, func() error {
		l, err := f.cs.DiscoveryV1().EndpointSlices("default").List(context.Background(),
			metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if err != nil {
			return err
		}
		for _, sl := range l.Items {
			for _, ep := range sl.Endpoints {
				if slices.Contains(ep.Addresses, addedIP) && (ep.Conditions.Ready == nil || *ep.Conditions.Ready) {
					return nil
				}
			}
		}
		return fmt.Errorf("%s is in no EndpointSlice of Service web as ready", addedIP)
	})
	caughtUp(t, "the new replica "+added+" in Service web's EndpointSlice (kube-controller-manager), from its readiness", took, err, catchUpHard)
	published := time.Now()
	before := tr.answeredBy()[added]
	took, err = until(published, catchUp, func() error {
		if tr.answeredBy()[added] > before {
			return nil
		}
		return fmt.Errorf("answered by %v", tr.answeredBy())
	})
	caughtUp(t, "the new replica "+added+" serving through Service web, from its EndpointSlice", took, err, catchUp)
}

// catchUpPolicy sets web-allow-client's peers to the apps from and
// measures until client and intruder are admitted or dropped as want
// says: within catchUp.
func (f *outageFixture) catchUpPolicy(t *testing.T, from []string, want map[*npPod]bool) {
	t.Helper()
	api := f.cs.NetworkingV1().NetworkPolicies("default")
	pol, err := api.Get(context.Background(), "web-allow-client", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pol.Spec.Ingress[0].From = []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: from}}}}}
	start := time.Now()
	if _, err := api.Update(context.Background(), pol, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update policy: %v", err)
	}
	took, err := until(start, catchUpHard, func() error {
		for p, admit := range want {
			for _, w := range f.web {
				_, err := probeConn(p.NetNS, v1.ProtocolTCP, net.JoinHostPort(w.IP, "8080"), time.Second)
				if admit != (err == nil) {
					return fmt.Errorf("%s → %s: admitted %v, want %v", p.Name, w.Name, err == nil, admit)
				}
			}
		}
		return nil
	})
	caughtUp(t, fmt.Sprintf("the policy admitting %v in force", from), took, err, catchUp)
}

// reportAPIRequests reports what the API server served since its restart
// (its audit log) by client, kind and resource, and checks that no podnet
// client read a whole collection more than twice: one relist per
// informer, or two if the first watch after it failed.
func (f *outageFixture) reportAPIRequests(t *testing.T, auditLog string) {
	t.Helper()
	text, err := os.ReadFile(auditLog)
	if err != nil {
		t.Errorf("API server audit log: %v", err)
		return
	}
	reqs, err := parseAudit(string(text))
	if err != nil {
		t.Errorf("API server audit log: %v", err)
		return
	}
	byKind := map[string]int{}
	for _, r := range reqs {
		byKind[r.kind()]++
	}
	t.Logf("the API server from its restart to a minute after its return: %d requests, by kind %v", len(reqs), byKind)
	t.Logf("reads of whole collections (list; list (etcd): without resourceVersion; watch-list: a watch that first sends every object), by client and resource:\n%s",
		formatCounts(countRequests(reqs, apiRequest.relist)))
	t.Logf("watches resumed from a resourceVersion, by client and resource:\n%s",
		formatCounts(countRequests(reqs, func(r apiRequest) bool { return r.verb == "watch" && !r.initialEvents })))
	t.Logf("other requests, by client and resource:\n%s",
		formatCounts(countRequests(reqs, func(r apiRequest) bool { return r.verb != "list" && r.verb != "watch" })))
	perClient := map[string]int{}
	for _, r := range reqs {
		if r.relist() && r.status < 300 && strings.HasPrefix(r.userAgent, "podnet-") {
			perClient[r.userAgent+" at "+r.srcHost+" "+r.resource]++
		}
	}
	for _, k := range slices.Sorted(maps.Keys(perClient)) {
		if n := perClient[k]; n > 2 {
			t.Errorf("%s: read whole %d times after the return (want at most 2: one relist per informer)", k, n)
		}
	}
}

func sumInts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
