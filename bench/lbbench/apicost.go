package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podnet/podnet/internal/lb/ipam"
	"github.com/podnet/podnet/internal/lb/pool"
)

// The identities apicost counts by (package controlplane and addons name
// them): every agent is in group podnet:agents; the LB controller is the
// user podnet:lb-controller.
const (
	agentsGroup  = "podnet:agents"
	lbController = "podnet:lb-controller"
)

func (c *cluster) flowSchemaNames() (agents, controller string) {
	return "lbbench-agents-" + c.suffix, "lbbench-lb-controller-" + c.suffix
}

// createFlowSchemas makes two FlowSchemas in front of the catch-all
// (global-default, the priority level those clients use anyway) so that
// the API server counts the agents' and the controller's requests apart.
func (c *cluster) createFlowSchemas(ctx context.Context) error {
	agents, controller := c.flowSchemaNames()
	all := []flowcontrolv1.PolicyRulesWithSubjects{}
	rules := func(s flowcontrolv1.Subject) []flowcontrolv1.PolicyRulesWithSubjects {
		return append(all, flowcontrolv1.PolicyRulesWithSubjects{
			Subjects: []flowcontrolv1.Subject{s},
			ResourceRules: []flowcontrolv1.ResourcePolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"},
				Resources: []string{"*"}, ClusterScope: true, Namespaces: []string{"*"}}},
			NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
		})
	}
	for _, fs := range []struct {
		name string
		s    flowcontrolv1.Subject
	}{
		{agents, flowcontrolv1.Subject{Kind: flowcontrolv1.SubjectKindGroup, Group: &flowcontrolv1.GroupSubject{Name: agentsGroup}}},
		{controller, flowcontrolv1.Subject{Kind: flowcontrolv1.SubjectKindUser, User: &flowcontrolv1.UserSubject{Name: lbController}}},
	} {
		obj := &flowcontrolv1.FlowSchema{
			ObjectMeta: metav1.ObjectMeta{Name: fs.name},
			Spec: flowcontrolv1.FlowSchemaSpec{
				PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "global-default"},
				MatchingPrecedence:         1000,
				Rules:                      rules(fs.s),
			},
		}
		if _, err := c.cs.FlowcontrolV1().FlowSchemas().Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create FlowSchema %s: %w", fs.name, err)
		}
	}
	return nil
}

// counts are the API server's request counters at one moment.
type counts struct {
	at         time.Time
	total      float64
	byVerb     map[string]float64 // "verb resource"
	byFlow     map[string]float64 // FlowSchema name
	lbServices int
}

func (c *cluster) scrape(ctx context.Context) (counts, error) {
	raw, err := c.cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return counts{}, fmt.Errorf("API server /metrics: %w", err)
	}
	k := counts{at: time.Now(), byVerb: map[string]float64{}, byFlow: map[string]float64{}}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, labels, v, ok := parseSample(sc.Text())
		switch {
		case !ok:
		case name == "apiserver_request_total":
			k.total += v
			k.byVerb[labels["verb"]+" "+labels["resource"]+subres(labels)] += v
		case name == "apiserver_flowcontrol_dispatched_requests_total":
			k.byFlow[labels["flow_schema"]] += v
		}
	}
	return k, sc.Err()
}

func subres(l map[string]string) string {
	if l["subresource"] != "" {
		return "/" + l["subresource"]
	}
	return ""
}

// parseSample reads one line of the Prometheus text format: name, labels
// (values unescaped for \" and \\ only) and value; ok is false for
// comments and anything it does not read.
func parseSample(line string) (name string, labels map[string]string, v float64, ok bool) {
	if line == "" || line[0] == '#' {
		return "", nil, 0, false
	}
	labels = map[string]string{}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return "", nil, 0, false
	}
	name, rest := line[:i], line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for len(rest) > 0 && rest[0] != '}' {
			eq := strings.Index(rest, "=\"")
			if eq < 0 {
				return "", nil, 0, false
			}
			key, val, j := rest[:eq], strings.Builder{}, eq+2
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
				}
				val.WriteByte(rest[j])
			}
			labels[key] = val.String()
			rest = strings.TrimPrefix(rest[min(j+1, len(rest)):], ",")
		}
		rest = strings.TrimPrefix(rest, "}")
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return "", nil, 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return name, labels, v, err == nil
}

// quietInterval counts the API requests over o.quiet with nothing done.
func (c *cluster) quietInterval(ctx context.Context) (before, after counts, err error) {
	if before, err = c.scrape(ctx); err != nil {
		return
	}
	if !settle(ctx, c.o.quiet) {
		return before, after, ctx.Err()
	}
	after, err = c.scrape(ctx)
	return
}

