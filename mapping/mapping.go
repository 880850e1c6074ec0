// Package mapping owns consistent replacement's memory: the Store contract that
// persists "real value → replacement" per domain and namespace, the keyed hashing
// that keeps production plaintext out of every store, scopes, and the in-process
// cache in front of a store.
//
// Keys: a stored key is HMAC-SHA256(secret, domain, canonical value); the stored
// value is the replacement. A store never sees the production value.
//
// Injectivity: a replacement is claimed per (namespace, domain) on a reverse key,
// atomically with the forward entry, so two real values never share a replacement.
//
// Callers use a Mapper: it answers values it has seen from an in-process cache
// (plaintext lives only there), and sends the rest to the Store in one batch,
// asking again with further generator candidates only for values whose first
// candidates were all taken.
//
// Stores, by URL (Open): "memory:" (mapping/memory: tests, single-process run
// scope), "file:<path>" (mapping/file: the default, an embedded Pebble directory, one process at
// a time), "redis://host:port/db" and "rediss://…" (mapping/redis: shared by any
// number of processes). Each backend passes mapping/mappingtest.
package mapping

import (
	"context"
	"errors"
	"time"
)

// Scope says how long a mapping lives.
type Scope string

const (
	// Permanent mappings never expire: Johnson maps to Phillips forever.
	Permanent Scope = "permanent"
	// Daily mappings live in a namespace per UTC day and expire after it.
	Daily Scope = "daily"
	// Run mappings live in a namespace per run or input file.
	Run Scope = "run"
)

// Namespace is one mapping space. Mappings in different namespaces are unrelated.
type Namespace struct {
	Scope Scope
	// Period is "" for Permanent, the UTC day "2006-01-02" for Daily, the run or
	// input-file id for Run.
	Period string
	// Expires is when a store may drop the namespace; zero means never.
	Expires time.Time
}

// Key is the keyed hash of a production value: HMAC-SHA256(secret, domain, value).
type Key [32]byte

// Request asks a store for the replacement of one value.
type Request struct {
	NS     Namespace
	Domain string
	Key    Key
	// Candidates are proposed replacements, in order of preference. They are
	// deterministic for (secret, namespace, domain, value), so concurrent resolvers
	// propose the same ones.
	Candidates []string
}

// Resolution answers one Request.
type Resolution struct {
	Value string
	// OK is false when no mapping existed and every candidate was already claimed
	// by another value; the caller asks again with further candidates.
	OK bool
	// Existed says the mapping was in the store before this call, for the
	// Mapper's cache: a value mapped before recurs, so it is cached on first
	// sight. Every store reports it (mappingtest checks); a mapping created
	// concurrently by another process may read either way.
	Existed bool
}

// ErrClosed is returned by a store used after Close.
var ErrClosed = errors.New("mapping store closed")

// Store persists mappings. Implementations: memory, embedded file (Pebble), Redis,
// DynamoDB; every one passes mappingtest.Run. Open one by URL with Open.
//
// Expiry: a namespace with Expires is absent to every method once Expires has
// passed, and a Resolve into it starts it afresh. Give every request of one
// namespace the same Expires (DailyNamespace does); stores keep at least the
// expiry of the request that created the namespace.
type Store interface {
	// Resolve answers every request in one round trip where the backend allows.
	// For each request: if (NS, Domain, Key) has a mapping, return it; otherwise claim
	// the first candidate not yet claimed in (NS, Domain), store Key → candidate, and
	// return it. The check-claim-store sequence is atomic across goroutines and
	// processes: of two resolvers racing on one Key, both get the first writer's
	// value. Results are in request order; requests are applied in order, so within
	// a batch an earlier request claims first, and a Key repeated in a batch gets one
	// mapping. A request without candidates only looks. OK is false only when no
	// mapping existed and every candidate was claimed.
	Resolve(ctx context.Context, reqs []Request) ([]Resolution, error)

	// Lookup returns existing mappings without creating or claiming anything (OK
	// false when absent). Candidates are ignored.
	Lookup(ctx context.Context, reqs []Request) ([]Resolution, error)

	// Forget erases the mapping of key in domain in every live namespace, and
	// releases its claimed replacement (erasure of one person's mapping). It returns
	// how many mappings it removed (0 when there were none).
	Forget(ctx context.Context, domain string, key Key) (int, error)

	// Purge drops every mapping of a scope; with period set, only that namespace.
	// Purge need not be atomic with concurrent Resolve calls: run it while no
	// pipeline maps into the scope (reset holds the pipeline lock).
	Purge(ctx context.Context, scope Scope, period string) error

	// Close releases the store; later calls return ErrClosed. Closing twice is
	// harmless.
	Close() error
}

// Generator proposes replacements for a value. Candidate must be deterministic in
// (value, seed, attempt) and should give distinct outputs for distinct attempts, so
// that a clash on attempt n is resolved by attempt n+1.
type Generator interface {
	Candidate(value string, seed []byte, attempt int) string
}

// Item is one value to replace, for Mapper.Resolve.
type Item struct {
	NS     Namespace
	Domain string
	Value  string    // canonical value (cdc.Canonical)
	Gen    Generator // needed only when the value is not cached
	Out    string    // set by Resolve
}
