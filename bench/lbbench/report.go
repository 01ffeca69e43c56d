package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/podnet/podnet/bench/internal/localbench"
)

func pct(d []time.Duration, p float64) time.Duration { return localbench.Percentile(d, p) }

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func printFailover(c *cluster, results map[string][]failRun) {
	fmt.Printf("## Failover, a client in the world sending a UDP request to %s every %s (reply timeout %s)\n\n", c.vip, c.o.every, c.o.timeout)
	fmt.Printf("VIP announced by %s, endpoints on %s; each failure lasts %s and is then undone (agent restarted from its record, link up); "+
		"%d runs per kind. gap: longest time between two replies (last reply before → first reply after); "+
		"lost: requests without a reply; moved: failure → the world's neighbour entry for the VIP names another node's MAC. "+
		"back: the same while the node returns and takes the VIP back.\n\n", c.cfg.NodeName(c.owner), c.cfg.NodeName(endpointNode), c.o.observe, c.o.runs)
	fmt.Printf("| failure | gap p50 | gap p99 | gap max | lost p50 | lost max | moved p50 | moved p99 | back: gap max | back: lost max |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, f := range failures {
		rs := results[f.name]
		if len(rs) == 0 {
			continue
		}
		var gaps, moved, backGaps []time.Duration
		var lost, backLost []int
		for _, r := range rs {
			gaps, backGaps = append(gaps, r.gap), append(backGaps, r.backGap)
			lost, backLost = append(lost, r.lost), append(backLost, r.backLost)
			if r.moveSeen {
				moved = append(moved, r.moved)
			}
		}
		mv := "not seen"
		if len(moved) > 0 {
			mv = fmt.Sprintf("%s | %s", ms(pct(moved, 50)), ms(pct(moved, 99)))
			if len(moved) < len(rs) {
				mv += fmt.Sprintf(" (%d of %d runs)", len(moved), len(rs))
			}
		} else {
			mv += " | –"
		}
		fmt.Printf("| %s: %s | %s | %s | %s | %d | %d | %s | %s | %d |\n", f.name, f.what, ms(pct(gaps, 50)), ms(pct(gaps, 99)),
			ms(slices.Max(gaps)), localbench.Percentile(lost, 50), slices.Max(lost), mv, ms(slices.Max(backGaps)), slices.Max(backLost))
	}
	fmt.Println()
}

func printAPICost(c *cluster, ready time.Duration, base, loaded [2]counts) {
	byFlow := func(k counts) map[string]float64 { return k.byFlow }
	byVerb := func(k counts) map[string]float64 { return k.byVerb }
	bf, lf := rates(base[0], base[1], byFlow), rates(loaded[0], loaded[1], byFlow)
	agents, controller := c.flowSchemaNames()
	fmt.Printf("\n## API requests in the steady state, without and with %d LoadBalancer Services\n\n", c.o.lbServices)
	fmt.Printf("%d Services created and all addressed in %s; measured over %s each, the second 30 s after the last address. "+
		"Requests per second at the API server (apiserver_flowcontrol_dispatched_requests_total per FlowSchema; "+
		"%s matches group %s, %s the user %s).\n\n", c.o.lbServices, ready.Round(time.Second), c.o.quiet, agents, agentsGroup, controller, lbController)
	fmt.Printf("| FlowSchema (who) | req/s without | req/s with %d |\n|---|---|---|\n", c.o.lbServices)
	for _, k := range sortedKeys(bf, lf, map[string]float64{agents: 0, controller: 0}) {
		who := k
		switch k {
		case agents:
			who = fmt.Sprintf("%s (the %d agents)", k, c.cfg.Nodes)
		case controller:
			who = k + " (the LB controller)"
		}
		fmt.Printf("| %s | %.3f | %.3f |\n", who, bf[k], lf[k])
	}
	secs := func(k [2]counts) float64 { return k[1].at.Sub(k[0].at).Seconds() }
	fmt.Printf("| all (apiserver_request_total) | %.3f | %.3f |\n\n", (base[1].total-base[0].total)/secs(base), (loaded[1].total-loaded[0].total)/secs(loaded))
	bv, lv := rates(base[0], base[1], byVerb), rates(loaded[0], loaded[1], byVerb)
	var rows []string
	for _, k := range sortedKeys(bv, lv) {
		rows = append(rows, fmt.Sprintf("| %s | %.3f | %.3f |", k, bv[k], lv[k]))
	}
	fmt.Printf("all clients by verb and resource (apiserver_request_total):\n\n| verb resource | req/s without | req/s with %d |\n|---|---|---|\n%s\n",
		c.o.lbServices, strings.Join(rows, "\n"))
}
