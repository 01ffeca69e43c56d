package flow

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Handler serves GET /flows on the agent's metrics address: the ring's
// records as JSON lines (NDJSON), oldest first. Query parameters: the
// Filter's (since, namespace, pod, from-pod, to-pod, to-service, verdict),
// last=N (the newest N) and follow=1 (keep the response open and stream
// new records until the client leaves).
func Handler(ring *Ring) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		f, err := FilterFromQuery(q, time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		last := 0
		if s := q.Get(qLast); s != "" {
			if last, err = strconv.Atoi(s); err != nil || last < 0 {
				http.Error(w, "last: want a number of records", http.StatusBadRequest)
				return
			}
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		if q.Get(qFollow) != "1" && q.Get(qFollow) != "true" {
			for _, r := range ring.Snapshot(f, last) {
				_ = enc.Encode(r)
			}
			return
		}
		backlog, ch, stop := ring.Follow(f, last)
		defer stop()
		flusher, _ := w.(http.Flusher)
		for _, r := range backlog {
			_ = enc.Encode(r)
		}
		for {
			if flusher != nil {
				flusher.Flush()
			}
			select {
			case <-req.Context().Done():
				return
			case r := <-ch:
				if f.Match(r) {
					if enc.Encode(r) != nil {
						return
					}
				}
			}
		}
	})
}
