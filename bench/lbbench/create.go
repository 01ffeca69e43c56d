package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/podnet/podnet/bench/internal/probe"
	"github.com/podnet/podnet/internal/lb/ipam"
)

// create measures, o.services times, Service Create returned → first
// reply from the world, and → address in the Service's status.
func (c *cluster) create(ctx context.Context) error {
	var addrs []netip.Addr
	for _, a := range c.poolAddrs() {
		if a != c.vip {
			addrs = append(addrs, a)
		}
	}
	var answered, assigned, calls []time.Duration
	for i := range c.o.services {
		a := addrs[i%len(addrs)]
		ans, asg, call, err := c.createOnce(ctx, fmt.Sprintf("create-%d", i), a)
		if err != nil {
			return fmt.Errorf("Service %d (%s): %w", i+1, a, err)
		}
		answered, assigned, calls = append(answered, ans), append(assigned, asg), append(calls, call)
		fmt.Fprintf(os.Stderr, "create %d/%d: %s answered after %s, in status after %s\n", i+1, c.o.services, a, ms(ans), ms(asg))
	}
	fmt.Printf("\n## Service created → first request answered from the world (%d Services, one at a time)\n\n", c.o.services)
	fmt.Printf("endpoints Ready on %s before each Create; the world's neighbour entry for the address deleted first; "+
		"UDP request every %s from a new socket\n\n", c.cfg.NodeName(endpointNode), c.o.every)
	fmt.Printf("| from Create returned | p50 | p99 | max | min |\n|---|---|---|---|---|\n")
	for _, r := range []struct {
		name string
		d    []time.Duration
	}{{"→ first reply in the world", answered}, {"→ address in status (watch)", assigned}, {"Create call itself (not included)", calls}} {
		fmt.Printf("| %s | %s | %s | %s | %s |\n", r.name, ms(pct(r.d, 50)), ms(pct(r.d, 99)), ms(slices.Max(r.d)), ms(slices.Min(r.d)))
	}
	return nil
}

// createOnce creates one Service asking for a and deletes it again.
func (c *cluster) createOnce(ctx context.Context, name string, a netip.Addr) (answered, assigned, call time.Duration, err error) {
	if err := forgetNeighbour(c.worldNS, a); err != nil {
		return 0, 0, 0, fmt.Errorf("forget the world's neighbour entry: %w", err)
	}
	api := c.cs.CoreV1().Services(c.ns)
	w, err := api.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("watch: %w", err)
	}
	defer w.Stop()
	c0 := time.Now()
	if _, err := api.Create(ctx, lbService(name, map[string]string{ipam.AnnotationIP: a.String()}), metav1.CreateOptions{}); err != nil {
		return 0, 0, 0, fmt.Errorf("create: %w", err)
	}
	t0 := time.Now()
	defer func() {
		if derr := api.Delete(context.Background(), name, metav1.DeleteOptions{}); derr != nil && err == nil {
			err = fmt.Errorf("delete: %w", derr)
		}
		settle(ctx, 500*time.Millisecond)
	}()
	asg := make(chan time.Time, 1)
	go func() {
		for ev := range w.ResultChan() {
			if s, ok := ev.Object.(*v1.Service); ok && len(s.Status.LoadBalancer.Ingress) > 0 {
				asg <- time.Now()
				return
			}
		}
	}()
	p := &probe.UDP{NSPath: c.worldNS, Dst: netip.AddrPortFrom(a, port), Every: c.o.every, Timeout: c.o.timeout, Payload: payload}
	pctx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	go func() {
		for settle(pctx, 2*time.Millisecond) {
			if _, ok := p.FirstReply(); ok {
				stop()
			}
		}
	}()
	p.Run(pctx)
	first, ok := p.FirstReply()
	if !ok {
		return 0, 0, 0, fmt.Errorf("no reply within 30 s")
	}
	select {
	case at := <-asg:
		assigned = at.Sub(t0)
	case <-time.After(10 * time.Second):
		return 0, 0, 0, fmt.Errorf("answered, but the watch saw no address in the status")
	}
	return first.Sub(t0), assigned, t0.Sub(c0), nil
}
