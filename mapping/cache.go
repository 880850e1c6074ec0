package mapping

import (
	"encoding/binary"
	"hash/maphash"
	"strings"
	"sync"

	"github.com/understudy/understudy/internal/gencache"
)

// cacheShards spreads the cache over independently locked shards so parallel
// workers rarely contend on one lock. A power of two, so a shard is a mask away.
const cacheShards = 64

// cacheKey identifies one mapping in process memory. It holds the production value
// in plaintext: the cache lives only in this process and is never persisted, which
// is what lets a warm hit skip the HMAC.
type cacheKey struct {
	scope  Scope
	period string
	domain string
	value  string
}

// cacheEntry is a cached replacement and when its namespace expires (Unix
// nanoseconds; 0 = never), so an entry cannot outlive its namespace.
type cacheEntry struct {
	out     string
	expires int64
}

// cache is a bounded, sharded map from value to replacement; each shard is a
// generational map (internal/gencache), so recently used entries survive.
type cache struct {
	seed   maphash.Seed
	shards [cacheShards]*cacheShard
}

type cacheShard = gencache.Map[cacheKey, cacheEntry]

// newCache returns a cache holding at most size entries (at least one per shard).
func newCache(size int) *cache {
	c := &cache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i] = gencache.New[cacheKey, cacheEntry](size / cacheShards / 2)
	}
	return c
}

// shardOf picks a shard by (domain, value) only, so that every namespace's entry of
// one value lives in one shard and forget scans a single shard.
func (c *cache) shardOf(domain, value string) *cacheShard {
	return c.shard(c.hash(domain, value))
}

// hash is the hash of (domain, value) that picks its shard.
func (c *cache) hash(domain, value string) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(domain)
	h.WriteByte(0)
	h.WriteString(value)
	return h.Sum64()
}

func (c *cache) shard(hash uint64) *cacheShard { return c.shards[hash&(cacheShards-1)] }

// cached returns the cached replacement of k in s, unless absent or expired at
// now.
func cached(s *cacheShard, k cacheKey, now int64) (string, bool) {
	e, ok := s.Get(k)
	if !ok || (e.expires != 0 && e.expires <= now) {
		return "", false
	}
	return e.out, true
}

// forget drops every namespace's entry of value in domain.
func (c *cache) forget(domain, value string) {
	c.shardOf(domain, value).DeleteFunc(func(k cacheKey) bool { return k.domain == domain && k.value == value })
}

// purge drops every entry of scope (of one period when period is set).
func (c *cache) purge(scope Scope, period string) {
	for _, s := range c.shards {
		s.DeleteFunc(func(k cacheKey) bool { return k.scope == scope && (period == "" || k.period == period) })
	}
}

// owned returns k with its value copied, for storing: the caller's string may point
// into a large row buffer that the cache should not keep alive.
func (k cacheKey) owned() cacheKey {
	k.value = strings.Clone(k.value)
	return k
}

// claimCache remembers candidates this process saw claimed, per namespace and
// domain, so that later values skip them instead of asking the store to claim
// them again: in a domain whose generator starts from a few thousand dictionary
// words, nearly every new value would otherwise spend a failed claim (a store
// write attempt) on a word taken long ago. It learns from store answers: the
// candidates proposed before the one a value got were claimed.
//
// Skipping changes no guarantee: the store still arbitrates every claim, and a
// value's mapping is still its forward entry. A claim released by Forget may be
// skipped by other processes until they restart, which only means a new value
// gets a later candidate (Mapper.Forget drops what this one saw in the domain). Two generations of at most claimCacheSize entries bound it.
//
// Entries are keyed by a 64-bit hash of (namespace, domain, candidate): a
// collision can only make a free candidate look claimed, which, like a
// released claim, costs nothing but the choice of a later candidate.
type claimCache struct {
	mu        sync.RWMutex
	seed      maphash.Seed
	cur, prev map[uint64]claimSpace
}

