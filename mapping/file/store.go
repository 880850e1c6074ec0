// Package file is the embedded mapping store, the default: one directory on local
// disk holding a Pebble database (an LSM tree: a write-ahead log, memtables and
// sorted tables), no server to run.
//
// Why an LSM tree: every key is a random keyed hash, so a B+tree rewrites about one
// leaf page per new value, while Pebble appends the batch to its log (one fsync per
// commit) and sorts in memory, writing sorted tables in the background.
//
// One process at a time: Open takes an exclusive lock on <dir>/understudy.lock, so
// a second process (or a second Open in the same process) cannot open the store
// while the first holds it; Open gives up after Options.LockTimeout with an error
// naming the directory. Pipelines that run in separate processes and must share
// mappings use a Redis store instead. Inside the process, Resolve, Forget, Purge
// and the expiry sweep write one at a time (concurrent Resolve calls are merged
// into one batch: group commit), which makes get-or-create atomic across
// goroutines. Every write batch is fsynced before the call returns.
//
// Keys (ids are 8-byte big-endian; a domain is prefixed by its uvarint length):
//
//	"c"                               next namespace id
//	"n" <scope>/<period>              namespace registry: id, expiry (Unix ns, 0 = never)
//	"m" <id> <domain> "f" <key>       → replacement   forward: the mapping
//	"m" <id> <domain> "r" <replacement> → key         reverse: the claim that keeps replacements unique
//
// A namespace's mappings share the prefix "m" <id>, so dropping a namespace is one
// range deletion; a namespace that starts afresh after expiring gets a new id, so
// nothing of its earlier life is visible even before the deletion is compacted.
// The registry is small (one entry per namespace) and is kept in memory too.
// Expired namespaces are absent to every method, dropped when the store is opened,
// and swept once a minute while it is open.
//
// Memory is bounded, whatever the number of mappings: a 64 MiB block cache (index,
// bloom filter and data blocks), at most two 8 MiB memtables, and a cache of at most
// 65,536 claimed replacements (a few MiB) that spares a read for the candidates
// every value proposes first.
package file

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
	"github.com/cockroachdb/pebble/vfs"

	"github.com/understudy/understudy/mapping"
)

func init() {
	mapping.Register("file", func(_ context.Context, u *url.URL) (mapping.Store, error) {
		path, err := pathOf(u)
		if err != nil {
			return nil, err
		}
		return Open(path, Options{})
	})
}

var _ mapping.Store = (*Store)(nil)

// DefaultLockTimeout is how long Open waits for another holder of the store.
const DefaultLockTimeout = time.Second

// sweepEvery is how often an open store drops expired namespaces.
const sweepEvery = time.Minute

// lockFile is the file in the store's directory that Open locks.
const lockFile = "understudy.lock"

// Memory bounds (see the package comment). Measured on 2 cores with random keys:
// small memtables are faster, since every read seeks the memtables' skiplists and
// most reads are answered by bloom filters instead (16 MiB and more was 2–3 times
// slower); a 64 MiB cache keeps the tables' filter and index blocks.
const (
	cacheSize    = 64 << 20
	memTableSize = 8 << 20
	memTables    = 2 // MemTableStopWritesThreshold: writes wait while this many are full
)

const (
	prefixCounter  = 'c'
	prefixRegistry = 'n'
	prefixMapping  = 'm'
	tagForward     = 'f'
	tagReverse     = 'r'
)

var keyCounter = []byte{prefixCounter}

// Options tunes Open.
type Options struct {
	// LockTimeout is how long Open waits for a process holding the store before it
	// fails (default 1s).
	LockTimeout time.Duration
}