// apicost measures the requests per second of the agents and the LB
// controller in the steady state, without and with o.lbServices
// LoadBalancer Services.
func (c *cluster) apicost(ctx context.Context) error {
	if err := c.createFlowSchemas(ctx); err != nil {
		return err
	}
	settle(ctx, 5*time.Second)
	fmt.Fprintf(os.Stderr, "apicost: quiet interval of %s before the Services\n", c.o.quiet)
	b0, b1, err := c.quietInterval(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := c.createLBServices(ctx); err != nil {
		return err
	}
	ready := time.Since(start)
	fmt.Fprintf(os.Stderr, "apicost: %d Services addressed after %s; settling 30 s, then a quiet interval of %s\n", c.o.lbServices, ready.Round(time.Second), c.o.quiet)
	settle(ctx, 30*time.Second)
	l0, l1, err := c.quietInterval(ctx)
	if err != nil {
		return err
	}
	printAPICost(c, ready, [2]counts{b0, b1}, [2]counts{l0, l1})
	return nil
}

// createLBServices makes the pool and o.lbServices Services addressed
// from it, and waits until every one has its address.
func (c *cluster) createLBServices(ctx context.Context) error {
	pfx, err := netip.ParsePrefix(c.o.apiPool)
	if err != nil || 1<<(32-pfx.Bits()) < c.o.lbServices {
		return fmt.Errorf("-apicost-pool %q: want an IPv4 prefix with at least %d addresses (%v)", c.o.apiPool, c.o.lbServices, err)
	}
	off := false
	name := "lbbench-" + c.suffix
	if _, err := pool.Create(ctx, c.dyn, &pool.Pool{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: pool.Spec{Blocks: []pool.Block{{CIDR: pfx.Masked().String()}}, AutoAssign: &off}}); err != nil {
		return err
	}
	work := make(chan int)
	errc := make(chan error, c.o.lbServices)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				svc := lbService(fmt.Sprintf("lb-%04d", i), map[string]string{ipam.AnnotationPool: name})
				svc.Labels["lbbench"] = "apicost"
				if _, err := c.cs.CoreV1().Services(c.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
					errc <- err
				}
			}
		})
	}
	for i := range c.o.lbServices {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return fmt.Errorf("create Services: %w", err)
	}
	return c.waitAddressed(ctx, 20*time.Minute)
}

func (c *cluster) waitAddressed(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		l, err := c.cs.CoreV1().Services(c.ns).List(ctx, metav1.ListOptions{LabelSelector: "lbbench=apicost"})
		n := 0
		if err == nil {
			for _, s := range l.Items {
				if len(s.Status.LoadBalancer.Ingress) > 0 {
					n++
				}
			}
		}
		if n >= c.o.lbServices {
			return nil
		}
		if n > 0 && n%100 < 10 {
			fmt.Fprintf(os.Stderr, "apicost: %d of %d Services have an address\n", n, c.o.lbServices)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d Services have an address after %s (err %v)", n, c.o.lbServices, d, err)
		}
		if !settle(ctx, 2*time.Second) {
			return ctx.Err()
		}
	}
}

// deleteAPICostObjects removes the FlowSchemas, the Services and the pool
// apicost made; missing ones are fine.
func (c *cluster) deleteAPICostObjects(ctx context.Context) error {
	var errs []error
	notFound := func(err error) error {
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	agents, controller := c.flowSchemaNames()
	for _, n := range []string{agents, controller} {
		errs = append(errs, notFound(c.cs.FlowcontrolV1().FlowSchemas().Delete(ctx, n, metav1.DeleteOptions{})))
	}
	if c.ns != "" {
		errs = append(errs, c.deleteLBServices(ctx))
	}
	errs = append(errs, notFound(c.dyn.Resource(pool.GVR).Delete(ctx, "lbbench-"+c.suffix, metav1.DeleteOptions{})))
	return errors.Join(errs...)
}

// rates are per-second differences between two counts.
func rates(a, b counts, by func(counts) map[string]float64) map[string]float64 {
	secs := b.at.Sub(a.at).Seconds()
	out := map[string]float64{}
	for k, v := range by(b) {
		if d := v - by(a)[k]; d > 0 {
			out[k] = d / secs
		}
	}
	return out
}

func sortedKeys(m ...map[string]float64) []string {
	set := map[string]bool{}
	for _, x := range m {
		for k := range x {
			set[k] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// deleteLBServices deletes apicost's Services, 16 at a time.
func (c *cluster) deleteLBServices(ctx context.Context) error {
	api := c.cs.CoreV1().Services(c.ns)
	l, err := api.List(ctx, metav1.ListOptions{LabelSelector: "lbbench=apicost"})
	if err != nil {
		return fmt.Errorf("list apicost Services: %w", err)
	}
	names := make(chan string)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for n := range names {
				if err := api.Delete(ctx, n, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, s := range l.Items {
		names <- s.Name
	}
	close(names)
	wg.Wait()
	return errors.Join(errs...)
}
