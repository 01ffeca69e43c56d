package runner

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestPokesCoalesceAndFailuresRetry(t *testing.T) {
	var calls atomic.Int32
	failures := atomic.Int32{}
	failures.Store(2)
	done := make(chan struct{}, 10)
	r := New("test", func(context.Context) error {
		calls.Add(1)
		defer func() { done <- struct{}{} }()
		if failures.Add(-1) >= 0 {
			return errors.New("boom")
		}
		return nil
	}, 10*time.Millisecond, 0, nil)
	r.backoffForTest(time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 100 {
		r.Poke()
	}
	go r.Run(ctx)
	// Two failures, then a success: three calls without any new poke.
	for i := range 3 {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("sync %d never ran", i+1)
		}
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("%d syncs, want 3 (100 pokes coalesce, failures retry)", got)
	}
	select {
	case <-done:
		t.Errorf("an extra sync ran without a poke")
	case <-time.After(100 * time.Millisecond):
	}
	r.Poke()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a poke after success did not sync")
	}
}

func TestPeriodicSync(t *testing.T) {
	done := make(chan struct{}, 10)
	r := New("test", func(context.Context) error { done <- struct{}{}; return nil }, time.Millisecond, 20*time.Millisecond, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	for i := range 3 {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("sync %d (first, then periodic) never ran", i+1)
		}
	}
}
