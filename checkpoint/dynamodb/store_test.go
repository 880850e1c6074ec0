package dynamodb_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/understudy/understudy/checkpoint"
	"github.com/understudy/understudy/checkpoint/checkpointtest"
	"github.com/understudy/understudy/checkpoint/dynamodb"
	"github.com/understudy/understudy/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var tables atomic.Int64

func freshURL(t *testing.T) string {
	return fmt.Sprintf("dynamodb://us_cp_%d_%d?endpoint=%s", time.Now().UnixNano()%1e9, tables.Add(1), testenv.DynamoDB(t).Endpoint)
}

func open(t *testing.T, url string) *dynamodb.Store {
	t.Helper()
	s, err := dynamodb.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreContract(t *testing.T) {
	checkpointtest.Run(t,
		func(t *testing.T) checkpoint.Store { return open(t, freshURL(t)) },
		checkpointtest.WithReopen(func(t *testing.T, s checkpoint.Store) checkpoint.Store {
			return open(t, s.(*dynamodb.Store).URL())
		}))
}

func TestLockerContract(t *testing.T) {
	checkpointtest.RunLocker(t, func(t *testing.T) (checkpoint.Locker, checkpoint.Locker) {
		u := freshURL(t)
		return open(t, u), open(t, u)
	})
}

// A sync that dies without releasing its lock blocks reset only for the ttl.
func TestLeaseExpiresWithoutRefresh(t *testing.T) {
	ctx := context.Background()
	u := freshURL(t)
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
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for le == nil {
		le, err = b.Lock(ctx, "orders", "reset", time.Minute)
		if err != nil && !errors.Is(err, checkpoint.ErrLocked) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("lock not free %s after its ttl of %s", 10*time.Second, ttl)
		}
		if le == nil {
			<-tick.C
		}
	}
	defer le.Release(ctx)
	if err := dead.Refresh(ctx); !errors.Is(err, checkpoint.ErrLockLost) {
		t.Fatalf("Refresh of an expired lease: err = %v, want ErrLockLost", err)
	}
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
	a := open(t, freshURL(t))
	defer a.Close()
	const ttl = 300 * time.Millisecond
	le, err := a.Lock(ctx, "p", "sync", ttl)
	if err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	for range 6 {
		<-tick.C
		if err := le.Refresh(ctx); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
	}
	if _, err := a.Lock(ctx, "p", "reset", ttl); !errors.Is(err, checkpoint.ErrLocked) {
		t.Fatalf("refreshed lease lost its lock: %v", err)
	}
	le.Release(ctx)
}

// Seqs above 2^53 compare exactly.
func TestSaveComparesLargeSeqsExactly(t *testing.T) {
	ctx := context.Background()
	s := open(t, freshURL(t))
	defer s.Close()
	const big = uint64(1)<<63 + 1
	if err := s.Save(ctx, checkpoint.Checkpoint{Pipeline: "p", Seq: big}); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, checkpoint.Checkpoint{Pipeline: "p", Seq: big - 1}); !errors.Is(err, checkpoint.ErrStale) {
		t.Fatalf("Save of Seq %d over %d: err = %v, want ErrStale", big-1, big, err)
	}
	if err := s.Save(ctx, checkpoint.Checkpoint{Pipeline: "p", Seq: 999}); !errors.Is(err, checkpoint.ErrStale) {
		t.Fatalf("Save of a shorter Seq: err = %v, want ErrStale", err)
	}
	if err := s.Save(ctx, checkpoint.Checkpoint{Pipeline: "p", Seq: ^uint64(0)}); err != nil {
		t.Fatalf("Save of the largest Seq: %v", err)
	}
}

// The checkpoint store can share the mapping store's table: keys do not overlap.
func TestOpenByURL(t *testing.T) {
	ctx := context.Background()
	u := freshURL(t)
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
