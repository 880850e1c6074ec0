package memory_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/checkpoint"
	"github.com/understudy/understudy/checkpoint/checkpointtest"
	"github.com/understudy/understudy/checkpoint/memory"
)

func TestStoreContract(t *testing.T) {
	checkpointtest.Run(t, func(t *testing.T) checkpoint.Store { return memory.New() })
}

func TestLockerContract(t *testing.T) {
	checkpointtest.RunLocker(t, func(t *testing.T) (checkpoint.Locker, checkpoint.Locker) {
		l := memory.NewLocker()
		return l, l
	})
}

func TestLeaseExpires(t *testing.T) {
	ctx := context.Background()
	l := memory.NewLocker()
	le, err := l.Lock(ctx, "p", "sync", 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond)
	le2, err := l.Lock(ctx, "p", "reset", time.Minute)
	if err != nil {
		t.Fatalf("Lock after the holder's ttl passed: %v", err)
	}
	defer le2.Release(ctx)
	if err := le.Refresh(ctx); !errors.Is(err, checkpoint.ErrLockLost) {
		t.Fatalf("Refresh of an expired lease: err = %v, want ErrLockLost", err)
	}
}

// Changing a loaded checkpoint's slices must not change the stored one.
func TestLoadReturnsACopy(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	cp := checkpoint.Checkpoint{Pipeline: "p", Seq: 1, Position: []byte("abc"),
		Load: &checkpoint.LoadProgress{Done: map[string][]string{"t": {"1"}}}}
	if err := s.Save(ctx, cp); err != nil {
		t.Fatal(err)
	}
	cp.Position[0] = 'X'
	got, _ := s.Load(ctx, "p")
	got.Load.Done["t"][0] = "changed"
	again, _ := s.Load(ctx, "p")
	if string(again.Position) != "abc" || again.Load.Done["t"][0] != "1" {
		t.Fatalf("stored checkpoint changed through a caller's copy: %+v %+v", again, again.Load)
	}
}

func TestOpenByURL(t *testing.T) {
	ctx := context.Background()
	if _, err := checkpoint.Open(ctx, "memory:"); err != nil {
		t.Fatal(err)
	}
	_, err := checkpoint.Open(ctx, "nosuch://x")
	if err == nil || !strings.Contains(err.Error(), "memory") {
		t.Fatalf("unknown scheme: err = %v, want one listing the known schemes", err)
	}
	a, _ := checkpoint.OpenLocker(ctx, "memory:")
	b, _ := checkpoint.OpenLocker(ctx, "memory:")
	le, err := a.Lock(ctx, "shared", "sync", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer le.Release(ctx)
	if _, err := b.Lock(ctx, "shared", "reset", time.Minute); !errors.Is(err, checkpoint.ErrLocked) {
		t.Fatalf("two memory: lockers do not exclude each other: %v", err)
	}
}
