package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrLocked is returned by Locker.Lock when another owner holds the pipeline. The
// error returned is a *LockedError naming the holder; test with errors.Is.
var ErrLocked = errors.New("pipeline is locked")

// ErrLockLost is returned by Lease.Refresh when the lease expired and the lock is
// no longer this lease's (it may already be someone else's). The holder must stop
// writing for the pipeline.
var ErrLockLost = errors.New("pipeline lock lost")

// LockedError says who holds a pipeline's lock.
type LockedError struct {
	Pipeline string
	// Holder is the owner string the holder passed to Lock ("" if unknown).
	Holder string
}

func (e *LockedError) Error() string {
	holder := e.Holder
	if holder == "" {
		holder = "an unknown owner"
	}
	return fmt.Sprintf("pipeline %q is locked by %s", e.Pipeline, holder)
}

// Unwrap makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Unwrap() error { return ErrLocked }

// Locker hands out one exclusive lock per pipeline, across processes: `sync` holds
// its pipeline's lock while it runs, and `reset` refuses while it cannot take it.
type Locker interface {
	// Lock takes the pipeline's lock for owner (a human-readable name such as
	// "sync pid 42 on host-a", reported to whoever finds the lock taken). It
	// returns a *LockedError (errors.Is ErrLocked) when another lease holds it,
	// without waiting. ttl bounds how long the lock outlives a holder that stops
	// calling Refresh (e.g. a killed process); stores whose lock dies with its
	// process may ignore it. ttl <= 0 means DefaultLockTTL.
	Lock(ctx context.Context, pipeline, owner string, ttl time.Duration) (Lease, error)

	// Close releases the Locker's resources. Leases not released are released
	// by their store's own means (process exit, ttl).
	Close() error
}

// DefaultLockTTL is the ttl Lock uses when given none. Holders should Refresh at
// a third of the ttl.
const DefaultLockTTL = 30 * time.Second

// Lease is one held pipeline lock.
type Lease interface {
	// Refresh extends the lease by its ttl. It returns ErrLockLost when the lease
	// expired in the meantime (the lock may belong to another owner now).
	Refresh(ctx context.Context) error

	// Release gives the lock up. Releasing a lost or released lease is no error.
	Release(ctx context.Context) error
}
