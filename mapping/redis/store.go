// Package redis is a mapping store in Redis (7.0 or later, standalone or behind
// Sentinel; not Redis Cluster, since one batch touches keys in many slots). Any
// number of processes may share it: every get-or-create runs inside a Lua script,
// which Redis executes atomically, so the first writer wins everywhere.
//
// Keys (namespace and domain escaped so that neither contains ':'):
//
//	us:m:<scope>/<period>:<domain>:f:<hex key>    forward: key → replacement
//	us:m:<scope>/<period>:<domain>:r:<replacement> reverse: the claim, → hex key
//	us:m:<scope>/<period>:domains                 set of the namespace's domains
//	us:m:namespaces                               set of namespaces, for Forget
//
// The reverse key holds the replacement as is: it is a generated dummy value, not
// production data. A namespace with Expires gets PXAT on every key, so daily
// namespaces disappear by Redis TTL with no sweeper; Forget drops expired
// namespaces from us:m:namespaces as it meets them.
//
// Run the server with maxmemory-policy noeviction (the default) and persistence
// (AOF or RDB) for permanent mappings: a mapping that Redis evicts or loses is
// created anew, possibly with a different replacement, and the replica drifts
// from what it already holds.
//
// The URL takes go-redis's options as query parameters (dial_timeout, pool_size,
// …); a password in the URL never appears in errors.
//
// One Resolve is one round trip: the batch is cut into chunks of ChunkSize requests
// (one script call each, which bounds how long a script blocks the server) and the
// chunks are pipelined.
package redis

import (
	"context"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"

	goredis "github.com/redis/go-redis/v9"

	"github.com/understudy/understudy/mapping"
)

func init() {
	open := func(ctx context.Context, u *url.URL) (mapping.Store, error) {
		return Open(ctx, u.String())
	}
	mapping.Register("redis", open)
	mapping.Register("rediss", open)
}

var _ mapping.Store = (*Store)(nil)

// ChunkSize is how many requests one script call handles. A few thousand keep a
// call to a few milliseconds of server time, so other clients are not starved.
const ChunkSize = 2000

const (
	keyPrefix     = "us:m:"
	keyNamespaces = keyPrefix + "namespaces"
)

var (
	//go:embed resolve.lua
	resolveLua string
	//go:embed forget.lua
	forgetLua string

	resolveScript = goredis.NewScript(resolveLua)
	forgetScript  = goredis.NewScript(forgetLua)
)

// Store is a mapping store in one Redis database.
type Store struct {
	client *goredis.Client
	closed atomic.Bool
}

// Open connects to the Redis named by rawURL ("redis://[user:password@]host:port/db",
// "rediss://…" for TLS) and checks that it answers.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	opts, err := goredis.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	client := goredis.NewClient(opts)
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("redis %s: %w", opts.Addr, err)
	}
	return New(client), nil
}

// New returns a store over an existing client; Close closes the client.
func New(client *goredis.Client) *Store {
	return &Store{client: client}
}

// esc makes a namespace or domain safe between ':' separators.
func esc(s string) string {
	if !strings.ContainsAny(s, "%:") {
		return s
	}
	return strings.NewReplacer("%", "%25", ":", "%3A").Replace(s)
}

// nsID is the escaped namespace part of keys.
func nsID(scope mapping.Scope, period string) string {
	return esc(mapping.Namespace{Scope: scope, Period: period}.String())
}

// domainPrefix is "us:m:<ns>:<domain>:", the start of a domain's keys.
func domainPrefix(ns mapping.Namespace, domain string) string {
	return keyPrefix + nsID(ns.Scope, ns.Period) + ":" + esc(domain) + ":"
}

