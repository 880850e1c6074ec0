// Package memory is a checkpoint store and pipeline Locker in process memory, for
// tests. Its checkpoints die with the process.
package memory

import (
	"context"
	"maps"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/understudy/understudy/checkpoint"
)

func init() {
	checkpoint.Register("memory", func(_ context.Context, _ *url.URL) (checkpoint.Store, error) {
		return New(), nil
	})
	// Every "memory:" Locker shares one lock table, so two of them in one process
	// exclude each other like two processes' lockers would.
	checkpoint.RegisterLocker("memory", func(_ context.Context, _ *url.URL) (checkpoint.Locker, error) {
		return sharedLocks, nil
	})
}

var (
	_ checkpoint.Store  = (*Store)(nil)
	_ checkpoint.Locker = (*Locker)(nil)
)

// Store keeps checkpoints in a map. It copies on Save and Load so callers can
// never change a stored checkpoint through a shared slice or map.
type Store struct {
	mu  sync.Mutex
	cps map[string]checkpoint.Checkpoint
}

// New returns an empty store.
func New() *Store { return &Store{cps: make(map[string]checkpoint.Checkpoint)} }

// Load returns the pipeline's checkpoint, or checkpoint.ErrNotFound.
func (s *Store) Load(_ context.Context, pipeline string) (checkpoint.Checkpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp, ok := s.cps[pipeline]
	if !ok {
		return checkpoint.Checkpoint{}, checkpoint.ErrNotFound
	}
	return clone(cp), nil
}

// Save stores cp, or returns checkpoint.ErrStale when the stored Seq is higher.
func (s *Store) Save(_ context.Context, cp checkpoint.Checkpoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.cps[cp.Pipeline]; ok && cur.Seq > cp.Seq {
		return checkpoint.ErrStale
	}
	s.cps[cp.Pipeline] = clone(cp)
	return nil
}

// Delete removes the pipeline's checkpoint.
func (s *Store) Delete(_ context.Context, pipeline string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cps, pipeline)
	return nil
}

// Close does nothing; the store stays usable (there is nothing to release).
func (s *Store) Close() error { return nil }

func clone(cp checkpoint.Checkpoint) checkpoint.Checkpoint {
	cp.Position = slices.Clone(cp.Position)
	if cp.Load != nil {
		l := *cp.Load
		l.Done = maps.Clone(l.Done)
		for k, v := range l.Done {
			l.Done[k] = slices.Clone(v)
		}
		l.Tables = maps.Clone(l.Tables)
		cp.Load = &l
	}
	return cp
}

var sharedLocks = NewLocker()

// Locker is an in-process pipeline lock table with ttl expiry.
type Locker struct {
	mu    sync.Mutex
	held  map[string]*lease
	now   func() time.Time
	token uint64
}

// NewLocker returns a lock table of its own.
func NewLocker() *Locker {
	return &Locker{held: make(map[string]*lease), now: time.Now}
}

type lease struct {
	l        *Locker
	pipeline string
	owner    string
	token    uint64
	ttl      time.Duration
	expires  time.Time
}

// Lock takes the pipeline's lock, or returns a *checkpoint.LockedError.
func (l *Locker) Lock(_ context.Context, pipeline, owner string, ttl time.Duration) (checkpoint.Lease, error) {
	if ttl <= 0 {
		ttl = checkpoint.DefaultLockTTL
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if cur, ok := l.held[pipeline]; ok && now.Before(cur.expires) {
		return nil, &checkpoint.LockedError{Pipeline: pipeline, Holder: cur.owner}
	}
	l.token++
	le := &lease{l: l, pipeline: pipeline, owner: owner, token: l.token, ttl: ttl, expires: now.Add(ttl)}
	l.held[pipeline] = le
	return le, nil
}

// Close does nothing: the lock table lives as long as the process.
func (l *Locker) Close() error { return nil }

// Refresh extends the lease, or returns checkpoint.ErrLockLost once it expired.
func (le *lease) Refresh(_ context.Context) error {
	l := le.l
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if cur := l.held[le.pipeline]; cur == nil || cur.token != le.token || !now.Before(cur.expires) {
		return checkpoint.ErrLockLost
	}
	le.expires = now.Add(le.ttl)
	return nil
}

// Release drops the lock if this lease still holds it.
func (le *lease) Release(_ context.Context) error {
	l := le.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur := l.held[le.pipeline]; cur != nil && cur.token == le.token {
		delete(l.held, le.pipeline)
	}
	return nil
}
