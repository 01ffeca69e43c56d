package flow

import (
	"cmp"
	"slices"
	"time"
)

// Aggregate is the count of records with one key in one time window, like
// Calico's flow logs.
type Aggregate struct {
	// Start of the window (records' times truncated to the window).
	Start time.Time `json:"start"`
	// Source and Destination are "namespace/Kind/name" of the workloads
	// (a bare pod: "namespace/pod/name"; not a pod: the address).
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Protocol    string `json:"protocol"`
	Port        uint16 `json:"port,omitempty"`
	Verdict     string `json:"verdict"`
	// Policy is Record.PolicyText.
	Policy string `json:"policy,omitempty"`
	// Records counted; Connections are "new" records, Drops "drop" ones.
	Records     int `json:"records"`
	Connections int `json:"connections"`
	Drops       int `json:"drops"`
	// Bytes and Packets are the sums of the "end" records' counters.
	Bytes   uint64 `json:"bytes,omitempty"`
	Packets uint64 `json:"packets,omitempty"`
}

// WorkloadOf names an endpoint for aggregation.
func WorkloadOf(e Endpoint) string {
	switch {
	case e.Workload != "":
		return e.Namespace + "/" + e.Workload
	case e.Pod != "":
		return e.Namespace + "/pod/" + e.Pod
	}
	return e.IP.String()
}

// AggregateRecords counts records per (window, source workload,
// destination workload, protocol, port, verdict, policy); window 0 puts
// all records in one. The result is sorted by window, then by count,
// largest first.
func AggregateRecords(records []Record, window time.Duration) []Aggregate {
	type key struct {
		start              time.Time
		src, dst, proto    string
		port               uint16
		verdict, policyTxt string
	}
	byKey := map[key]*Aggregate{}
	for _, r := range records {
		k := key{src: WorkloadOf(r.Source), dst: WorkloadOf(r.Destination), proto: r.Protocol,
			port: r.Destination.Port, verdict: r.Verdict, policyTxt: r.PolicyText()}
		if window > 0 {
			k.start = r.Time.Truncate(window)
		}
		a := byKey[k]
		if a == nil {
			a = &Aggregate{Start: k.start, Source: k.src, Destination: k.dst, Protocol: k.proto, Port: k.port,
				Verdict: k.verdict, Policy: k.policyTxt}
			byKey[k] = a
		}
		a.Records++
		switch r.Event {
		case EventNew:
			a.Connections++
		case EventDrop:
			a.Drops++
		}
		if c := r.Counters; c != nil {
			a.Bytes += c.BytesOut + c.BytesIn
			a.Packets += c.PacketsOut + c.PacketsIn
		}
	}
	out := make([]Aggregate, 0, len(byKey))
	for _, a := range byKey {
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b Aggregate) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(b.Records, a.Records),
			cmp.Compare(a.Source, b.Source), cmp.Compare(a.Destination, b.Destination),
			cmp.Compare(a.Port, b.Port), cmp.Compare(a.Verdict, b.Verdict), cmp.Compare(a.Policy, b.Policy),
			cmp.Compare(a.Protocol, b.Protocol))
	})
	return out
}

// Merge merges per-node record lists (each oldest first) into one, by
// time.
func Merge(lists ...[]Record) []Record {
	var out []Record
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.SortStableFunc(out, func(a, b Record) int { return a.Time.Compare(b.Time) })
	return out
}
