// Package runner calls one sync function on behalf of many events: informer
// handlers Poke it, and it runs the sync at most once per MinInterval, at
// least once per MaxInterval (a periodic full reconcile), and again after a
// failure with exponential backoff. Only one sync runs at a time. This is the
// shape every podnet controller uses: handlers record, the runner syncs.
// Controllers do not use it directly: package controller runs one per
// controller, with the cache-sync wait, metrics and health around it.
package runner

import (
	"context"
	"time"
)

// Runner runs Sync in response to Poke.
type Runner struct {
	// set at construction, read-only
	name        string
	sync        func(ctx context.Context) error
	minInterval time.Duration
	maxInterval time.Duration
	maxBackoff  time.Duration
	onError     func(error)

	poke chan struct{}
}

// New returns a runner. minInterval bounds how often sync runs; maxInterval
// (0: never) forces a periodic run; onError (may be nil) is told of failures.
func New(name string, sync func(ctx context.Context) error, minInterval, maxInterval time.Duration, onError func(error)) *Runner {
	return &Runner{
		name: name, sync: sync, minInterval: minInterval, maxInterval: maxInterval,
		maxBackoff: 30 * time.Second, onError: onError, poke: make(chan struct{}, 1),
	}
}

// Poke asks for a sync soon. It never blocks; pokes coalesce.
func (r *Runner) Poke() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// Run syncs until ctx ends. The first sync happens at once.
func (r *Runner) Run(ctx context.Context) {
	r.Poke()
	var last time.Time
	backoff := r.minInterval
	if backoff <= 0 {
		backoff = 100 * time.Millisecond
	}
	var retry, periodic <-chan time.Time
	for {
		if r.maxInterval > 0 && periodic == nil {
			periodic = time.After(r.maxInterval)
		}
		select {
		case <-ctx.Done():
			return
		case <-r.poke:
		case <-retry:
		case <-periodic:
			periodic = nil
		}
		if wait := r.minInterval - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		last = time.Now()
		retry = nil
		if err := r.sync(ctx); err != nil {
			if r.onError != nil {
				r.onError(err)
			}
			retry = time.After(backoff)
			backoff = min(backoff*2, r.maxBackoff)
			continue
		}
		backoff = max(r.minInterval, 100*time.Millisecond)
		periodic = nil
	}
}