// Resolve implements mapping.Store in one pipelined round trip.
func (s *Store) Resolve(ctx context.Context, reqs []mapping.Request) ([]mapping.Resolution, error) {
	if s.closed.Load() {
		return nil, mapping.ErrClosed
	}
	out := make([]mapping.Resolution, len(reqs))
	err := s.run(ctx, len(reqs), func(pipe goredis.Pipeliner, lo, hi int) *goredis.Cmd {
		return resolveScript.EvalSha(ctx, pipe, nil, resolveArgs(reqs[lo:hi])...)
	}, func(cmd *goredis.Cmd, lo, hi int) error {
		vals, err := cmd.Slice()
		if err != nil {
			return err
		}
		if len(vals) != hi-lo {
			return fmt.Errorf("resolve script answered %d of %d requests", len(vals), hi-lo)
		}
		for i, v := range vals {
			existed := false
			if arr, ok := v.([]any); ok && len(arr) == 1 {
				v, existed = arr[0], true
			}
			if v == nil {
				continue
			}
			str, ok := v.(string)
			if !ok {
				return fmt.Errorf("resolve script answered %T", v)
			}
			out[lo+i] = mapping.Resolution{Value: str, OK: true, Existed: existed}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// resolveArgs encodes a chunk for resolve.lua: a table of domain prefixes with
// their expiry (each distinct (namespace, domain) once), then per request the
// prefix's index, the hex key, the candidate count and the candidates.
func resolveArgs(reqs []mapping.Request) []any {
	type space struct {
		ns     mapping.Namespace
		domain string
	}
	// First the spaces (a batch mostly stays in one) and the argument count, so
	// that the arguments are built in one slice of the right size.
	var (
		index  = make(map[space]int, 1)
		spaces []any
		ids    = make([]int, len(reqs))
		last   space
		lastI  int
		n      = 1
	)
	for i, r := range reqs {
		sp := space{mapping.Namespace{Scope: r.NS.Scope, Period: r.NS.Period}, r.Domain}
		if lastI == 0 || sp != last {
			var ok bool
			if lastI, ok = index[sp]; !ok {
				lastI = len(index) + 1 // Lua counts from 1
				index[sp] = lastI
				var expires int64
				if !r.NS.Expires.IsZero() {
					expires = r.NS.Expires.UnixMilli()
				}
				spaces = append(spaces, nsID(r.NS.Scope, r.NS.Period), esc(r.Domain), expires)
			}
			last = sp
		}
		ids[i] = lastI
		n += 3 + len(r.Candidates)
	}
	// Every hex key in one string: its substrings cost no allocation each.
	const hexLen = 2 * len(mapping.Key{})
	var kb strings.Builder
	kb.Grow(len(reqs) * hexLen)
	var h [hexLen]byte
	for _, r := range reqs {
		hex.Encode(h[:], r.Key[:])
		kb.Write(h[:])
	}
	keys := kb.String()
	args := make([]any, 0, n+len(spaces))
	args = append(args, len(index))
	args = append(args, spaces...)
	for i, r := range reqs {
		args = append(args, ids[i], keys[i*hexLen:(i+1)*hexLen], len(r.Candidates))
		for _, c := range r.Candidates {
			args = append(args, c)
		}
	}
	return args
}

// Lookup implements mapping.Store with pipelined MGETs. Redis has already dropped
// the keys of expired namespaces.
func (s *Store) Lookup(ctx context.Context, reqs []mapping.Request) ([]mapping.Resolution, error) {
	if s.closed.Load() {
		return nil, mapping.ErrClosed
	}
	out := make([]mapping.Resolution, len(reqs))
	err := s.run(ctx, len(reqs), func(pipe goredis.Pipeliner, lo, hi int) *goredis.Cmd {
		keys := make([]any, 0, 1+hi-lo)
		keys = append(keys, "MGET")
		for _, r := range reqs[lo:hi] {
			keys = append(keys, domainPrefix(r.NS, r.Domain)+"f:"+hex.EncodeToString(r.Key[:]))
		}
		return pipe.Do(ctx, keys...)
	}, func(cmd *goredis.Cmd, lo, hi int) error {
		vals, err := cmd.Slice()
		if err != nil {
			return err
		}
		for i, v := range vals {
			if str, ok := v.(string); ok {
				out[lo+i] = mapping.Resolution{Value: str, OK: true}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// run sends one command per chunk of n requests in a single pipeline and reads the
// answers. When the server has lost the scripts (restart, SCRIPT FLUSH) it loads
// them and runs the whole batch again, which is safe because get-or-create is
// idempotent: a second run finds what the first created.
func (s *Store) run(ctx context.Context, n int,
	send func(pipe goredis.Pipeliner, lo, hi int) *goredis.Cmd,
	read func(cmd *goredis.Cmd, lo, hi int) error) error {
	if n == 0 {
		return nil
	}
	for attempt := 0; ; attempt++ {
		pipe := s.client.Pipeline()
		var cmds []*goredis.Cmd
		for lo := 0; lo < n; lo += ChunkSize {
			cmds = append(cmds, send(pipe, lo, min(lo+ChunkSize, n)))
		}
		_, err := pipe.Exec(ctx)
		if err != nil && attempt == 0 && goredis.HasErrorPrefix(err, "NOSCRIPT") {
			if err := s.loadScripts(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return s.wrap(err)
		}
		for i, cmd := range cmds {
			lo := i * ChunkSize
			if err := read(cmd, lo, min(lo+ChunkSize, n)); err != nil {
				return s.wrap(err)
			}
		}
		return nil
	}
}

// loadScripts loads the Lua scripts into the server's script cache.
func (s *Store) loadScripts(ctx context.Context) error {
	for _, sc := range []*goredis.Script{resolveScript, forgetScript} {
		if err := sc.Load(ctx, s.client).Err(); err != nil {
			return s.wrap(err)
		}
	}
	return nil
}

// Forget implements mapping.Store: one script walks every live namespace.
func (s *Store) Forget(ctx context.Context, domain string, key mapping.Key) (int, error) {
	if s.closed.Load() {
		return 0, mapping.ErrClosed
	}
	n, err := forgetScript.Run(ctx, s.client, nil, esc(domain), hex.EncodeToString(key[:])).Int()
	if err != nil {
		return 0, s.wrap(err)
	}
	return n, nil
}

// Purge implements mapping.Store by SCAN and UNLINK. It is not atomic with
// concurrent Resolve calls: purge while no pipeline maps into that scope
// (`understudy reset` holds the pipeline lock).
func (s *Store) Purge(ctx context.Context, scope mapping.Scope, period string) error {
	if s.closed.Load() {
		return mapping.ErrClosed
	}
	var pattern string
	var ids []string
	if period != "" {
		id := nsID(scope, period)
		pattern = keyPrefix + globEscape(id) + ":*"
		ids = []string{id}
	} else {
		prefix := esc(string(scope)) + "/"
		pattern = keyPrefix + globEscape(prefix) + "*"
		all, err := s.client.SMembers(ctx, keyNamespaces).Result()
		if err != nil {
			return s.wrap(err)
		}
		for _, id := range all {
			if strings.HasPrefix(id, prefix) {
				ids = append(ids, id)
			}
		}
	}
	iter := s.client.Scan(ctx, 0, pattern, 1000).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.client.Unlink(ctx, batch...).Err()
		batch = batch[:0]
		return err
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := flush(); err != nil {
				return s.wrap(err)
			}
		}
	}
	if err := iter.Err(); err != nil {
		return s.wrap(err)
	}
	if err := flush(); err != nil {
		return s.wrap(err)
	}
	if len(ids) > 0 {
		members := make([]any, len(ids))
		for i, id := range ids {
			members[i] = id
		}
		if err := s.client.SRem(ctx, keyNamespaces, members...).Err(); err != nil {
			return s.wrap(err)
		}
	}
	return nil
}

// globEscape escapes SCAN pattern metacharacters.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Close implements mapping.Store: it closes the client.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.client.Close()
}

// wrap turns a use racing Close into ErrClosed.
func (s *Store) wrap(err error) error {
	if errors.Is(err, goredis.ErrClosed) {
		return mapping.ErrClosed
	}
	return fmt.Errorf("redis mapping store: %w", err)
}
