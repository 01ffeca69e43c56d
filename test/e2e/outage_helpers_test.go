package e2e

// Helpers of the API-server outage test (outage_test.go): the traffic that
// runs through the outage, stopping and restarting the control plane from
// its process records, and reading what the components and the API server
// counted (Prometheus text, the API server's request log).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/localcluster/controlplane"
	"github.com/podnet/podnet/internal/localcluster/guard"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/proc"
	"github.com/podnet/podnet/internal/testserver"
)

// ---- traffic that runs through the outage

// tally counts the outcomes of one kind of attempt, with the first few
// failures kept for the report.
type tally struct {
	mu       sync.Mutex
	ok, fail int
	errs     []string
	lastFail time.Time
}

func (c *tally) add(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.ok++
		return
	}
	c.fail++
	c.lastFail = time.Now()
	if len(c.errs) < 5 {
		c.errs = append(c.errs, time.Now().Format("15:04:05.000")+" "+err.Error())
	}
}

func (c *tally) counts() (ok, fail int, errs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ok, c.fail, slices.Clone(c.errs)
}

func (c *tally) String() string {
	ok, fail, errs := c.counts()
	s := fmt.Sprintf("%d ok, %d failed", ok, fail)
	if len(errs) > 0 {
		s += " (first: " + strings.Join(errs, "; ") + ")"
	}
	return s
}

// traffic is what runs while the API server is away: one long-lived
// connection through a Service that exchanges a request and reply every
// interval, and a stream of new connections to the same Service.
type traffic struct {
	established, fresh tally
	// who counts the pods that answered the fresh connections.
	mu  sync.Mutex
	who map[string]int

	cancel context.CancelFunc
	done   sync.WaitGroup
}

// startTraffic opens the long-lived connection from the pod whose network
// namespace is nsPath to target (a Service's address:port) and starts both
// loops; the first round trip must succeed.
func startTraffic(t *testing.T, nsPath, target, podPrefix string, every time.Duration) *traffic {
	t.Helper()
	var conn net.Conn
	if err := netns.Do(nsPath, func() (err error) {
		conn, err = net.DialTimeout("tcp", target, 3*time.Second)
		return err
	}); err != nil {
		t.Fatalf("long-lived connection to %s: %v", target, err)
	}
	br := bufio.NewReader(conn)
	roundTrip := func() (string, error) {
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: outage\r\n\r\n"); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return "", err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return "", err
		}
		pod, _, ok := testserver.ParseReply(string(body))
		if !ok || !strings.HasPrefix(pod, podPrefix) {
			return "", fmt.Errorf("unexpected reply %q", body)
		}
		return pod, nil
	}
	first, err := roundTrip()
	if err != nil {
		conn.Close()
		t.Fatalf("first round trip on the long-lived connection: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr := &traffic{who: map[string]int{}, cancel: cancel}
	tr.done.Go(func() {
		defer conn.Close()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			pod, err := roundTrip()
			if err == nil && pod != first {
				err = fmt.Errorf("the long-lived connection moved from %s to %s", first, pod)
			}
			tr.established.add(err)
			if err != nil && !isTimeout(err) {
				return // the connection is gone: every later round would fail the same way
			}
		}
	})
	tr.done.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			reply, err := probeConn(nsPath, v1.ProtocolTCP, target, 2*time.Second)
			if err == nil {
				pod, _, ok := testserver.ParseReply(reply)
				if !ok || !strings.HasPrefix(pod, podPrefix) {
					err = fmt.Errorf("unexpected reply %q", reply)
				} else {
					tr.mu.Lock()
					tr.who[pod]++
					tr.mu.Unlock()
				}
			}
			tr.fresh.add(err)
		}
	})
	return tr
}

// stop ends both loops and waits for them.
func (tr *traffic) stop() {
	tr.cancel()
	tr.done.Wait()
}

// answeredBy returns how many fresh connections each pod answered.
func (tr *traffic) answeredBy() map[string]int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return maps.Clone(tr.who)
}

