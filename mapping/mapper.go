package mapping

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for MapperOptions.
const (
	DefaultCacheSize       = 1_000_000
	DefaultFirstCandidates = 4
	DefaultMaxCandidates   = 2_000
)

// MapperOptions tunes a Mapper. Zero values take the defaults.
type MapperOptions struct {
	// CacheSize bounds the in-process cache, in entries (default 1,000,000:
	// about 200 bytes each with values of e-mail length, so up to ~200 MB). The
	// cache must hold the distinct values a stream cycles through: a change
	// stream over 200,000 rows with a distinct e-mail and surname each touches
	// 400,000 values, and with a cache of 250,000 nearly every one of them missed
	// (generational eviction, like LRU, keeps nothing of a cycle larger than
	// itself) and cost a store read. Values enter it on their second
	// resolution (see doorkeeper), so one-off values (e-mail addresses of a bulk
	// load) do not fill it.
	CacheSize int
	// FirstCandidates is how many candidates the first store round trip proposes
	// per value at most (default 4). More costs generator time and bandwidth on
	// every miss; fewer costs extra round trips when the generator's space is
	// crowded. Each domain starts at FirstCandidates and narrows to what its values
	// actually need (one, for a generator whose first candidate is nearly always
	// free), widening again when too many miss the window.
	FirstCandidates int
	// MaxCandidates bounds the candidates tried for one value before Resolve gives
	// up (default 2,000): a generator that clashes that often has too small an
	// output space for its domain, and no further attempt will fix that.
	MaxCandidates int
	// CacheOnFirstSight caches every value the store resolves, instead of
	// admitting a value on its second resolution (see doorkeeper). For callers
	// that know their values recur and want the first repeat to be a hit.
	CacheOnFirstSight bool
}

// Mapper resolves values to their consistent replacements: an in-process cache in
// front of a Store. It is safe for concurrent use.
//
// A mapping never changes inside its namespace, so a cached entry stays right for
// as long as the namespace lives (entries carry its expiry). The one exception is
// Forget, which evicts the value from this Mapper's cache — but not from the caches
// of other processes, which keep serving the forgotten replacement until they
// restart; run an erasure while no other process maps that domain.
type Mapper struct {
	store Store
	keyer *Keyer
	cache *cache
	first int
	max   int
	// widths holds each domain's first-round window (domain → *atomic.Int32).
	widths sync.Map
	claims *claimCache
	door   *doorkeeper // nil: cache on first sight

	hits, misses atomic.Uint64
}

// NewMapper returns a Mapper over store whose keys and seeds derive from secret.
// It panics on an empty secret (see NewKeyer). The caller keeps ownership of
// store and closes it.
func NewMapper(store Store, secret []byte, opts MapperOptions) *Mapper {
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.FirstCandidates <= 0 {
		opts.FirstCandidates = DefaultFirstCandidates
	}
	if opts.MaxCandidates <= 0 {
		opts.MaxCandidates = DefaultMaxCandidates
	}
	opts.FirstCandidates = min(opts.FirstCandidates, opts.MaxCandidates)
	m := &Mapper{
		store:  store,
		keyer:  NewKeyer(secret),
		cache:  newCache(opts.CacheSize),
		claims: &claimCache{seed: maphash.MakeSeed()},
		first:  opts.FirstCandidates,
		max:    opts.MaxCandidates,
	}
	if !opts.CacheOnFirstSight {
		m.door = newDoorkeeper(opts.CacheSize)
	}
	return m
}

// Store returns the store behind the Mapper.
func (m *Mapper) Store() Store { return m.store }

// Keyer returns the Mapper's keyer, for rules that need a keyed hash or a seed
// without a stored mapping (keyed hash, date shift).
func (m *Mapper) Keyer() *Keyer { return m.keyer }

// Stats returns how many items were answered from the cache (hits) and how many
// needed the store (misses), since the Mapper was created.
func (m *Mapper) Stats() (hits, misses uint64) { return m.hits.Load(), m.misses.Load() }

// miss is one distinct (namespace, domain, value) that the cache did not have.
type miss struct {
	item  int   // first item with this value; it supplies NS, Domain, Value, Gen
	dups  []int // further items with the same (namespace, domain, value)
	next  int   // the previous miss with the same cache hash, or -1
	shard *cacheShard
	hash  uint64 // the cache's hash of (domain, value)
	ck    cacheKey
	key   Key
	seed  [32]byte
	space uint64 // the claim cache's hash of (namespace, domain)
	// lo is the next attempt to generate; want is how many candidates the next
	// round proposes (0 before the first round).
	lo, want int
}

