package mapping

import (
	"context"
	"fmt"
	"net/url"

	"github.com/understudy/understudy/internal/registry"
)

// Opener opens a store from its URL. Backends register one per URL scheme.
type Opener func(ctx context.Context, u *url.URL) (Store, error)

var stores = registry.New[Opener]("mapping store")

// Register makes a backend available to Open under scheme ("memory", "file",
// "redis", …). Backends call it from init(); registering a scheme twice panics.
func Register(scheme string, open func(ctx context.Context, u *url.URL) (Store, error)) {
	stores.Register(scheme, open)
}

// Schemes returns the registered schemes, sorted.
func Schemes() []string { return stores.Schemes() }

// Open opens the store named by rawURL: "memory:", "file:<path>" (relative paths
// are relative to the working directory), "redis://host:port/db",
// "rediss://user:password@host:port/db". The backend's package must be imported
// (cmd/understudy imports them all). Errors show the URL without its password.
func Open(ctx context.Context, rawURL string) (Store, error) {
	open, u, err := stores.Lookup(rawURL)
	if err != nil {
		return nil, err
	}
	s, err := open(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("open mapping store %s: %w", u.Redacted(), err)
	}
	return s, nil
}
