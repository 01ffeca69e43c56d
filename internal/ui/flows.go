package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/podnet/podnet/internal/flow"
)

// FlowEvent is one "record" event of /api/flows: the record (docs/flows.md's
// schema) and the short form of its policies that podnet flows prints.
type FlowEvent struct {
	flow.Record
	PolicyText string `json:"policyText,omitempty"`
}

// defaultLast is how many held records of each node /api/flows sends
// before the live ones when the query says no last.
const defaultLast = 50

// keepAlive is how often an idle stream gets a comment, so that a proxy
// (an SSH tunnel) in between does not close it.
var keepAlive = 15 * time.Second

// serveFlows streams records as server-sent events: "record" events of
// FlowEvent, and "nodeerror" events ({node, error}) for nodes whose stream
// failed. It ends when the client goes.
func (src Sources) serveFlows(w http.ResponseWriter, r *http.Request) {
	q, err := flowQuery(r)
	if err != nil {
		reply(w, nil, err)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		reply(w, nil, fmt.Errorf("streaming unsupported"))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	ctx := r.Context()
	recs := make(chan flow.Record, 256)
	nodeErrs := make(chan flow.NodeError, 16)
	go func() {
		_ = src.Follow(ctx, q, recs, func(e flow.NodeError) {
			select {
			case nodeErrs <- e:
			case <-ctx.Done():
			}
		})
		close(recs)
	}()
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		select {
		case rec, ok := <-recs:
			if !ok {
				return
			}
			writeEvent(w, "record", FlowEvent{Record: rec, PolicyText: rec.PolicyText()})
		case e := <-nodeErrs:
			writeEvent(w, "nodeerror", map[string]string{"node": e.Node, "error": e.Err.Error()})
		case <-tick.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case <-ctx.Done():
			return
		}
		fl.Flush()
	}
}

// flowQuery reads GET /flows's filter and last from the query.
func flowQuery(r *http.Request) (flow.Query, error) {
	v := r.URL.Query()
	f, err := flow.FilterFromQuery(v, time.Now())
	if err != nil {
		return flow.Query{}, badRequest{err}
	}
	q := flow.Query{Filter: f, Last: defaultLast}
	if s := v.Get("last"); s != "" {
		if q.Last, err = strconv.Atoi(s); err != nil || q.Last < 0 {
			return flow.Query{}, badRequest{fmt.Errorf("last %q: want a number >= 0", s)}
		}
	}
	return q, nil
}

func writeEvent(w http.ResponseWriter, event string, v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
}
