package checkpoint

import (
	"context"
	"fmt"
	"net/url"

	"github.com/understudy/understudy/internal/registry"
)

// Opener opens a store from its URL. Backends register one per URL scheme.
type Opener func(ctx context.Context, u *url.URL) (Store, error)

// LockerOpener opens a pipeline Locker from the checkpoint store's URL.
type LockerOpener func(ctx context.Context, u *url.URL) (Locker, error)

var (
	stores  = registry.New[Opener]("checkpoint store")
	lockers = registry.New[LockerOpener]("checkpoint store")
)

// Register makes a backend available to Open under scheme ("file", "redis", …).
// Backends call it from init(); registering a scheme twice panics.
func Register(scheme string, open func(ctx context.Context, u *url.URL) (Store, error)) {
	stores.Register(scheme, open)
}

// RegisterLocker makes a backend's pipeline lock available to OpenLocker under
// scheme. Backends call it from init(), next to Register.
func RegisterLocker(scheme string, open func(ctx context.Context, u *url.URL) (Locker, error)) {
	lockers.Register(scheme, open)
}

// Schemes returns the schemes registered with Register, sorted.
func Schemes() []string { return stores.Schemes() }

// Open opens the store named by rawURL: "file:<path>" (relative paths are
// relative to the working directory), "redis://host:port/db",
// "rediss://user:password@host:port/db", "memory:". The backend's package must be
// imported (cmd/understudy imports them all). Errors show the URL without its
// password.
func Open(ctx context.Context, rawURL string) (Store, error) {
	open, u, err := stores.Lookup(rawURL)
	if err != nil {
		return nil, err
	}
	s, err := open(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint store %s: %w", u.Redacted(), err)
	}
	return s, nil
}

// OpenLocker opens the pipeline lock that goes with the checkpoint store named by
// rawURL (same URL as Open). It does not open the store itself, so it works while
// another process holds an exclusive store such as the file one.
func OpenLocker(ctx context.Context, rawURL string) (Locker, error) {
	open, u, err := lockers.Lookup(rawURL)
	if err != nil {
		return nil, err
	}
	l, err := open(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("open pipeline lock of %s: %w", u.Redacted(), err)
	}
	return l, nil
}
