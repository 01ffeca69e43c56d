package kubeletapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// serveLogs handles /containerLogs as the kubelet's getContainerLogs.
func (s *Server) serveLogs(w http.ResponseWriter, r *http.Request) {
	t := target(r)
	opts, err := ParseLogOptions(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	err = s.rt.Lookup(Target{Namespace: t.Namespace, Pod: t.Pod, UID: t.UID})
	var write LogWriter
	if err == nil {
		write, err = s.rt.Logs(t, opts)
	}
	switch {
	case errors.Is(err, ErrPodNotFound):
		http.Error(w, fmt.Sprintf("pod %q does not exist", t.Pod), http.StatusNotFound)
		return
	case errors.Is(err, ErrContainerNotFound):
		http.Error(w, fmt.Sprintf("container %q not found in pod %q", t.Container, t.Pod), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// The answer starts now, so that a follower sees it before any output.
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fw := &flushWriter{w: w}
	if f, ok := w.(http.Flusher); ok {
		fw.f = f
		f.Flush()
	}
	var stdout, stderr io.Writer = fw, fw
	switch {
	case opts.Stream == nil || *opts.Stream == v1.LogStreamAll:
	case *opts.Stream == v1.LogStreamStdout:
		stderr = nil
	case *opts.Stream == v1.LogStreamStderr:
		stdout = nil
	}
	if err := write(r.Context(), stdout, stderr); err != nil {
		s.log.Debug("kubelet API: log stream ended", "pod", t.Namespace+"/"+t.Pod, "container", t.Container, "err", err)
	}
}

// flushWriter sends every write at once (follow).
type flushWriter struct {
	w io.Writer
	f http.Flusher
}

func (fw *flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	if fw.f != nil {
		fw.f.Flush()
	}
	return n, err
}

// ParseLogOptions reads the query of a containerLogs request (the v1
// PodLogOptions the API server encodes, plus the old "tail") and validates
// it as the API does.
func ParseLogOptions(q url.Values) (*v1.PodLogOptions, error) {
	o := &v1.PodLogOptions{}
	if tail := q.Get("tail"); tail != "" && tail != "all" && q.Get("tailLines") == "" {
		q.Set("tailLines", tail)
	}
	var errs []error
	flag := func(name string, dst *bool) {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			errs = append(errs, wrapParam(name, err))
			*dst = b
		}
	}
	number := func(name string, dst **int64) {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			errs = append(errs, wrapParam(name, err))
			*dst = &n
		}
	}
	flag("follow", &o.Follow)
	flag("previous", &o.Previous)
	flag("timestamps", &o.Timestamps)
	number("tailLines", &o.TailLines)
	number("limitBytes", &o.LimitBytes)
	number("sinceSeconds", &o.SinceSeconds)
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		errs = append(errs, wrapParam("sinceTime", err))
		o.SinceTime = &metav1.Time{Time: t}
	}
	if v := q.Get("stream"); v != "" {
		o.Stream = &v
	}
	errs = append(errs, validateLogOptions(o))
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return o, nil
}

func wrapParam(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("query parameter %s: %w", name, err)
}

// validateLogOptions applies the API's rules (ValidatePodLogOptions).
func validateLogOptions(o *v1.PodLogOptions) error {
	var errs []error
	if o.TailLines != nil && *o.TailLines < 0 {
		errs = append(errs, errors.New("tailLines: must be greater than or equal to 0"))
	}
	if o.LimitBytes != nil && *o.LimitBytes < 1 {
		errs = append(errs, errors.New("limitBytes: must be greater than 0"))
	}
	if o.SinceSeconds != nil && o.SinceTime != nil {
		errs = append(errs, errors.New("at most one of sinceTime or sinceSeconds may be specified"))
	}
	if o.SinceSeconds != nil && *o.SinceSeconds < 1 {
		errs = append(errs, errors.New("sinceSeconds: must be greater than 0"))
	}
	if o.Stream != nil {
		switch *o.Stream {
		case v1.LogStreamAll:
		case v1.LogStreamStdout, v1.LogStreamStderr:
			if o.TailLines != nil {
				errs = append(errs, errors.New("tailLines: cannot be used with a stream other than All"))
			}
		default:
			errs = append(errs, fmt.Errorf("stream: unsupported value %q", *o.Stream))
		}
	}
	return errors.Join(errs...)
}
