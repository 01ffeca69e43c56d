package e2e

// The cluster DNS end to end: podnet-dns pods behind kube-dns at the 10th
// service IP, queried with dig and nslookup from inside pods, names outside
// the cluster zone answered by the world's own DNS server, and a resolver
// that keeps its source port surviving the replacement of its DNS pod.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podnet/podnet/internal/localcluster"
)

const dnsNS = "dns-e2e"

const dnsManifest = `
apiVersion: v1
kind: Namespace
metadata: {name: dns-e2e}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: dns-e2e}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: srv, image: podnet/test, ports: [{name: http, containerPort: 80}, {name: echo, containerPort: 90, protocol: UDP}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: dns-e2e}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: echo, port: 90, targetPort: echo, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: dns-e2e}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: dns-e2e, labels: {app: db}}
spec:
  hostname: db-0
  subdomain: db
  containers: [{name: srv, image: podnet/test, ports: [{containerPort: 5432}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, namespace: dns-e2e, labels: {app: db}}
spec:
  hostname: db-1
  subdomain: db
  containers: [{name: srv, image: podnet/test, ports: [{containerPort: 5432}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-unready, namespace: dns-e2e, labels: {app: db}}
spec:
  hostname: db-unready
  subdomain: db
  containers:
  - name: srv
    image: podnet/test
    ports: [{containerPort: 5432}]
    readinessProbe: {tcpSocket: {port: 5433}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: dns-e2e}
spec:
  type: ExternalName
  externalName: www.example.com
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: dns-e2e, labels: {app: client}}
spec:
  containers: [{name: c, image: busybox, command: ["sleep", "86400"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client-default, namespace: dns-e2e, labels: {app: client-default}}
spec:
  dnsPolicy: Default
  containers: [{name: c, image: busybox, command: ["sleep", "86400"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client-none, namespace: dns-e2e, labels: {app: client-none}}
spec:
  dnsPolicy: None
  dnsConfig:
    nameservers: ["198.51.100.53"]
    searches: ["example.com"]
    options: [{name: ndots, value: "1"}, {name: edns0}]
  containers: [{name: c, image: busybox, command: ["sleep", "86400"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client-hostnet, namespace: dns-e2e, labels: {app: client-hostnet}}
spec:
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
  containers: [{name: c, image: busybox, command: ["sleep", "86400"]}]
`

// digResult is what dig printed: the status and the answer section, each
// record as "name TYPE rdata" (TTL and class dropped).
type digResult struct {
	status  string
	answers []string
	raw     string
}

func (d digResult) String() string { return d.status + " " + strings.Join(d.answers, "; ") }

// rdata returns the rdata of the answers of type typ.
func (d digResult) rdata(typ string) []string {
	var out []string
	for _, a := range d.answers {
		f := strings.SplitN(a, " ", 3)
		if len(f) == 3 && f[1] == typ {
			out = append(out, f[2])
		}
	}
	slices.Sort(out)
	return out
}

// dig runs dig inside the pod ns/pod with the pod's resolv.conf.
func (c *cluster) dig(t *testing.T, ns, pod string, args ...string) digResult {
	t.Helper()
	r, err := c.tryDig(ns, pod, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (c *cluster) tryDig(ns, pod string, args ...string) (digResult, error) {
	argv := append([]string{"exec", "-n", ns, pod, "--", "dig", "+time=2", "+tries=2", "+nocmd", "+noall", "+comments", "+answer"}, args...)
	out, err := c.podnet(argv...)
	if err != nil {
		return digResult{}, fmt.Errorf("dig %s in %s/%s: %v\n%s", strings.Join(args, " "), ns, pod, err, out)
	}
	return parseDig(out), nil
}

func parseDig(out string) digResult {
	r := digResult{raw: out}
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, "status: "); i >= 0 && strings.Contains(line, "->>HEADER<<-") {
			r.status = strings.TrimSuffix(strings.Fields(line[i+len("status: "):])[0], ",")
			continue
		}
		if line == "" || strings.HasPrefix(line, ";") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		r.answers = append(r.answers, strings.ToLower(f[0])+" "+f[3]+" "+strings.Join(f[4:], " "))
	}
	return r
}

