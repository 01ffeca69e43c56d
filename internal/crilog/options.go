package crilog

import (
	"time"

	v1 "k8s.io/api/core/v1"
)

// FromPodLogOptions turns the API's log options into Read's, as the
// kubelet does (sinceSeconds counts back from now).
func FromPodLogOptions(o *v1.PodLogOptions, now time.Time) Options {
	opts := Options{Follow: o.Follow, TailLines: o.TailLines, Timestamps: o.Timestamps, LimitBytes: o.LimitBytes}
	switch {
	case o.SinceSeconds != nil:
		opts.Since = now.Add(-time.Duration(*o.SinceSeconds) * time.Second)
	case o.SinceTime != nil:
		opts.Since = o.SinceTime.Time
	}
	return opts
}
