package redis_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/understudy/understudy/checkpoint"
	"github.com/understudy/understudy/checkpoint/checkpointtest"
	"github.com/understudy/understudy/checkpoint/redis"
	"github.com/understudy/understudy/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func open(t *testing.T, url string) *redis.Store {
	t.Helper()
	s, err := redis.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreContract(t *testing.T) {
	srv := testenv.Redis(t)
	checkpointtest.Run(t,
		func(t *testing.T) checkpoint.Store { return open(t, srv.URL(t)) },
		checkpointtest.WithReopen(func(t *testing.T, s checkpoint.Store) checkpoint.Store {
			return open(t, s.(*redis.Store).URL())
		}))
}

func TestLockerContract(t *testing.T) {
	srv := testenv.Redis(t)
	checkpointtest.RunLocker(t, func(t *testing.T) (checkpoint.Locker, checkpoint.Locker) {
		u := srv.URL(t)
		return open(t, u), open(t, u)
	})
}

// A sync that dies without releasing its lock blocks reset only for the ttl.
func TestLeaseExpiresWithoutRefresh(t *testing.T) {
	ctx := context.Background()
	u := testenv.Redis(t).URL(t)
	a, b := open(t, u), open(t, u)
	defer a.Close()
	defer b.Close()
	const ttl = 300 * time.Millisecond
	dead, err := a.Lock(ctx, "orders", "sync that died", ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lock(ctx, "orders", "reset", ttl); !errors.Is(err, checkpoint.ErrLocked) {
		t.Fatalf("Lock while held: err = %v, want ErrLocked", err)
	}
	var le checkpoint.Lease
	deadline := time.Now().Add(10 * time.Second)
	for le == nil {
		le, err = b.Lock(ctx, "orders", "reset", time.Minute)
		if err != nil && !errors.Is(err, checkpoint.ErrLocked) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("lock not free %s after its ttl of %s", 10*time.Second, ttl)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer le.Release(ctx)
	if err := dead.Refresh(ctx); !errors.Is(err, checkpoint.ErrLockLost) {
		t.Fatalf("Refresh of an expired lease: err = %v, want ErrLockLost", err)
	}
	// The expired lease must not release the new holder's lock.
	if err := dead.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Lock(ctx, "orders", "sync", ttl); !errors.Is(err, checkpoint.ErrLocked) {
		t.Fatalf("expired lease's Release freed the new holder's lock: %v", err)
	}
}

// A refreshed lease outlives its ttl.
func TestRefreshKeepsLeaseBeyondTTL(t *testing.T) {
	ctx := context.Background()
	u := testenv.Redis(t).URL(t)
	a := open(t, u)
	defer a.Close()
	const ttl = 300 * time.Millisecond
	le, err := a.Lock(ctx, "p", "sync", ttl)
	if err != nil {
		t.Fatal(err)
	}
	for range 6 {
		time.Sleep(ttl / 3)
		if err := le.Refresh(ctx); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
	}
	if _, err := a.Lock(ctx, "p", "reset", ttl); !errors.Is(err, checkpoint.ErrLocked) {
		t.Fatalf("refreshed lease lost its lock: %v", err)
	}
	le.Release(ctx)
}

// Seqs above 2^53 must compare exactly (Lua numbers are doubles).
func TestSaveComparesLargeSeqsExactly(t *testing.T) {
	ctx := context.Background()
	s := open(t, testenv.Redis(t).URL(t))
	defer s.Close()
	const big = uint64(1)<<60 + 1
	if err := s.Save(ctx, checkpoint.Checkpoint{Pipeline: "p", Seq: big}); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, checkpoint.Checkpoint{Pipeline: "p", Seq: big - 1}); !errors.Is(err, checkpoint.ErrStale) {
		t.Fatalf("Save of Seq %d over %d: err = %v, want ErrStale", big-1, big, err)
	}
	if err := s.Save(ctx, checkpoint.Checkpoint{Pipeline: "p", Seq: 999}); !errors.Is(err, checkpoint.ErrStale) {
		t.Fatalf("Save of a shorter Seq: err = %v, want ErrStale", err)
	}
}

func TestOpenByURL(t *testing.T) {
	ctx := context.Background()
	u := testenv.Redis(t).URL(t)
	s, err := checkpoint.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	l, err := checkpoint.OpenLocker(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}
