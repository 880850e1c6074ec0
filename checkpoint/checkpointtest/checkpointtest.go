// Package checkpointtest is the contract suite every checkpoint.Store and
// checkpoint.Locker implementation passes.
package checkpointtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/understudy/understudy/checkpoint"
)

// Option adjusts Run.
type Option func(*suite)

// WithReopen declares the store persistent: reopen returns a store over the same
// data as s, which the suite has closed. Without it there is no durability test.
func WithReopen(reopen func(t *testing.T, s checkpoint.Store) checkpoint.Store) Option {
	return func(su *suite) { su.reopen = reopen }
}

type suite struct {
	open   func(t *testing.T) checkpoint.Store
	reopen func(t *testing.T, s checkpoint.Store) checkpoint.Store
}

// Run runs the Store contract on stores from open, which returns a new, empty store
// for each subtest (the suite closes it).
func Run(t *testing.T, open func(t *testing.T) checkpoint.Store, opts ...Option) {
	su := &suite{open: open}
	for _, o := range opts {
		o(su)
	}
	tests := []struct {
		name string
		f    func(t *testing.T, s checkpoint.Store)
	}{
		{"LoadMissingIsNotFound", testLoadMissing},
		{"SaveLoadRoundTrip", testRoundTrip},
		{"LowerSeqIsStale", testLowerSeqIsStale},
		{"SameSeqOverwrites", testSameSeqOverwrites},
		{"Delete", testDelete},
		{"PipelinesAreIsolated", testIsolated},
		{"ConcurrentSavesNeverMoveBackwards", testConcurrent},
	}
	if su.reopen != nil {
		tests = append(tests, struct {
			name string
			f    func(t *testing.T, s checkpoint.Store)
		}{"DurableAcrossReopen", su.testDurable})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.f(t, s)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// full is a checkpoint with every field set, times at a precision JSON keeps.
func full(pipeline string, seq uint64) checkpoint.Checkpoint {
	return checkpoint.Checkpoint{
		Pipeline: pipeline,
		Seq:      seq,
		Position: []byte{0, 1, 2, 0xff, 0xfe, byte(seq)},
		Load: &checkpoint.LoadProgress{
			Done:   map[string][]string{"public.users": {"0", "1"}, "public.orders": {"7"}},
			Tables: map[string]int{"public.users": 4, "public.orders": 9},
			Rows:   12345,
		},
		SourceTime: time.Date(2026, 3, 4, 5, 6, 7, 891234000, time.UTC),
		SavedAt:    time.Date(2026, 3, 4, 5, 6, 9, 123456789, time.UTC),
	}
}

func mustLoad(t *testing.T, s checkpoint.Store, pipeline string) checkpoint.Checkpoint {
	t.Helper()
	cp, err := s.Load(ctx(t), pipeline)
	if err != nil {
		t.Fatalf("Load(%q): %v", pipeline, err)
	}
	return cp
}

func mustSave(t *testing.T, s checkpoint.Store, cp checkpoint.Checkpoint) {
	t.Helper()
	if err := s.Save(ctx(t), cp); err != nil {
		t.Fatalf("Save(%q, seq %d): %v", cp.Pipeline, cp.Seq, err)
	}
}

// equal compares checkpoints, times by instant (a store may return another
// location or drop the monotonic reading).
func equal(t *testing.T, got, want checkpoint.Checkpoint) {
	t.Helper()
	if !got.SourceTime.Equal(want.SourceTime) || !got.SavedAt.Equal(want.SavedAt) {
		t.Errorf("times = %v / %v, want %v / %v", got.SourceTime, got.SavedAt, want.SourceTime, want.SavedAt)
	}
	got.SourceTime, got.SavedAt = want.SourceTime, want.SavedAt
	if !bytes.Equal(got.Position, want.Position) {
		t.Errorf("Position = %x, want %x", got.Position, want.Position)
	}
	got.Position = want.Position
	if !reflect.DeepEqual(got, want) {
		t.Errorf("checkpoint = %+v (load %+v), want %+v (load %+v)", got, got.Load, want, want.Load)
	}
}

func testLoadMissing(t *testing.T, s checkpoint.Store) {
	_, err := s.Load(ctx(t), "never-saved")
	if !errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("Load of a missing pipeline: err = %v, want ErrNotFound", err)
	}
}

func testRoundTrip(t *testing.T, s checkpoint.Store) {
	want := full("orders", 3)
	mustSave(t, s, want)
	equal(t, mustLoad(t, s, "orders"), want)

	// Load finished: the next checkpoint has no LoadProgress and a zero SourceTime.
	done := checkpoint.Checkpoint{Pipeline: "orders", Seq: 4, Position: []byte("lsn:0/16B3748"), SavedAt: want.SavedAt}
	mustSave(t, s, done)
	got := mustLoad(t, s, "orders")
	if got.Load != nil {
		t.Errorf("Load = %+v after saving a checkpoint without one", got.Load)
	}
	if !got.SourceTime.IsZero() {
		t.Errorf("SourceTime = %v, want zero", got.SourceTime)
	}
	equal(t, got, done)
}

func testLowerSeqIsStale(t *testing.T, s checkpoint.Store) {
	want := full("p", 10)
	mustSave(t, s, want)
	lower := full("p", 9)
	lower.Position = []byte("older")
	if err := s.Save(ctx(t), lower); !errors.Is(err, checkpoint.ErrStale) {
		t.Fatalf("Save with a lower Seq: err = %v, want ErrStale", err)
	}
	equal(t, mustLoad(t, s, "p"), want)
}

func testSameSeqOverwrites(t *testing.T, s checkpoint.Store) {
	mustSave(t, s, full("p", 5))
	retry := full("p", 5)
	retry.Position = []byte("retried")
	mustSave(t, s, retry)
	equal(t, mustLoad(t, s, "p"), retry)
}

func testDelete(t *testing.T, s checkpoint.Store) {
	mustSave(t, s, full("p", 7))
	if err := s.Delete(ctx(t), "p"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Load(ctx(t), "p"); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("Load after Delete: err = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx(t), "p"); err != nil {
		t.Fatalf("Delete of a missing checkpoint: %v", err)
	}
	// After a reset the pipeline starts over at a low Seq.
	mustSave(t, s, full("p", 1))
	equal(t, mustLoad(t, s, "p"), full("p", 1))
}

func testIsolated(t *testing.T, s checkpoint.Store) {
	a, b := full("a", 100), full("b", 1)
	b.Position = []byte("b's")
	mustSave(t, s, a)
	mustSave(t, s, b) // a lower Seq than a's: other pipeline, so not stale
	equal(t, mustLoad(t, s, "a"), a)
	equal(t, mustLoad(t, s, "b"), b)
	if err := s.Delete(ctx(t), "a"); err != nil {
		t.Fatal(err)
	}
	equal(t, mustLoad(t, s, "b"), b)
}

// testConcurrent has writers race with interleaved Seqs, as two processes that
// both believe they own a pipeline would; a reader checks Seq never goes down.
func testConcurrent(t *testing.T, s checkpoint.Store) {
	const writers, perWriter = 4, 25
	c := ctx(t)
	var wg sync.WaitGroup
	errc := make(chan error, writers+1)
	stop := make(chan struct{})
	var readerWG sync.WaitGroup
	readerWG.Add(1)
	go func() {
		defer readerWG.Done()
		var last uint64
		for {
			select {
			case <-stop:
				return
			default:
			}
			cp, err := s.Load(c, "race")
			if errors.Is(err, checkpoint.ErrNotFound) {
				continue
			}
			if err != nil {
				errc <- err
				return
			}
			if cp.Seq < last {
				errc <- fmt.Errorf("Seq went backwards: %d after %d", cp.Seq, last)
				return
			}
			if want := fmt.Sprint(cp.Seq); string(cp.Position) != want {
				errc <- fmt.Errorf("Seq %d stored with Position %q: torn write", cp.Seq, cp.Position)
				return
			}
			last = cp.Seq
		}
	}()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				seq := uint64(i*writers + w + 1)
				err := s.Save(c, checkpoint.Checkpoint{Pipeline: "race", Seq: seq, Position: []byte(fmt.Sprint(seq)), SavedAt: time.Now()})
				if err != nil && !errors.Is(err, checkpoint.ErrStale) {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readerWG.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if got := mustLoad(t, s, "race"); got.Seq != writers*perWriter {
		t.Fatalf("stored Seq = %d after the race, want the highest, %d", got.Seq, writers*perWriter)
	}
}

func (su *suite) testDurable(t *testing.T, s checkpoint.Store) {
	want := full("durable", 42)
	mustSave(t, s, want)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s2 := su.reopen(t, s)
	defer s2.Close()
	equal(t, mustLoad(t, s2, "durable"), want)
	if err := s2.Save(ctx(t), full("durable", 41)); !errors.Is(err, checkpoint.ErrStale) {
		t.Fatalf("Save with a lower Seq after reopen: err = %v, want ErrStale", err)
	}
}

// RunLocker runs the Locker contract. open returns two Lockers over one fresh lock
// table (same directory, same Redis database), standing for two processes; the
// suite closes them.
func RunLocker(t *testing.T, open func(t *testing.T) (checkpoint.Locker, checkpoint.Locker)) {
	tests := []struct {
		name string
		f    func(t *testing.T, a, b checkpoint.Locker)
	}{
		{"SecondLockIsLockedUntilRelease", testLockRelease},
		{"PipelinesLockIndependently", testLockIndependent},
		{"RefreshKeepsTheLease", testRefresh},
		{"ReleaseTwiceIsHarmless", testReleaseTwice},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := open(t)
			t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
			tc.f(t, a, b)
		})
	}
}

func mustLock(t *testing.T, l checkpoint.Locker, pipeline, owner string) checkpoint.Lease {
	t.Helper()
	le, err := l.Lock(ctx(t), pipeline, owner, time.Minute)
	if err != nil {
		t.Fatalf("Lock(%q) for %s: %v", pipeline, owner, err)
	}
	return le
}

func wantLocked(t *testing.T, l checkpoint.Locker, pipeline, holder string) {
	t.Helper()
	_, err := l.Lock(ctx(t), pipeline, "reset", time.Minute)
	if !errors.Is(err, checkpoint.ErrLocked) {
		t.Fatalf("Lock(%q) while held: err = %v, want ErrLocked", pipeline, err)
	}
	if !strings.Contains(err.Error(), holder) {
		t.Fatalf("ErrLocked %q does not name the holder %q", err, holder)
	}
	var le *checkpoint.LockedError
	if !errors.As(err, &le) || le.Holder != holder || le.Pipeline != pipeline {
		t.Fatalf("err = %#v, want *LockedError{Pipeline: %q, Holder: %q}", err, pipeline, holder)
	}
}

func testLockRelease(t *testing.T, a, b checkpoint.Locker) {
	le := mustLock(t, a, "orders", "sync pid 1")
	wantLocked(t, b, "orders", "sync pid 1")
	wantLocked(t, a, "orders", "sync pid 1") // even the same Locker: a lease is exclusive
	if err := le.Release(ctx(t)); err != nil {
		t.Fatalf("Release: %v", err)
	}
	le2 := mustLock(t, b, "orders", "reset pid 2")
	defer le2.Release(ctx(t))
	wantLocked(t, a, "orders", "reset pid 2")
}

func testLockIndependent(t *testing.T, a, b checkpoint.Locker) {
	la := mustLock(t, a, "orders", "sync orders")
	defer la.Release(ctx(t))
	lb := mustLock(t, b, "users", "sync users")
	defer lb.Release(ctx(t))
	wantLocked(t, b, "orders", "sync orders")
	wantLocked(t, a, "users", "sync users")
}

func testRefresh(t *testing.T, a, b checkpoint.Locker) {
	le := mustLock(t, a, "p", "sync")
	for range 3 {
		if err := le.Refresh(ctx(t)); err != nil {
			t.Fatalf("Refresh of a held lease: %v", err)
		}
	}
	wantLocked(t, b, "p", "sync")
	if err := le.Release(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

func testReleaseTwice(t *testing.T, a, b checkpoint.Locker) {
	le := mustLock(t, a, "p", "first")
	if err := le.Release(ctx(t)); err != nil {
		t.Fatal(err)
	}
	le2 := mustLock(t, b, "p", "second")
	defer le2.Release(ctx(t))
	// A stale lease releasing again must not free the new holder's lock.
	if err := le.Release(ctx(t)); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	wantLocked(t, a, "p", "second")
}