// claimSpace is the namespace and domain of a remembered claim, for purge.
type claimSpace struct {
	scope          Scope
	period, domain string
}

// space returns the hash of (namespace, domain) that key extends with a
// candidate.
func (c *claimCache) space(sp claimSpace) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	writeLPHash(&h, string(sp.scope))
	writeLPHash(&h, sp.period)
	writeLPHash(&h, sp.domain)
	return h.Sum64()
}

// key is the entry of cand in the space hashed as space.
func (c *claimCache) key(space uint64, cand string) uint64 {
	return maphash.String(c.seed, cand) ^ (space * 0x9E3779B97F4A7C15)
}

func writeLPHash(h *maphash.Hash, s string) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
	h.WriteString(s)
}

const claimCacheSize = 32_768

// has reports whether k was seen claimed. The caller holds mu, read-locked.
func (c *claimCache) has(k uint64) bool {
	if _, ok := c.cur[k]; ok {
		return true
	}
	_, ok := c.prev[k]
	return ok
}

// claim is one candidate seen claimed, for add.
type claim struct {
	key   uint64
	space claimSpace
}

// add records claims.
func (c *claimCache) add(claims []claim) {
	if len(claims) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range claims {
		if c.cur == nil || len(c.cur) >= claimCacheSize {
			c.prev, c.cur = c.cur, make(map[uint64]claimSpace, min(claimCacheSize, 1024))
		}
		c.cur[cl.key] = cl.space
	}
}

// purge forgets the claims of scope (of one period when period is set).
func (c *claimCache) purge(scope Scope, period string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range []map[uint64]claimSpace{c.cur, c.prev} {
		for k, sp := range m {
			if sp.scope == scope && (period == "" || sp.period == period) {
				delete(m, k)
			}
		}
	}
}

// forgetDomain forgets the claims of domain in every namespace.
func (c *claimCache) forgetDomain(domain string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range []map[uint64]claimSpace{c.cur, c.prev} {
		for k, sp := range m {
			if sp.domain == domain {
				delete(m, k)
			}
		}
	}
}

// doorkeeper decides which resolved values enter the cache: a value is admitted
// the second time the store resolves it, not the first (TinyLFU's doorkeeper).
// A bulk load resolves millions of values that never recur (an e-mail address per
// row); cached on first sight they filled the cache to its bound — hundreds of
// MB — and pushed out the values that do recur. Here a one-off value costs a bit
// or two of a Bloom filter, and a recurring one pays one extra store read before
// it is cached.
//
// The filter holds the hashes of values seen once. It is cleared after as many
// insertions as the cache has entries, when at most about 5% of unseen values
// read as seen (8 to 16 bits per insertion, 2 probes); a false "seen" only admits a one-off
// value, and a clear only costs recurring values one more read.
type doorkeeper struct {
	mu    sync.Mutex
	bits  []uint64
	mask  uint64 // bit index mask (len(bits)*64 - 1)
	n     int    // insertions since the last clear
	limit int
}

func newDoorkeeper(entries int) *doorkeeper {
	nbits := uint64(1024)
	for nbits < uint64(entries)*8 {
		nbits <<= 1
	}
	return &doorkeeper{bits: make([]uint64, nbits/64), mask: nbits - 1, limit: max(entries, 1)}
}

// admit reports whether the value of hash h was seen before (and so belongs in
// the cache); if not, it records it.
func (d *doorkeeper) admit(h uint64) bool {
	i, j := h&d.mask, (h>>32|h<<32)*0x9E3779B97F4A7C15&d.mask
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bits[i/64]&(1<<(i%64)) != 0 && d.bits[j/64]&(1<<(j%64)) != 0 {
		return true
	}
	if d.n >= d.limit {
		clear(d.bits)
		d.n = 0
	}
	d.bits[i/64] |= 1 << (i % 64)
	d.bits[j/64] |= 1 << (j % 64)
	d.n++
	return false
}