// dnsSetup applies the DNS fixtures and waits for them; the namespace is
// deleted when the test ends.
func dnsSetup(t *testing.T) (*cluster, *localcluster.Config) {
	t.Helper()
	c := sharedCluster(t)
	cfg, err := localcluster.Load(c.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	c.apply(t, dnsManifest)
	t.Cleanup(func() {
		_, _ = c.podnet("kubectl", "--", "delete", "namespace", dnsNS, "--wait=false")
	})
	c.runningPods(t, "kube-system", "k8s-app=kube-dns", 2, true)
	c.runningPods(t, dnsNS, "app=web", 2, true)
	c.runningPods(t, dnsNS, "app=db", 3, false)
	for _, app := range []string{"client", "client-default", "client-none", "client-hostnet"} {
		c.runningPods(t, dnsNS, "app="+app, 1, false)
	}
	// The headless Service's two ready endpoints are published.
	eventually(t, 30*time.Second, "db's endpoints in DNS", func() error {
		r, err := c.tryDig(dnsNS, "client", "db."+dnsNS+".svc.cluster.local", "A")
		if err != nil {
			return err
		}
		if got := r.rdata("A"); len(got) != 2 {
			return fmt.Errorf("A records %v", got)
		}
		return nil
	})
	return c, cfg
}

func TestDNSRecords(t *testing.T) {
	c, cfg := dnsSetup(t)
	cs := c.client(t)
	ctx := context.Background()
	dnsIP := cfg.DNSServiceIP().String()
	kubeDNS, err := cs.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if kubeDNS.Spec.ClusterIP != dnsIP {
		t.Errorf("kube-dns ClusterIP %s, want the 10th service address %s", kubeDNS.Spec.ClusterIP, dnsIP)
	}
	web, err := cs.CoreV1().Services(dnsNS).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods := map[string]v1.Pod{}
	for _, sel := range []string{"app=db", "app=client"} {
		l, err := cs.CoreV1().Pods(dnsNS).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range l.Items {
			pods[p.Name] = p
		}
	}
	ip := func(pod string) string { return pods[pod].Status.PodIP }
	svcZone := dnsNS + ".svc.cluster.local"

	t.Run("resolv.conf per dnsPolicy", func(t *testing.T) {
		for _, tc := range []struct{ pod, want string }{
			{"client", "nameserver " + dnsIP + "\nsearch " + svcZone + " svc.cluster.local cluster.local\noptions ndots:5\n"},
			{"client-hostnet", "nameserver " + dnsIP + "\nsearch " + svcZone + " svc.cluster.local cluster.local\noptions ndots:5\n"},
			{"client-default", "nameserver " + cfg.WorldDNSIP.String() + "\n"},
			{"client-none", "nameserver 198.51.100.53\nsearch example.com\noptions ndots:1 edns0\n"},
		} {
			out, err := c.podnet("exec", "-n", dnsNS, tc.pod, "--", "cat", "/etc/resolv.conf")
			if err != nil || out != tc.want {
				t.Errorf("%s: /etc/resolv.conf: %v\n%s\nwant\n%s", tc.pod, err, out, tc.want)
			}
		}
	})

	for _, tc := range []struct {
		what, pod string
		args      []string
		status    string
		typ       string   // answers of this type are compared
		want      []string // sorted rdata
	}{
		{"A of a ClusterIP Service by its short name (search path)", "client", []string{"+search", "web"}, "NOERROR", "A", []string{web.Spec.ClusterIP}},
		{"A of a ClusterIP Service by its FQDN", "client", []string{"web." + svcZone + ".", "A"}, "NOERROR", "A", []string{web.Spec.ClusterIP}},
		{"the same over TCP", "client", []string{"+tcp", "web." + svcZone + ".", "A"}, "NOERROR", "A", []string{web.Spec.ClusterIP}},
		{"A of a Service in another namespace by name.namespace", "client", []string{"+search", "kube-dns.kube-system"}, "NOERROR", "A", []string{dnsIP}},
		{"A of a headless Service: one per ready endpoint", "client", []string{"db." + svcZone, "A"}, "NOERROR", "A", sorted(ip("db-0"), ip("db-1"))},
		{"A of a headless Service's endpoint by hostname", "client", []string{"db-0.db." + svcZone, "A"}, "NOERROR", "A", []string{ip("db-0")}},
		{"SRV of a named port of a ClusterIP Service", "client", []string{"_http._tcp.web." + svcZone, "SRV"}, "NOERROR", "SRV", []string{"0 100 80 web." + svcZone + "."}},
		{"SRV of a named UDP port", "client", []string{"_echo._udp.web." + svcZone, "SRV"}, "NOERROR", "SRV", []string{"0 100 90 web." + svcZone + "."}},
		{"SRV of a headless Service: one per endpoint, by hostname", "client", []string{"_pg._tcp.db." + svcZone, "SRV"}, "NOERROR", "SRV",
			sorted("0 50 5432 db-0.db."+svcZone+".", "0 50 5432 db-1.db."+svcZone+".")},
		{"PTR of a ClusterIP", "client", []string{"-x", web.Spec.ClusterIP}, "NOERROR", "PTR", []string{"web." + svcZone + "."}},
		{"CNAME of an ExternalName Service", "client", []string{"ext." + svcZone, "CNAME"}, "NOERROR", "CNAME", []string{"www.example.com."}},
		{"dns-version TXT", "client", []string{"dns-version.cluster.local", "TXT"}, "NOERROR", "TXT", []string{`"1.1.0"`}},
		{"A of a pod (a-b-c-d.ns.pod)", "client", []string{strings.ReplaceAll(ip("db-1"), ".", "-") + "." + dnsNS + ".pod.cluster.local", "A"}, "NOERROR", "A", []string{ip("db-1")}},
		{"NXDOMAIN for a missing Service", "client", []string{"nosuch." + svcZone, "A"}, "NXDOMAIN", "A", nil},
		{"NXDOMAIN for an unready endpoint's hostname", "client", []string{"db-unready.db." + svcZone, "A"}, "NXDOMAIN", "A", nil},
		{"a name outside the zone, answered by the world's server", "client", []string{"www.example.com", "A"}, "NOERROR", "A", []string{cfg.WorldHostIP().String()}},
		{"a name the world's server does not know", "client", []string{"nosuch.example.com", "A"}, "NXDOMAIN", "A", nil},
		{"a ClusterFirstWithHostNet pod uses the cluster DNS", "client-hostnet", []string{"+search", "web"}, "NOERROR", "A", []string{web.Spec.ClusterIP}},
		{"a Default pod asks the world's server directly", "client-default", []string{"www.example.com", "A"}, "NOERROR", "A", []string{cfg.WorldHostIP().String()}},
		{"a Default pod does not see the cluster zone", "client-default", []string{"web." + svcZone, "A"}, "REFUSED", "A", nil},
	} {
		t.Run(tc.what, func(t *testing.T) {
			r := c.dig(t, dnsNS, tc.pod, tc.args...)
			if got := r.rdata(tc.typ); r.status != tc.status || !slices.Equal(got, tc.want) {
				t.Errorf("dig %s: %s %q, want %s %q\n%s", strings.Join(tc.args, " "), r.status, got, tc.status, tc.want, r.raw)
			}
		})
	}
	t.Run("an ExternalName's A query gets the CNAME, then the target's address", func(t *testing.T) {
		r := c.dig(t, dnsNS, "client", "ext."+svcZone, "A")
		if r.status != "NOERROR" || len(r.answers) != 2 || !strings.HasSuffix(r.answers[0], "CNAME www.example.com.") ||
			!strings.HasSuffix(r.answers[1], "A "+cfg.WorldHostIP().String()) {
			t.Errorf("dig ext A: %s\n%s", r, r.raw)
		}
	})
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// TestDNSSeedExamples runs the seed README's DNS commands against the seed's
// nginx example: nslookup kubernetes.default and wget -O- nginx-service.
func TestDNSSeedExamples(t *testing.T) {
	c := sharedCluster(t)
	if out, err := c.podnet("apply", "-f", filepath.Join(repoRoot, "examples", "seed", "10-nginx.yaml")); err != nil {
		t.Fatalf("apply the seed's nginx: %v\n%s", err, out)
	}
	c.apply(t, `
apiVersion: v1
kind: Pod
metadata: {name: seed-client, labels: {app: seed-client}}
spec:
  containers: [{name: c, image: busybox, command: ["sleep", "86400"]}]
`)
	t.Cleanup(func() {
		_, _ = c.podnet("kubectl", "--", "delete", "pod/nginx-pod", "service/nginx-service", "pod/seed-client", "--wait=true")
	})
	c.runningPods(t, "kube-system", "k8s-app=kube-dns", 2, true)
	c.runningPods(t, "default", "app=nginx", 1, true)
	c.runningPods(t, "default", "app=seed-client", 1, false)
	out, err := c.podnet("exec", "seed-client", "--", "nslookup", "kubernetes.default")
	if err != nil || !strings.Contains(out, "Name:\tkubernetes.default.svc.cluster.local") || !strings.Contains(out, "Address: 10.161.0.1\n") {
		t.Errorf("nslookup kubernetes.default: %v\n%s", err, out)
	}
	var got string
	eventually(t, 20*time.Second, "wget nginx-service", func() error {
		out, err := c.podnet("exec", "seed-client", "--", "wget", "-q", "-T", "3", "-O-", "nginx-service")
		if err != nil || !strings.Contains(out, "pod=nginx-pod") {
			return fmt.Errorf("%v %q", err, out)
		}
		got = out
		return nil
	})
	t.Logf("wget -O- nginx-service: %s", strings.TrimSpace(got))
}

// TestDNSQueriesSurviveTheReplacementOfTheirDNSPod: a client that keeps its
// source port (as stub resolvers do) is pinned by UDP conntrack to one DNS
// pod; when that pod is deleted, the service proxy must delete the flow so
// the next query reaches a live endpoint, instead of being DNATed to the
// gone pod until the conntrack entry times out.
func TestDNSQueriesSurviveTheReplacementOfTheirDNSPod(t *testing.T) {
	c := sharedCluster(t)
	cfg, err := localcluster.Load(c.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	c.apply(t, `
apiVersion: v1
kind: Pod
metadata: {name: dns-ct-client, labels: {app: dns-ct-client}}
spec:
  containers: [{name: c, image: busybox, command: ["sleep", "86400"]}]
`)
	t.Cleanup(func() { _, _ = c.podnet("kubectl", "--", "delete", "pod/dns-ct-client", "--wait=true") })
	c.runningPods(t, "kube-system", "k8s-app=kube-dns", 2, true)
	client := c.runningPods(t, "default", "app=dns-ct-client", 1, false)[0]
	cs := c.client(t)
	ctx := context.Background()
	dnsIP := cfg.DNSServiceIP().String()
	kubernetesIP := cfg.KubernetesServiceIP().String()
	const sport = "40053"
	// Every query from the same source port, one at a time, each given one
	// second and no retry; one line per query: start, end, answer.
	loop := `end=$(( $(date +%s) + $1 )); while [ "$(date +%s)" -lt "$end" ]; do
  s=$(date +%s.%N); a=$(dig -b 0.0.0.0#` + sport + ` +retry=0 +timeout=1 +short @` + dnsIP + ` kubernetes.default.svc.cluster.local A 2>&1 | head -1); e=$(date +%s.%N)
  echo "$s $e ${a:-none}"; sleep 0.1; done`
	type query struct {
		start, end float64
		answer     string
	}
	type loopResult struct {
		out string
		err error
	}
	const seconds = 30
	done := make(chan loopResult, 1)
	go func() {
		out, err := c.podnet("exec", client.Name, "--", "sh", "-c", loop, "sh", strconv.Itoa(seconds))
		done <- loopResult{out, err}
	}()

	// Which DNS pod is the client's flow pinned to? The DNAT happened on
	// the client's node: its conntrack entry's reply source is the endpoint.
	nodeNS := "/run/netns/" + client.Spec.NodeName
	var pinned string
	eventually(t, 10*time.Second, "the client's DNS flow in conntrack", func() error {
		out, err := exec.Command("nsenter", "--net="+nodeNS, "conntrack", "-L", "-p", "udp", "--orig-src", client.Status.PodIP,
			"--orig-port-src", sport, "--orig-dst", dnsIP).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v %s", err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 {
				var srcs []string
				for _, x := range f {
					if v, ok := strings.CutPrefix(x, "src="); ok {
						srcs = append(srcs, v)
					}
				}
				if len(srcs) == 2 {
					pinned = srcs[1]
					return nil
				}
			}
		}
		return fmt.Errorf("no entry: %s", out)
	})
	dnsPods, err := cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
	if err != nil {
		t.Fatal(err)
	}
	victim := ""
	for _, p := range dnsPods.Items {
		if p.Status.PodIP == pinned && p.DeletionTimestamp == nil {
			victim = p.Name
		}
	}
	if victim == "" {
		t.Fatalf("the client's flow goes to %s, which is no DNS pod", pinned)
	}
	time.Sleep(2 * time.Second) // a few answered queries before
	deleted := time.Now()
	if err := cs.CoreV1().Pods("kube-system").Delete(ctx, victim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The endpoint is gone from the Service once no EndpointSlice lists
	// it as ready.
	var removed time.Time
	eventually(t, 20*time.Second, "the deleted DNS pod's endpoint leaves kube-dns", func() error {
		l, err := cs.DiscoveryV1().EndpointSlices("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=kube-dns"})
		if err != nil {
			return err
		}
		for _, s := range l.Items {
			for _, e := range s.Endpoints {
				if slices.Contains(e.Addresses, pinned) && (e.Conditions.Ready == nil || *e.Conditions.Ready) {
					return fmt.Errorf("%s still ready", pinned)
				}
			}
		}
		removed = time.Now()
		return nil
	})
	c.runningPods(t, "kube-system", "k8s-app=kube-dns", 2, true)
	replaced := time.Now()
	t.Logf("deleted %s (%s); endpoint not ready after %s; replacement Ready after %s",
		victim, pinned, removed.Sub(deleted).Round(time.Millisecond), replaced.Sub(deleted).Round(time.Millisecond))

	res := <-done
	if res.err != nil {
		t.Fatalf("query loop: %v\n%s", res.err, res.out)
	}
	var qs []query
	for _, line := range strings.Split(strings.TrimSpace(res.out), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		s, err1 := strconv.ParseFloat(f[0], 64)
		e, err2 := strconv.ParseFloat(f[1], 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("query loop line %q", line)
		}
		qs = append(qs, query{s, e, strings.Join(f[2:], " ")})
	}
	unix := func(tm time.Time) float64 { return float64(tm.UnixNano()) / 1e9 }
	// The proxy acts on the same EndpointSlice change the test saw; give it
	// 2 s to sync and delete the flow.
	settled := unix(removed) + 2
	var before, transition, after, failedAfter int
	var failures []string
	for _, q := range qs {
		ok := q.answer == kubernetesIP && q.end-q.start < 1.5
		switch {
		case q.start < unix(deleted):
			before++
			if !ok {
				failures = append(failures, fmt.Sprintf("before the deletion: %+v", q))
			}
		case q.start < settled:
			transition++
			if !ok {
				t.Logf("during the replacement, %.1fs after the delete: %q after %.2fs", q.start-unix(deleted), q.answer, q.end-q.start)
			}
		default:
			after++
			if !ok {
				failedAfter++
				failures = append(failures, fmt.Sprintf("%.1fs after the delete: %q after %.2fs", q.start-unix(deleted), q.answer, q.end-q.start))
			}
		}
	}
	t.Logf("%d queries: %d before the delete, %d while the endpoint went away, %d after (%d unanswered)", len(qs), before, transition, after, failedAfter)
	if before == 0 || after < 10 {
		t.Errorf("too few queries to judge (%d before, %d after)\n%s", before, after, res.out)
	}
	for _, f := range failures {
		t.Errorf("query not answered within 1 s: %s", f)
	}
	if len(failures) > 0 {
		if b, err := os.ReadFile(filepath.Join(c.stateDir, "logs", proxyProcName(client.Spec.NodeName)+".log")); err == nil {
			t.Logf("%s log tail:\n%s", proxyProcName(client.Spec.NodeName), tail(string(b), 20))
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