// Store is a mapping store in one Pebble directory.
type Store struct {
	db   *pebble.DB
	lock io.Closer
	path string

	// mu is held shared by every operation and exclusively by Close, so that the
	// database is never used after it is closed.
	mu     sync.RWMutex
	closed atomic.Bool

	// writeMu serializes writers: Resolve's group commits, Forget, Purge, sweeps.
	writeMu sync.Mutex
	nextID  uint64       // guarded by writeMu
	claimed claimedCache // guarded by writeMu

	// reg is the namespace registry: changed under writeMu and regMu, read under
	// regMu (or writeMu alone, by writers).
	regMu sync.RWMutex
	reg   map[string]nsEntry

	stopSweep chan struct{}
	sweepDone chan struct{}

	// group queues Resolve calls for group commit; busy means a leader is
	// committing and will hand on to the queue.
	group struct {
		mu    sync.Mutex
		queue []*call
		busy  bool
	}
}

// nsEntry is one namespace in the registry. id 0 marks a deletion in a writer's
// pending changes.
type nsEntry struct {
	id      uint64
	expires int64 // Unix nanoseconds; 0 = never
}

func (e nsEntry) expired(now int64) bool { return e.expires != 0 && e.expires <= now }

// pathOf reads the path from "file:relative/path", "file:/abs/path" or
// "file:///abs/path".
func pathOf(u *url.URL) (string, error) {
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("file store URL names host %q; the embedded store is local: use file:<path>", u.Host)
	}
	if len(u.Query()) > 0 {
		return "", fmt.Errorf("file store URL takes no parameters (got %q)", u.RawQuery)
	}
	p := u.Opaque
	if p == "" {
		p = u.Path
	}
	if p == "" {
		return "", errors.New("file store URL has no path: use file:<path>")
	}
	return p, nil
}

// Open opens (creating when missing) the mapping store in directory path, drops
// expired namespaces, and holds the store's lock until Close. It fails after
// opts.LockTimeout when another process has the store open.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		return nil, fmt.Errorf("mapping store %s is a file, not a directory: it was probably written by an earlier understudy that kept mappings in one bbolt file. The embedded store is now a directory; there is no migration (no release used the old format), so move or delete the file, or point mappings at another path", path)
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("mapping store %s: %w", path, err)
	}
	lock, err := lockDir(path, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	cache := pebble.NewCache(cacheSize)
	defer cache.Unref() // the DB holds its own reference
	po := &pebble.Options{
		Cache:                       cache,
		MemTableSize:                memTableSize,
		MemTableStopWritesThreshold: memTables,
		FormatMajorVersion:          pebble.FormatNewest,
		Comparer:                    comparer,
		Logger:                      logger{path},
		EventListener: &pebble.EventListener{BackgroundError: func(err error) {
			log.Printf("mapping store %s: %v", path, err)
		}},
	}
	po.Levels = make([]pebble.LevelOptions, 7)
	for i := range po.Levels {
		// Most lookups are of keys that do not exist (new values, free candidates):
		// bloom filters answer those without reading data blocks.
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		po.Levels[i].FilterType = pebble.TableFilter
		po.Levels[i].EnsureDefaults()
	}
	db, err := pebble.Open(path, po)
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("mapping store %s: %w", path, err)
	}
	s := &Store{db: db, lock: lock, path: path, reg: make(map[string]nsEntry), stopSweep: make(chan struct{}), sweepDone: make(chan struct{})}
	if err := s.load(); err != nil {
		_ = db.Close()
		_ = lock.Close()
		return nil, fmt.Errorf("mapping store %s: %w", path, err)
	}
	if err := s.sweep(); err != nil {
		_ = db.Close()
		_ = lock.Close()
		return nil, fmt.Errorf("mapping store %s: %w", path, err)
	}
	go s.sweeper()
	return s, nil
}