// ---- the control plane, stopped and started from its records

// cpProcess is a control-plane process as it ran: its record, and the
// environment and working directory it had (a record keeps the argv only).
type cpProcess struct {
	rec *proc.Record
	env []string
	dir string
}

// stopProcs stops the named control-plane processes in that order and
// returns what it takes to start them again.
func stopProcs(t *testing.T, cfg *localcluster.Config, names ...string) []cpProcess {
	t.Helper()
	var out []cpProcess
	for _, name := range names {
		rec, err := proc.Read(cfg.ProcsDir(), name)
		if err != nil {
			t.Fatalf("record of %s: %v", name, err)
		}
		if !proc.Alive(rec) {
			t.Fatalf("%s (pid %d) is not running", name, rec.PID)
		}
		p := cpProcess{rec: rec}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", rec.PID)); err == nil {
			p.env = strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		} else {
			p.env = controlplane.ProcessEnv()
		}
		if p.dir, err = os.Readlink(fmt.Sprintf("/proc/%d/cwd", rec.PID)); err != nil {
			p.dir = cfg.StateDir
		}
		if err := proc.Stop(rec, 10*time.Second); err != nil {
			t.Fatalf("stop %s: %v", name, err)
		}
		out = append(out, p)
	}
	return out
}

// startRecorded starts p again as its record says, inside the cluster's guard
// group as `podnet up` does (package guard), with extra arguments appended.
func startRecorded(cfg *localcluster.Config, p cpProcess, extra ...string) (*proc.Record, error) {
	g := &guard.Group{Mount: guard.MountPoint(cfg), Name: guard.GroupName(cfg)}
	var rec *proc.Record
	err := g.Do(func() (err error) {
		rec, err = proc.Start(cfg.ProcsDir(), proc.Spec{Name: p.rec.Name, Argv: append(slices.Clone(p.rec.Argv), extra...),
			Env: p.env, Dir: p.dir, LogFile: p.rec.LogFile, Netns: p.rec.Netns})
		return err
	})
	return rec, err
}

