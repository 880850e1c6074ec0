package pipeline

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/understudy/understudy/checkpoint"
)

type fakeLease struct {
	calls atomic.Int32
	fail  func(n int32) error
}

func (l *fakeLease) Refresh(context.Context) error { return l.fail(l.calls.Add(1)) }
func (l *fakeLease) Release(context.Context) error { return nil }

// A refresh that fails transiently keeps the work going; a lost lock stops it,
// with the reason as the context's cause.
func TestHoldStopsWorkOnlyWhenTheLockIsLost(t *testing.T) {
	defer func(d time.Duration) { leaseRefreshEvery = d }(leaseRefreshEvery)
	leaseRefreshEvery = 5 * time.Millisecond

	blips := &fakeLease{fail: func(n int32) error {
		if n%2 == 0 {
			return errors.New("redis: connection reset")
		}
		return nil
	}}
	ctx, stop := Hold(context.Background(), blips)
	for blips.calls.Load() < 10 {
		time.Sleep(time.Millisecond)
	}
	if ctx.Err() != nil {
		t.Fatalf("transient refresh errors stopped the work: %v", context.Cause(ctx))
	}
	stop()

	lost := &fakeLease{fail: func(n int32) error {
		if n >= 3 {
			return checkpoint.ErrLockLost
		}
		return nil
	}}
	ctx, stop = Hold(context.Background(), lost)
	defer stop()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a lost lock did not stop the work")
	}
	if !errors.Is(context.Cause(ctx), checkpoint.ErrLockLost) {
		t.Fatalf("cause = %v, want ErrLockLost", context.Cause(ctx))
	}
}