// Resolve sets items[i].Out to the replacement of items[i].Value in its namespace
// and domain, creating mappings that do not exist yet. Cached values cost a map
// lookup; the rest are deduplicated and sent to the store in one Resolve call, then
// again (with further candidates) only for the few whose candidates were all
// claimed by other values. On error no item's Out is meaningful.
//
// An item needs a Gen only when its value is not cached. Errors never contain
// values: only domains, counts and generator types.
func (m *Mapper) Resolve(ctx context.Context, items []Item) error {
	now := time.Now().UnixNano()
	var (
		misses []miss
		// index finds a miss by the cache's hash of (domain, value); misses
		// sharing a hash (another namespace, or a collision) are chained by next.
		index map[uint64]int
		hits  uint64
	)
	for i := range items {
		it := &items[i]
		ck := cacheKey{scope: it.NS.Scope, period: it.NS.Period, domain: it.Domain, value: it.Value}
		h := m.cache.hash(it.Domain, it.Value)
		s := m.cache.shard(h)
		if out, ok := cached(s, ck, now); ok {
			it.Out = out
			hits++
			continue
		}
		j, seen := index[h]
		for seen && misses[j].ck != ck {
			j = misses[j].next
			seen = j >= 0
		}
		if seen {
			misses[j].dups = append(misses[j].dups, i)
			continue
		}
		if it.Gen == nil {
			return fmt.Errorf("mapping: domain %q: item %d has no generator", it.Domain, i)
		}
		if misses == nil {
			// Sized for the rest of the batch: a batch with one miss usually has
			// many (a bulk load), and growing by doubling copied them all.
			misses = make([]miss, 0, len(items)-i)
			index = make(map[uint64]int, len(items)-i)
		}
		prev, ok := index[h]
		if !ok {
			prev = -1
		}
		index[h] = len(misses)
		misses = append(misses, miss{item: i, shard: s, ck: ck, next: prev, hash: h})
	}
	m.hits.Add(hits)
	if len(misses) == 0 {
		return nil
	}
	m.misses.Add(uint64(len(items)) - hits)

	pending := make([]int, len(misses))
	for j := range pending {
		pending[j] = j
	}
	// Rounds propose the domain's first window of candidates (see width), then
	// 4 times as many as were generated so far (4, 16, 80, 400, … for a window
	// of 4), up to max attempts. Candidates this Mapper saw claimed are skipped
	// (see claimCache).
	var tally widthTally
	for round := 0; len(pending) > 0; round++ {
		reqs, err := m.prepare(items, misses, pending)
		if err != nil {
			return err
		}
		res, err := m.store.Resolve(ctx, reqs)
		if err != nil {
			return err
		}
		if len(res) != len(reqs) {
			return fmt.Errorf("mapping: store answered %d of %d requests", len(res), len(reqs))
		}
		var taken []claim
		next := pending[:0] // reuses pending: next is written only behind the read index
		for r, j := range pending {
			mi := &misses[j]
			req := &reqs[r]
			if round == 0 {
				tally.add(req.Domain, req.Candidates, res[r])
			}
			// Candidates before the one the store returned were claimed by other
			// values; all of them, when it returned none.
			before := req.Candidates
			if res[r].OK {
				before = before[:0]
				for p, c := range req.Candidates {
					if c == res[r].Value {
						before = req.Candidates[:p]
						break
					}
				}
			}
			if len(before) > 0 {
				sp := claimSpace{scope: req.NS.Scope, period: req.NS.Period, domain: req.Domain}
				for _, c := range before {
					taken = append(taken, claim{key: m.claims.key(mi.space, c), space: sp})
				}
			}
			if !res[r].OK {
				mi.want = 4 * max(mi.lo, m.first)
				next = append(next, j)
				continue
			}
			m.settle(items, mi, res[r].Value, res[r].Existed)
		}
		m.claims.add(taken)
		if round == 0 {
			tally.apply(m)
		}
		pending = next
	}
	return nil
}

// prepare builds the requests of the pending misses: their keys and seeds when
// not yet computed, and the next candidates of each, skipping those known to be
// claimed.
func (m *Mapper) prepare(items []Item, misses []miss, pending []int) ([]Request, error) {
	n := 0
	for _, j := range pending {
		mi := &misses[j]
		it := &items[mi.item]
		if mi.lo >= m.max {
			return nil, fmt.Errorf("mapping: domain %q: %d value(s) found no free replacement among %d candidates of generator %T; its output space is too small for this domain",
				it.Domain, len(pending), m.max, it.Gen)
		}
		if mi.want == 0 { // first round
			mi.key = m.keyer.Key(it.Domain, it.Value)
			mi.space = m.claims.space(claimSpace{scope: it.NS.Scope, period: it.NS.Period, domain: it.Domain})
			m.keyer.seedTo(&mi.seed, it.NS, it.Domain, it.Value)
			mi.want = m.width(it.Domain)
		}
		n += min(mi.want, m.max-mi.lo)
	}
	reqs := make([]Request, len(pending))
	slab := make([]string, 0, n) // one allocation for the round's candidates
	m.claims.mu.RLock()
	defer m.claims.mu.RUnlock()
	for r, j := range pending {
		mi := &misses[j]
		it := &items[mi.item]
		start := len(slab)
		for ; mi.lo < m.max && len(slab)-start < mi.want; mi.lo++ {
			c := it.Gen.Candidate(it.Value, mi.seed[:], mi.lo)
			if m.claims.has(m.claims.key(mi.space, c)) {
				continue
			}
			slab = append(slab, c)
		}
		reqs[r] = Request{NS: it.NS, Domain: it.Domain, Key: mi.key, Candidates: slab[start:len(slab):len(slab)]}
	}
	return reqs, nil
}

