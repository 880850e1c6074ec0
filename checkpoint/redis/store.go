// Package redis is the checkpoint store and pipeline lock in Redis:
// "redis://host:port/db" or "rediss://user:password@host:port/db".
//
// A checkpoint is the hash "us:cp:<pipeline>" {seq, cp}; Save compares Seq and
// writes in one Lua script, so it is atomic against every other writer. Save is as
// durable as the server's persistence settings make it: run the checkpoint Redis
// with appendonly yes (appendfsync everysec or always).
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/understudy/understudy/checkpoint"
)

func init() {
	for _, scheme := range []string{"redis", "rediss"} {
		checkpoint.Register(scheme, func(ctx context.Context, u *url.URL) (checkpoint.Store, error) {
			return Open(ctx, u.String())
		})
		checkpoint.RegisterLocker(scheme, func(ctx context.Context, u *url.URL) (checkpoint.Locker, error) {
			return Open(ctx, u.String())
		})
	}
}

var (
	_ checkpoint.Store  = (*Store)(nil)
	_ checkpoint.Locker = (*Store)(nil)
)

const (
	checkpointPrefix = "us:cp:"
	lockPrefix       = "us:lock:"
)

// Store is a checkpoint store and Locker over one Redis client.
type Store struct {
	url    string
	client *goredis.Client
}

// Open connects to the Redis at rawURL and checks it answers.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	opts, err := goredis.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	c := goredis.NewClient(opts)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis %s: %w", opts.Addr, err)
	}
	return &Store{url: rawURL, client: c}, nil
}

// URL returns the URL the store was opened with.
func (s *Store) URL() string { return s.url }

// Load returns the pipeline's checkpoint, or checkpoint.ErrNotFound.
func (s *Store) Load(ctx context.Context, pipeline string) (checkpoint.Checkpoint, error) {
	var cp checkpoint.Checkpoint
	v, err := s.client.HGet(ctx, checkpointPrefix+pipeline, "cp").Bytes()
	if errors.Is(err, goredis.Nil) {
		return cp, checkpoint.ErrNotFound
	}
	if err != nil {
		return cp, fmt.Errorf("redis checkpoint %q: %w", pipeline, err)
	}
	if err := json.Unmarshal(v, &cp); err != nil {
		return cp, fmt.Errorf("redis checkpoint %q is corrupt: %w", pipeline, err)
	}
	return cp, nil
}

// saveScript writes ARGV[2] under seq ARGV[1] unless the stored seq is higher.
// Seqs are compared as decimal strings (longer is larger, then bytewise) because
// Lua numbers are doubles and would round a uint64.
var saveScript = goredis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'seq')
local new = ARGV[1]
if cur and (#cur > #new or (#cur == #new and cur > new)) then
	return 0
end
redis.call('HSET', KEYS[1], 'seq', new, 'cp', ARGV[2])
return 1
`)

// Save stores cp, or returns checkpoint.ErrStale when the stored Seq is higher.
func (s *Store) Save(ctx context.Context, cp checkpoint.Checkpoint) error {
	v, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	ok, err := saveScript.Run(ctx, s.client, []string{checkpointPrefix + cp.Pipeline},
		strconv.FormatUint(cp.Seq, 10), v).Int()
	if err != nil {
		return fmt.Errorf("redis checkpoint %q: save: %w", cp.Pipeline, err)
	}
	if ok == 0 {
		return checkpoint.ErrStale
	}
	return nil
}

// Delete removes the pipeline's checkpoint.
func (s *Store) Delete(ctx context.Context, pipeline string) error {
	if err := s.client.Del(ctx, checkpointPrefix+pipeline).Err(); err != nil {
		return fmt.Errorf("redis checkpoint %q: delete: %w", pipeline, err)
	}
	return nil
}

// Close closes the client. Leases still held expire after their ttl.
func (s *Store) Close() error { return s.client.Close() }

// Lock takes "us:lock:<pipeline>" with SET NX PX. The value is "<token> <owner>":
// the random token makes Refresh and Release touch only this lease's lock, the
// owner is what a refused Lock reports.
func (s *Store) Lock(ctx context.Context, pipeline, owner string, ttl time.Duration) (checkpoint.Lease, error) {
	if ttl <= 0 {
		ttl = checkpoint.DefaultLockTTL
	}
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	key := lockPrefix + pipeline
	value := hex.EncodeToString(tok[:]) + " " + owner
	ok, err := s.client.SetNX(ctx, key, value, ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("redis lock %q: %w", pipeline, err)
	}
	if !ok {
		holder, err := s.client.Get(ctx, key).Result()
		if err != nil && !errors.Is(err, goredis.Nil) {
			return nil, fmt.Errorf("redis lock %q: %w", pipeline, err)
		}
		_, holder, _ = strings.Cut(holder, " ")
		return nil, &checkpoint.LockedError{Pipeline: pipeline, Holder: holder}
	}
	return &lease{client: s.client, pipeline: pipeline, key: key, value: value, ttl: ttl}, nil
}

type lease struct {
	client     *goredis.Client
	pipeline   string
	key, value string
	ttl        time.Duration
}

var refreshScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

var releaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// Refresh extends the lease by its ttl, or returns checkpoint.ErrLockLost when
// the key expired or belongs to another lease.
func (le *lease) Refresh(ctx context.Context) error {
	n, err := refreshScript.Run(ctx, le.client, []string{le.key}, le.value, le.ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("redis lock %q: refresh: %w", le.pipeline, err)
	}
	if n == 0 {
		return checkpoint.ErrLockLost
	}
	return nil
}

// Release deletes the lock if this lease still holds it.
func (le *lease) Release(ctx context.Context) error {
	if err := releaseScript.Run(ctx, le.client, []string{le.key}, le.value).Err(); err != nil {
		return fmt.Errorf("redis lock %q: release: %w", le.pipeline, err)
	}
	return nil
}
