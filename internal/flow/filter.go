package flow

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Filter selects records; the zero Filter selects all. Pod and Service
// names are "name" in Namespace or "namespace/name". The same filter runs
// in the agent (GET /flows query) and in clients (Values, FilterFromQuery).
type Filter struct {
	// Since keeps records at or after this time.
	Since time.Time
	// Namespace keeps records with either end in it (or its Service).
	Namespace string
	// Pod keeps records with either end this pod; FromPod and ToPod the
	// source or the destination.
	Pod, FromPod, ToPod string
	// ToService keeps records addressed to this Service.
	ToService string
	// Verdict is "forwarded" or "dropped".
	Verdict string
}

// Validate reports what is wrong with f.
func (f Filter) Validate() error {
	var errs []error
	if f.Verdict != "" && f.Verdict != Forwarded && f.Verdict != Dropped {
		errs = append(errs, fmt.Errorf("verdict %q: want %s or %s", f.Verdict, Forwarded, Dropped))
	}
	for _, n := range []string{f.Pod, f.FromPod, f.ToPod, f.ToService} {
		if strings.Count(n, "/") > 1 {
			errs = append(errs, fmt.Errorf("%q: want NAME or NAMESPACE/NAME", n))
		}
	}
	return errors.Join(errs...)
}

// Match says whether r passes f.
func (f Filter) Match(r Record) bool {
	switch {
	case !f.Since.IsZero() && r.Time.Before(f.Since):
		return false
	case f.Verdict != "" && r.Verdict != f.Verdict:
		return false
	case f.Namespace != "" && r.Source.Namespace != f.Namespace && r.Destination.Namespace != f.Namespace &&
		(r.Service == nil || r.Service.Namespace != f.Namespace):
		return false
	case f.Pod != "" && !f.isPod(f.Pod, r.Source) && !f.isPod(f.Pod, r.Destination):
		return false
	case f.FromPod != "" && !f.isPod(f.FromPod, r.Source):
		return false
	case f.ToPod != "" && !f.isPod(f.ToPod, r.Destination):
		return false
	case f.ToService != "":
		if r.Service == nil {
			return false
		}
		ns, name := f.split(f.ToService)
		return r.Service.Name == name && (ns == "" || r.Service.Namespace == ns)
	}
	return true
}

// split turns "ns/name" or "name" into its namespace (f.Namespace for a
// bare name) and name.
func (f Filter) split(s string) (string, string) {
	if ns, name, ok := strings.Cut(s, "/"); ok {
		return ns, name
	}
	return f.Namespace, s
}

func (f Filter) isPod(want string, e Endpoint) bool {
	ns, name := f.split(want)
	return e.Pod == name && (ns == "" || e.Namespace == ns)
}

// Query parameter names of GET /flows.
const (
	qSince     = "since"
	qNamespace = "namespace"
	qPod       = "pod"
	qFromPod   = "from-pod"
	qToPod     = "to-pod"
	qToService = "to-service"
	qVerdict   = "verdict"
	qLast      = "last"
	qFollow    = "follow"
)

// Values encodes f as GET /flows query parameters.
func (f Filter) Values() url.Values {
	v := url.Values{}
	if !f.Since.IsZero() {
		v.Set(qSince, f.Since.UTC().Format(time.RFC3339Nano))
	}
	for k, s := range map[string]string{qNamespace: f.Namespace, qPod: f.Pod, qFromPod: f.FromPod,
		qToPod: f.ToPod, qToService: f.ToService, qVerdict: f.Verdict} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// FilterFromQuery decodes Values' parameters; since may also be a
// duration back from now ("5m").
func FilterFromQuery(v url.Values, now time.Time) (Filter, error) {
	f := Filter{Namespace: v.Get(qNamespace), Pod: v.Get(qPod), FromPod: v.Get(qFromPod), ToPod: v.Get(qToPod),
		ToService: v.Get(qToService), Verdict: v.Get(qVerdict)}
	if s := v.Get(qSince); s != "" {
		var err error
		f.Since, err = ParseSince(s, now)
		if err != nil {
			return Filter{}, err
		}
	}
	return f, f.Validate()
}

// ParseSince reads a time (RFC 3339) or a duration back from now.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("since %q: want a duration (5m) or an RFC 3339 time", s)
	}
	return t, nil
}