// lockDir takes the exclusive lock of the store in dir, waiting up to timeout for
// another holder.
func lockDir(dir string, timeout time.Duration) (io.Closer, error) {
	name := filepath.Join(dir, lockFile)
	deadline := time.Now().Add(timeout)
	for {
		l, err := vfs.Default.Lock(name)
		if err == nil {
			return l, nil
		}
		var pe *fs.PathError
		if errors.As(err, &pe) { // cannot create the file: waiting will not help
			return nil, fmt.Errorf("mapping store %s: %w", dir, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("mapping store %s is held by another process (the embedded store allows one process at a time; stop the other one, or share mappings through a redis:// store): %v", dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// comparer is Pebble's default byte order (same name, so the same on disk) with a
// Split that makes every key its own prefix, which point reads (SeekPrefixGE)
// need: they then check bloom filters on the whole key, as the filters are built.
var comparer = func() *pebble.Comparer {
	c := *pebble.DefaultComparer
	c.Split = func(a []byte) int { return len(a) }
	return &c
}()

// logger drops Pebble's informational messages (WAL replay at every open, …);
// background errors reach the standard logger through the event listener.
type logger struct{ path string }

func (logger) Infof(string, ...any) {}

func (l logger) Fatalf(format string, args ...any) {
	log.Fatalf("mapping store %s: %s", l.path, fmt.Sprintf(format, args...))
}

// load reads the namespace registry and the id counter.
func (s *Store) load() error {
	s.nextID = 1
	v, closer, err := s.db.Get(keyCounter)
	switch {
	case err == nil:
		if len(v) == 8 {
			s.nextID = max(s.nextID, binary.BigEndian.Uint64(v))
		}
		_ = closer.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		return err
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixRegistry}, UpperBound: []byte{prefixRegistry + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		e, ok := decodeEntry(it.Value())
		if !ok {
			_ = it.Close()
			return fmt.Errorf("unreadable namespace entry %q", it.Key())
		}
		s.reg[string(it.Key()[1:])] = e
		s.nextID = max(s.nextID, e.id+1)
	}
	return it.Close()
}

// sweeper drops expired namespaces every sweepEvery until Close.
func (s *Store) sweeper() {
	defer close(s.sweepDone)
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stopSweep:
			return
		case <-t.C:
			if err := s.do(s.sweep); err != nil && !errors.Is(err, mapping.ErrClosed) {
				log.Printf("mapping store %s: dropping expired namespaces: %v", s.path, err)
			}
		}
	}
}

// do runs f while the store is open, or returns ErrClosed.
func (s *Store) do(f func() error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return mapping.ErrClosed
	}
	return f()
}

// sweep deletes the namespaces that have expired by now.
func (s *Store) sweep() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	w := s.newWriter(time.Now())
	defer w.close()
	for name, e := range s.reg {
		if e.expired(w.now) {
			if err := w.drop(name, e); err != nil {
				return err
			}
		}
	}
	return w.commit()
}

// Path returns the store's directory.
func (s *Store) Path() string { return s.path }

// writer collects one write batch and the registry changes it makes. Only one
// writer exists at a time (writeMu), so what it reads from the database stays
// true until it commits, apart from its own writes, which it remembers.
type writer struct {
	s      *Store
	b      *pebble.Batch
	r      reader // reads the database as it was before this batch
	now    int64
	reg    map[string]nsEntry // pending registry changes
	nextID uint64
	// fwd and rev are the forward keys and reverse keys this batch writes.
	fwd        map[string]string
	rev        map[string]struct{}
	fbuf, rbuf []byte // key buffers; the batch copies what it keeps
	// the last space resolved, since batches mostly stay in one
	lastNS     mapping.Namespace
	lastDomain string
	lastPrefix []byte // "m" id domain
}

func (s *Store) newWriter(now time.Time) *writer {
	return &writer{s: s, b: s.db.NewBatch(), r: reader{db: s.db}, now: now.UnixNano(), nextID: s.nextID}
}

func (w *writer) close() {
	w.r.close()
	_ = w.b.Close()
}

// entry returns namespace name's registry entry as this writer sees it.
func (w *writer) entry(name string) (nsEntry, bool) {
	if e, ok := w.reg[name]; ok {
		return e, e.id != 0
	}
	e, ok := w.s.reg[name]
	return e, ok
}

func (w *writer) setEntry(name string, e nsEntry) error {
	if w.reg == nil {
		w.reg = make(map[string]nsEntry)
	}
	w.reg[name] = e
	w.lastPrefix = nil // the namespace may have a new id
	if e.id == 0 {
		return w.b.Delete(registryKey(name), nil)
	}
	return w.b.Set(registryKey(name), encodeEntry(e), nil)
}

// drop deletes namespace name and every mapping in it.
func (w *writer) drop(name string, e nsEntry) error {
	if err := w.b.DeleteRange(spacePrefix(e.id), spacePrefix(e.id+1), nil); err != nil {
		return err
	}
	return w.setEntry(name, nsEntry{})
}

// space returns the key prefix of (ns, domain) for writing: it creates the
// namespace when missing, starts it afresh when expired, and extends its expiry
// when ns expires later.
func (w *writer) space(ns mapping.Namespace, domain string) ([]byte, error) {
	if w.lastPrefix != nil && w.lastDomain == domain && w.lastNS.Scope == ns.Scope && w.lastNS.Period == ns.Period && w.lastNS.Expires.Equal(ns.Expires) {
		return w.lastPrefix, nil
	}
	name := ns.String()
	var exp int64
	if !ns.Expires.IsZero() {
		exp = ns.Expires.UnixNano()
	}
	e, ok := w.entry(name)
	if ok && e.expired(w.now) {
		if err := w.drop(name, e); err != nil {
			return nil, err
		}
		ok = false
	}
	switch {
	case !ok:
		e = nsEntry{id: w.nextID, expires: exp}
		w.nextID++
		if err := w.b.Set(keyCounter, binary.BigEndian.AppendUint64(nil, w.nextID), nil); err != nil {
			return nil, err
		}
		if err := w.setEntry(name, e); err != nil {
			return nil, err
		}
	case exp != 0 && e.expires != 0 && e.expires < exp:
		// A later expiry extends the namespace; "never" stays never.
		e.expires = exp
		if err := w.setEntry(name, e); err != nil {
			return nil, err
		}
	}
	w.lastNS, w.lastDomain = ns, domain
	w.lastPrefix = appendDomain(spacePrefix(e.id), domain)
	return w.lastPrefix, nil
}

// reverseTaken reports whether a reverse key (a claim) exists as of this batch.
func (w *writer) reverseTaken(key []byte) (bool, error) {
	if _, ok := w.rev[string(key)]; ok {
		return true, nil
	}
	if w.s.claimed.has(key) {
		return true, nil
	}
	taken, err := w.r.exists(key)
	if taken {
		w.s.claimed.add(key)
	}
	return taken, err
}

// claimedSize bounds the claimed cache: two generations of at most this many keys
// (about 100 bytes each with the map's overhead).
const claimedSize = 32_768

// claimedCache remembers reverse keys found claimed in the database, so that the
// candidates every value proposes first (a generator's common words, taken long
// ago) cost no read. Claims are only removed by Forget (which deletes its keys
// here) and by dropping a namespace (whose id is never used again), so an entry
// stays true. Two generations bound its size: when the current one fills, it
// becomes the previous one and the oldest is dropped.
type claimedCache struct{ cur, prev map[string]struct{} }

func (c *claimedCache) has(key []byte) bool {
	if _, ok := c.cur[string(key)]; ok {
		return true
	}
	if _, ok := c.prev[string(key)]; ok {
		c.add(key) // keep it in the younger generation
		return true
	}
	return false
}

// peek is has without moving the key to the younger generation: it only reads,
// so concurrent readers may call it.
func (c *claimedCache) peek(key []byte) bool {
	if _, ok := c.cur[string(key)]; ok {
		return true
	}
	_, ok := c.prev[string(key)]
	return ok
}

func (c *claimedCache) add(key []byte) {
	if len(c.cur) >= claimedSize || c.cur == nil {
		c.prev, c.cur = c.cur, make(map[string]struct{}, min(claimedSize, 1024))
	}
	c.cur[string(key)] = struct{}{}
}

func (c *claimedCache) remove(key []byte) {
	delete(c.cur, string(key))
	delete(c.prev, string(key))
}

// prefetched is what the parallel read phase learnt about one request, from the
// database as it was before the batch.
type prefetched struct {
	fwd       string
	fwdOK     bool
	cand      int // index of the candidate read, -1 for none
	candTaken bool
}

// prefetch reads, for every request, its forward key and then, when that is
// absent, its first candidate not known to be claimed. Each round of reads is
// sorted by key, so consecutive seeks move forward through the same memtable
// region, table files and blocks, and spread over the CPUs in contiguous ranges.
// It only reads: the writer's batch, registry and claimed cache are not touched,
// and writeMu keeps the database as it is.
func (w *writer) prefetch(reqs []*mapping.Request, prefixes [][]byte) ([]prefetched, error) {
	pre := make([]prefetched, len(reqs))
	var rs readSet
	for i, r := range reqs {
		pre[i].cand = -1
		add(&rs, i, prefixes[i], tagForward, r.Key[:])
	}
	err := rs.read(w.s.db, func(i int, r *reader, key []byte) error {
		v, ok, err := r.get(key)
		pre[i].fwd, pre[i].fwdOK = v, ok
		return err
	})
	if err != nil {
		return nil, err
	}
	rs.reset()
	for i, r := range reqs {
		if pre[i].fwdOK {
			continue
		}
		for j, cand := range r.Candidates {
			if k := add(&rs, i, prefixes[i], tagReverse, cand); w.s.claimed.peek(k) {
				rs.drop()
				continue
			}
			pre[i].cand = j
			break
		}
	}
	err = rs.read(w.s.db, func(i int, r *reader, key []byte) error {
		taken, err := r.exists(key)
		pre[i].candTaken = taken
		return err
	})
	return pre, err
}

// readSet is a list of keys to read, each for one request.
type readSet struct {
	buf  []byte
	ends []int // key k is buf[ends[k-1]:ends[k]]
	reqs []int
}

func (rs *readSet) reset() { rs.buf, rs.ends, rs.reqs = rs.buf[:0], rs.ends[:0], rs.reqs[:0] }

// add appends prefix|tag|rest for request i and returns the key.
func add[T string | []byte](rs *readSet, i int, prefix []byte, tag byte, rest T) []byte {
	start := len(rs.buf)
	rs.buf = append(append(append(rs.buf, prefix...), tag), rest...)
	rs.ends = append(rs.ends, len(rs.buf))
	rs.reqs = append(rs.reqs, i)
	return rs.buf[start:]
}

// drop removes the last key added.
func (rs *readSet) drop() {
	n := len(rs.ends) - 1
	rs.buf = rs.buf[:rs.start(n)]
	rs.ends, rs.reqs = rs.ends[:n], rs.reqs[:n]
}

func (rs *readSet) start(k int) int {
	if k == 0 {
		return 0
	}
	return rs.ends[k-1]
}

func (rs *readSet) key(k int) []byte { return rs.buf[rs.start(k):rs.ends[k]] }

// read calls f for every key in key order, from up to maxReaders goroutines,
// each with its own reader over a contiguous range of the sorted keys.
func (rs *readSet) read(db *pebble.DB, f func(req int, r *reader, key []byte) error) error {
	n := len(rs.ends)
	if n == 0 {
		return nil
	}
	order := make([]int, n)
	for k := range order {
		order[k] = k
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(rs.key(a), rs.key(b)) })
	workers := min(runtime.GOMAXPROCS(0), maxReaders, (n+minPerReader-1)/minPerReader)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for g := range workers {
		work := func() {
			r := reader{db: db}
			defer r.close()
			for _, k := range order[g*n/workers : (g+1)*n/workers] {
				if err := f(rs.reqs[k], &r, rs.key(k)); err != nil {
					errs[g] = err
					return
				}
			}
		}
		if g == workers-1 {
			work() // this goroutine takes the last range
		} else {
			wg.Add(1)
			go func() { defer wg.Done(); work() }()
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Reads of a batch are spread over at most maxReaders goroutines, each reading at
// least minPerReader requests.
const (
	maxReaders   = 4
	minPerReader = 256
)

// resolve applies one request, given what prefetch read for it.
func (w *writer) resolve(r *mapping.Request, prefix []byte, pre *prefetched) (mapping.Resolution, error) {
	fk := append(append(append(w.fbuf[:0], prefix...), tagForward), r.Key[:]...)
	w.fbuf = fk
	if v, ok := w.fwd[string(fk)]; ok {
		return mapping.Resolution{Value: v, OK: true}, nil
	}
	if pre.fwdOK {
		return mapping.Resolution{Value: pre.fwd, OK: true, Existed: true}, nil
	}
	for j, cand := range r.Candidates {
		rk := append(append(append(w.rbuf[:0], prefix...), tagReverse), cand...)
		w.rbuf = rk
		var taken bool
		if _, ok := w.rev[string(rk)]; ok {
			taken = true
		} else if j == pre.cand {
			taken = pre.candTaken
			if taken {
				w.s.claimed.add(rk)
			}
		} else {
			var err error
			if taken, err = w.reverseTaken(rk); err != nil {
				return mapping.Resolution{}, err
			}
		}
		if taken {
			continue
		}
		if err := w.b.Set(rk, r.Key[:], nil); err != nil {
			return mapping.Resolution{}, err
		}
		if err := w.b.Set(fk, []byte(cand), nil); err != nil {
			return mapping.Resolution{}, err
		}
		w.fwd[string(fk)] = cand
		w.rev[string(rk)] = struct{}{}
		return mapping.Resolution{Value: cand, OK: true}, nil
	}
	return mapping.Resolution{}, nil
}

// commit makes the batch durable (fsync) and then publishes its registry changes.
func (w *writer) commit() error {
	if w.b.Empty() {
		return nil
	}
	if err := w.b.Commit(pebble.Sync); err != nil {
		return err
	}
	w.s.nextID = w.nextID
	if len(w.reg) > 0 {
		w.s.regMu.Lock()
		for name, e := range w.reg {
			if e.id == 0 {
				delete(w.s.reg, name)
			} else {
				w.s.reg[name] = e
			}
		}
		w.s.regMu.Unlock()
	}
	return nil
}

// Resolve implements mapping.Store. Batches that arrive from other goroutines while
// a batch is committing are merged into the next one (group commit): each fsync
// then covers several batches, and no batch waits for a timer.
func (s *Store) Resolve(ctx context.Context, reqs []mapping.Request) ([]mapping.Resolution, error) {
	if s.closed.Load() {
		return nil, mapping.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(reqs) == 0 {
		return nil, nil
	}
	c := &call{reqs: reqs, done: make(chan struct{})}
	s.group.mu.Lock()
	s.group.queue = append(s.group.queue, c)
	lead := !s.group.busy
	s.group.busy = true
	s.group.mu.Unlock()
	if lead {
		s.lead()
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		// The batch may still commit; that is harmless, since a later Resolve of the
		// same keys returns what it created.
		return nil, ctx.Err()
	}
	if c.err != nil {
		return nil, c.err
	}
	return c.out, nil
}

// maxGroup bounds the requests merged into one batch, which bounds how long a
// batch holds the write lock and how much memory it takes.
const maxGroup = 50_000

// call is one Resolve waiting for its batch.
type call struct {
	reqs []mapping.Request
	out  []mapping.Resolution
	err  error
	done chan struct{}
}

// lead commits the queued calls, then hands on to a new leader goroutine when more
// calls queued meanwhile, so that the caller that led returns with its own result
// instead of serving everyone else's.
func (s *Store) lead() {
	s.group.mu.Lock()
	var batch []*call
	n := 0
	for len(s.group.queue) > 0 && (n == 0 || n+len(s.group.queue[0].reqs) <= maxGroup) {
		c := s.group.queue[0]
		s.group.queue = s.group.queue[1:]
		batch = append(batch, c)
		n += len(c.reqs)
	}
	s.group.mu.Unlock()

	err := s.commit(batch)
	if err != nil && len(batch) > 1 && !errors.Is(err, mapping.ErrClosed) {
		// One call's failure must not fail the others: retry each on its own.
		for _, c := range batch {
			c.err = s.commit([]*call{c})
		}
	} else {
		for _, c := range batch {
			c.err = err
		}
	}
	for _, c := range batch {
		close(c.done)
	}

	s.group.mu.Lock()
	if len(s.group.queue) > 0 {
		go s.lead()
	} else {
		s.group.busy = false
	}
	s.group.mu.Unlock()
}

// commit applies the calls' requests, in order, in one fsynced batch, and sets
// each call's results.
func (s *Store) commit(calls []*call) error {
	err := s.do(func() error {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
		w := s.newWriter(time.Now())
		defer w.close()
		// The namespaces first (creating, extending, restarting them), then every
		// read in parallel, then the requests in order.
		var reqs []*mapping.Request
		var prefixes [][]byte
		for _, c := range calls {
			for i := range c.reqs {
				r := &c.reqs[i]
				prefix, err := w.space(r.NS, r.Domain)
				if err != nil {
					return err
				}
				reqs = append(reqs, r)
				prefixes = append(prefixes, prefix)
			}
		}
		pre, err := w.prefetch(reqs, prefixes)
		if err != nil {
			return err
		}
		w.fwd = make(map[string]string, len(reqs))
		w.rev = make(map[string]struct{}, len(reqs))
		k := 0
		for _, c := range calls {
			c.out = make([]mapping.Resolution, len(c.reqs))
			for i := range c.reqs {
				res, err := w.resolve(reqs[k], prefixes[k], &pre[k])
				if err != nil {
					return err
				}
				c.out[i] = res
				k++
			}
		}
		return w.commit()
	})
	return s.wrap(err)
}

// Lookup implements mapping.Store: point reads, no lock beyond the registry's.
func (s *Store) Lookup(ctx context.Context, reqs []mapping.Request) ([]mapping.Resolution, error) {
	if s.closed.Load() {
		return nil, mapping.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]mapping.Resolution, len(reqs))
	err := s.do(func() error {
		now := time.Now().UnixNano()
		rd := reader{db: s.db}
		defer rd.close()
		var key []byte
		for i, r := range reqs {
			s.regMu.RLock()
			e, ok := s.reg[r.NS.String()]
			s.regMu.RUnlock()
			if !ok || e.expired(now) {
				continue
			}
			key = append(append(appendDomain(append(key[:0], spacePrefix(e.id)...), r.Domain), tagForward), r.Key[:]...)
			v, found, err := rd.get(key)
			if err != nil {
				return err
			}
			out[i] = mapping.Resolution{Value: v, OK: found}
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	return out, nil
}

// Forget implements mapping.Store: one fsynced batch over every live namespace.
func (s *Store) Forget(ctx context.Context, domain string, key mapping.Key) (int, error) {
	if s.closed.Load() {
		return 0, mapping.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	err := s.do(func() error {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
		w := s.newWriter(time.Now())
		defer w.close()
		for name, e := range s.reg {
			if e.expired(w.now) {
				if err := w.drop(name, e); err != nil {
					return err
				}
				continue
			}
			prefix := appendDomain(spacePrefix(e.id), domain)
			fk := append(append(bytes.Clone(prefix), tagForward), key[:]...)
			v, ok, err := w.r.get(fk)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if err := w.b.Delete(fk, nil); err != nil {
				return err
			}
			rk := append(append(prefix, tagReverse), v...)
			owner, ok, err := w.r.get(rk)
			if err != nil {
				return err
			}
			if ok && owner == string(key[:]) {
				if err := w.b.Delete(rk, nil); err != nil {
					return err
				}
				// Before the commit: should it fail, the cache only misses.
				s.claimed.remove(rk)
			}
			n++
		}
		return w.commit()
	})
	if err != nil {
		return 0, s.wrap(err)
	}
	return n, nil
}

// Purge implements mapping.Store.
func (s *Store) Purge(ctx context.Context, scope mapping.Scope, period string) error {
	if s.closed.Load() {
		return mapping.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.do(func() error {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
		w := s.newWriter(time.Now())
		defer w.close()
		if period != "" {
			name := mapping.Namespace{Scope: scope, Period: period}.String()
			if e, ok := s.reg[name]; ok {
				if err := w.drop(name, e); err != nil {
					return err
				}
			}
		} else {
			prefix := string(scope) + "/"
			for name, e := range s.reg {
				if strings.HasPrefix(name, prefix) {
					if err := w.drop(name, e); err != nil {
						return err
					}
				}
			}
		}
		return w.commit()
	})
	return s.wrap(err)
}

// Close implements mapping.Store: it waits for calls in progress, closes the
// database and releases the lock.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.stopSweep)
	<-s.sweepDone
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.db.Close()
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("mapping store %s: %w", s.path, err)
	}
	return nil
}

// wrap names the store in errors.
func (s *Store) wrap(err error) error {
	if err == nil || errors.Is(err, mapping.ErrClosed) {
		return err
	}
	return fmt.Errorf("mapping store %s: %w", s.path, err)
}

// reader does point reads for one operation through one iterator, which sees the
// database as of its creation. Unlike DB.Get, it consults the bloom filters of the
// last level too, where nearly all keys live: most reads are of absent keys (new
// values, free candidates), and the filter answers those without a data block.
type reader struct {
	db *pebble.DB
	it *pebble.Iterator
}

func (r *reader) seek(key []byte) (bool, error) {
	if r.it == nil {
		it, err := r.db.NewIter(&pebble.IterOptions{UseL6Filters: true})
		if err != nil {
			return false, err
		}
		r.it = it
	}
	if r.it.SeekPrefixGE(key) && bytes.Equal(r.it.Key(), key) {
		return true, nil
	}
	return false, r.it.Error()
}

// get reads key; the value is copied out of Pebble's buffer.
func (r *reader) get(key []byte) (string, bool, error) {
	ok, err := r.seek(key)
	if !ok || err != nil {
		return "", false, err
	}
	v, err := r.it.ValueAndErr()
	return string(v), err == nil, err
}

// exists reports whether key is present.
func (r *reader) exists(key []byte) (bool, error) { return r.seek(key) }

func (r *reader) close() {
	if r.it != nil {
		_ = r.it.Close()
		r.it = nil
	}
}

func registryKey(name string) []byte { return append([]byte{prefixRegistry}, name...) }

// spacePrefix is the prefix of every mapping of namespace id.
func spacePrefix(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixMapping}, id)
}

// appendDomain appends the length-prefixed domain, so that no domain's keys are a
// prefix of another's.
func appendDomain(b []byte, domain string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(domain))), domain...)
}

func encodeEntry(e nsEntry) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), e.id)
	return binary.BigEndian.AppendUint64(b, uint64(e.expires))
}

func decodeEntry(b []byte) (nsEntry, bool) {
	if len(b) != 16 {
		return nsEntry{}, false
	}
	return nsEntry{id: binary.BigEndian.Uint64(b), expires: int64(binary.BigEndian.Uint64(b[8:]))}, true
}