// The first round's window adapts per domain: proposing candidates that are
// never tried costs generator time and bytes on every new value, while a window
// too narrow costs a second round trip for the values that miss it. A domain
// whose values mostly take their first candidate (e-mail addresses, UUIDs) ends
// up proposing one; a crowded one (first names) keeps FirstCandidates.
const (
	// widthSample is how many new values of a domain one Resolve must resolve in
	// its first round before the window adapts to them.
	widthSample = 32
	// widthMiss is the share of a domain's new values (1/widthMiss) allowed to
	// need a second round.
	widthMiss = 64
)

// width returns the first-round window of domain.
func (m *Mapper) width(domain string) int {
	if w, ok := m.widths.Load(domain); ok {
		return int(w.(*atomic.Int32).Load())
	}
	return m.first
}

// widthTally counts, per domain, which of their proposed candidates the first
// round's values got (known-claimed candidates are not proposed, so the count is
// of candidates that may be free).
type widthTally struct {
	last    *domainTally
	domains []*domainTally
}

type domainTally struct {
	domain string
	window int     // the window proposed (the first request's)
	at     [64]int // values that got their a-th proposed candidate (a < window)
	out    int     // values that needed more than the window
}

func (t *widthTally) add(domain string, cands []string, res Resolution) {
	d := t.last
	if d == nil || d.domain != domain {
		d = nil
		for _, x := range t.domains {
			if x.domain == domain {
				d = x
				break
			}
		}
		if d == nil {
			d = &domainTally{domain: domain, window: len(cands)}
			t.domains = append(t.domains, d)
		}
		t.last = d
	}
	if !res.OK {
		d.out++
		return
	}
	// A value mapped earlier (by another process, or before a restart) may hold
	// a replacement outside the window: it says nothing about the window.
	for a, c := range cands {
		if c == res.Value {
			if a < len(d.at) {
				d.at[a]++
			}
			return
		}
	}
}

// apply sets each domain's window to the narrowest that would have resolved all
// but 1/widthMiss of the values; when more than that missed the window, it
// widens back to FirstCandidates.
func (t *widthTally) apply(m *Mapper) {
	for _, d := range t.domains {
		total := d.out
		for _, n := range d.at {
			total += n
		}
		if total < widthSample {
			continue
		}
		w := m.first
		if d.out*widthMiss <= total {
			need, sum := total-total/widthMiss, 0
			for a := 0; a < d.window && a < len(d.at); a++ {
				if sum += d.at[a]; sum >= need {
					w = a + 1
					break
				}
			}
		}
		w = max(1, min(w, m.first))
		if v, ok := m.widths.Load(d.domain); ok {
			v.(*atomic.Int32).Store(int32(w))
			continue
		}
		v := new(atomic.Int32)
		v.Store(int32(w))
		m.widths.Store(d.domain, v)
	}
}

// settle fills the items of one resolved miss and caches the replacement if it
// existed before (a value mapped earlier recurs: a stream's updates after a
// load) or the doorkeeper admits it.
func (m *Mapper) settle(items []Item, mi *miss, out string, existed bool) {
	items[mi.item].Out = out
	for _, d := range mi.dups {
		items[d].Out = out
	}
	if m.door != nil && !existed && !m.door.admit(mi.hash) {
		return
	}
	var expires int64
	if ns := items[mi.item].NS; !ns.Expires.IsZero() {
		expires = ns.Expires.UnixNano()
	}
	mi.shard.Put(mi.ck.owned(), cacheEntry{out: out, expires: expires})
}

// Forget erases value's mapping in domain in every namespace of the store and
// releases the replacements it held (erasure of one person's data), and evicts it
// from this Mapper's cache. It returns how many mappings the store removed. See the
// Mapper doc about caches of other processes.
func (m *Mapper) Forget(ctx context.Context, domain, value string) (int, error) {
	n, err := m.store.Forget(ctx, domain, m.keyer.Key(domain, value))
	// Evict even after an error: the store may have removed part of it. The
	// released claim is unknown here, so every claim seen in domain is dropped.
	m.cache.forget(domain, value)
	m.claims.forgetDomain(domain)
	return n, err
}

// Purge drops every mapping of scope (only the namespace of period, when set) from
// the store and from this Mapper's cache.
func (m *Mapper) Purge(ctx context.Context, scope Scope, period string) error {
	err := m.store.Purge(ctx, scope, period)
	m.cache.purge(scope, period)
	m.claims.purge(scope, period)
	return err
}