// flagValue returns the value of --name=value in argv.
func flagValue(argv []string, name string) string {
	for _, a := range argv {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// waitHTTP waits until url (on loopback, from this namespace) answers 200.
func waitHTTP(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	var last error
	for time.Now().Before(deadline) {
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s: not healthy after %s: %v", url, timeout, last)
}

// ---- what components count

// samples are the samples of one Prometheus text page, by series as
// printed ("name" or "name{a=\"x\",b=\"y\"}").
type samples map[string]float64

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)(?: \d+)?$`)

// parseSamples reads the text exposition format; comments and lines it
// cannot read are skipped.
func parseSamples(text string) samples {
	out := samples{}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		out[m[1]] = v
	}
	return out
}

// sum adds the samples of metric name whose labels include every
// `key="value"` of labels.
func (s samples) sum(name string, labels ...string) float64 {
	var total float64
	for series, v := range s {
		rest, ok := strings.CutPrefix(series, name)
		if !ok || rest != "" && rest[0] != '{' {
			continue
		}
		if !containsAll(rest, labels) {
			continue
		}
		total += v
	}
	return total
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// label returns `key="value"`.
func label(key, value string) string { return key + `="` + value + `"` }

// scrapeIn reads url with curl from inside the network namespace nsPath.
func scrapeIn(nsPath, url string) (samples, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+nsPath, "curl", "-sS", "--max-time", "5", "-f", url).Output()
	if err != nil {
		return nil, fmt.Errorf("curl %s in %s: %v", url, nsPath, err)
	}
	return parseSamples(string(out)), nil
}

// statusIn returns the HTTP status of url, read from inside nsPath.
func statusIn(nsPath, url string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+nsPath, "curl", "-s", "-o", "/dev/null", "--max-time", "5",
		"-w", "%{http_code}", url).Output()
	if err != nil {
		return 0, fmt.Errorf("curl %s in %s: %v", url, nsPath, err)
	}
	return strconv.Atoi(strings.TrimSpace(string(out)))
}

// ---- what the API server saw

// auditPolicy makes the API server log every request's metadata: once
// when it completes, and for a watch also when its response starts (a
// watch lasts minutes; its start is what counts here).
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
`

// apiRequest is one request of the API server's audit log.
type apiRequest struct {
	id, verb, resource, userAgent string
	// srcHost is the client's address.
	srcHost string
	status  int
	// consistent: a list without a resourceVersion, which the API server
	// reads from etcd rather than from its watch cache.
	consistent bool
	// initialEvents: a watch that first sends every object (a streaming
	// list, client-go's WatchListClient): a relist as much as a list is.
	initialEvents bool
}

// relist reports whether r reads a whole collection: a list, or a watch
// that starts with every object.
func (r apiRequest) relist() bool { return r.verb == "list" || r.verb == "watch" && r.initialEvents }

// auditEvent is the part of an audit.k8s.io/v1 Event read here.
type auditEvent struct {
	AuditID    string   `json:"auditID"`
	Stage      string   `json:"stage"`
	Verb       string   `json:"verb"`
	RequestURI string   `json:"requestURI"`
	UserAgent  string   `json:"userAgent"`
	SourceIPs  []string `json:"sourceIPs"`
	ObjectRef  *struct {
		Resource    string `json:"resource"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// parseAudit reads an audit log (JSON lines), one request per audit ID
// (its first event), in order.
func parseAudit(log string) ([]apiRequest, error) {
	var out []apiRequest
	seen := map[string]bool{}
	for line := range strings.Lines(log) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var ev auditEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			return nil, fmt.Errorf("audit line %q: %w", strings.TrimSpace(line), err)
		}
		if seen[ev.AuditID] {
			continue
		}
		seen[ev.AuditID] = true
		r := apiRequest{id: ev.AuditID, verb: ev.Verb, userAgent: ev.UserAgent}
		if len(ev.SourceIPs) > 0 {
			r.srcHost = ev.SourceIPs[0]
		}
		if ev.ResponseStatus != nil {
			r.status = ev.ResponseStatus.Code
		}
		if o := ev.ObjectRef; o != nil {
			r.resource = o.Resource
			if o.APIGroup != "" {
				r.resource += "." + o.APIGroup
			}
			if o.Subresource != "" {
				r.resource += "/" + o.Subresource
			}
		}
		q := url.Values{}
		if _, query, ok := strings.Cut(ev.RequestURI, "?"); ok {
			q, _ = url.ParseQuery(query)
		}
		r.consistent = r.verb == "list" && q.Get("resourceVersion") == ""
		r.initialEvents = r.verb == "watch" && q.Get("sendInitialEvents") == "true"
		out = append(out, r)
	}
	return out, nil
}

// client names a request's sender by its user agent: "podnet-agent",
// "podnet-dns", "kube-controller-manager", ... (the part before the first
// "/").
func (r apiRequest) client() string {
	c, _, _ := strings.Cut(r.userAgent, "/")
	if c == "" {
		return "?"
	}
	return c
}

// kind names what r did: "list", "list (etcd)" for a consistent one,
// "watch-list" for a watch with initial events, else its verb.
func (r apiRequest) kind() string {
	switch {
	case r.consistent:
		return "list (etcd)"
	case r.initialEvents:
		return "watch-list"
	}
	return r.verb
}

// countRequests counts requests by "client kind resource".
func countRequests(reqs []apiRequest, keep func(apiRequest) bool) map[string]int {
	out := map[string]int{}
	for _, r := range reqs {
		if keep(r) {
			out[r.client()+" "+r.kind()+" "+r.resource]++
		}
	}
	return out
}

// formatCounts prints counts one per line, sorted by key.
func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-60s %d\n", k, m[k])
	}
	return b.String()
}
