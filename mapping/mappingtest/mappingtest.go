// Package mappingtest is the contract suite every mapping.Store passes: one set of
// scenarios, run against memory, the embedded file store, Redis and any later
// backend, so they all behave alike.
//
//	func TestStore(t *testing.T) {
//		mappingtest.Run(t, func(t *testing.T) mapping.Store { … a fresh, empty store … },
//			mappingtest.Options{SharedURL: …})
//	}
//
// A backend that sets Options.SharedURL must call RunChild first thing in its
// TestMain, because the two-process scenario re-executes the test binary as the
// second process.
package mappingtest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/understudy/understudy/mapping"
)

// Options describes what a backend can do beyond the common contract.
type Options struct {
	// SharedURL returns the URL (for mapping.Open) of a fresh, empty store that a
	// second process can open while this one has it open (Redis). When set, Run
	// checks that two processes resolving overlapping values agree. The test
	// binary's TestMain must call RunChild.
	SharedURL func(t *testing.T) string
	// ExclusiveURL returns the URL of a fresh store that one opener at a time may
	// hold (the embedded file). When set, Run checks that a second Open fails fast
	// while the first is open, and succeeds once it is closed.
	ExclusiveURL func(t *testing.T) string
	// Values is how many distinct values the injectivity scenario maps (default
	// 1,000,000; 100,000 with -short).
	Values int
}

// Run runs the contract suite. open must return a fresh, empty store for every
// call; Run closes it. Pass at most one Options.
func Run(t *testing.T, open func(t *testing.T) mapping.Store, opts ...Options) {
	var o Options
	if len(opts) > 1 {
		t.Fatal("mappingtest.Run: pass at most one Options")
	}
	if len(opts) == 1 {
		o = opts[0]
	}
	fresh := func(t *testing.T) mapping.Store {
		t.Helper()
		s := open(t)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}

	t.Run("resolve creates then returns the same", func(t *testing.T) { testResolveSame(t, fresh(t)) })
	t.Run("clash takes the next candidate", func(t *testing.T) { testClash(t, fresh(t)) })
	t.Run("lookup does not create", func(t *testing.T) { testLookupDoesNotCreate(t, fresh(t)) })
	t.Run("namespaces and domains are isolated", func(t *testing.T) { testIsolation(t, fresh(t)) })
	t.Run("forget removes every namespace and releases the claim", func(t *testing.T) { testForget(t, fresh(t)) })
	t.Run("purge by scope and period", func(t *testing.T) { testPurge(t, fresh(t)) })
	t.Run("concurrent resolvers agree", func(t *testing.T) { testConcurrent(t, fresh(t)) })
	t.Run("two processes agree", func(t *testing.T) {
		if o.SharedURL == nil {
			t.Skip("store is not shared between processes")
		}
		testTwoProcesses(t, o.SharedURL(t))
	})
	t.Run("second open is refused", func(t *testing.T) {
		if o.ExclusiveURL == nil {
			t.Skip("store has no exclusive opener")
		}
		testExclusive(t, o.ExclusiveURL(t))
	})
	t.Run("distinct values get distinct replacements", func(t *testing.T) {
		n := o.Values
		if n == 0 {
			n = 1_000_000
			if testing.Short() {
				n = 100_000
			}
		}
		testManyValues(t, fresh(t), n)
	})
	t.Run("daily namespace expires", func(t *testing.T) { testExpiry(t, fresh(t)) })
	t.Run("closed store returns ErrClosed", func(t *testing.T) { testClosed(t, open(t)) })
}

// Secret is the mapping secret the suite uses.
var Secret = []byte("mappingtest secret, not for production")

// key returns a test key for name; any 32 bytes do, the store never interprets them.
func key(name string) mapping.Key { return sha256.Sum256([]byte(name)) }

var (
	perm  = mapping.Namespace{Scope: mapping.Permanent}
	day1  = mapping.Namespace{Scope: mapping.Daily, Period: "2024-05-01", Expires: time.Now().Add(72 * time.Hour)}
	day2  = mapping.Namespace{Scope: mapping.Daily, Period: "2024-05-02", Expires: time.Now().Add(96 * time.Hour)}
	run1  = mapping.Namespace{Scope: mapping.Run, Period: "run-1"}
	ctxBG = context.Background()
)

func req(ns mapping.Namespace, domain, name string, cands ...string) mapping.Request {
	return mapping.Request{NS: ns, Domain: domain, Key: key(name), Candidates: cands}
}

func resolve(t *testing.T, s mapping.Store, reqs ...mapping.Request) []mapping.Resolution {
	t.Helper()
	res, err := s.Resolve(ctxBG, reqs)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if len(res) != len(reqs) {
		t.Fatalf("Resolve returned %d results for %d requests", len(res), len(reqs))
	}
	return res
}

func lookup(t *testing.T, s mapping.Store, reqs ...mapping.Request) []mapping.Resolution {
	t.Helper()
	res, err := s.Lookup(ctxBG, reqs)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if len(res) != len(reqs) {
		t.Fatalf("Lookup returned %d results for %d requests", len(res), len(reqs))
	}
	return res
}

// want checks one resolution: OK with value v, or not OK when v is "".
func want(t *testing.T, what string, got mapping.Resolution, v string) {
	t.Helper()
	switch {
	case v == "" && got.OK:
		t.Errorf("%s: got %q, want no mapping", what, got.Value)
	case v != "" && (!got.OK || got.Value != v):
		t.Errorf("%s: got (%q, OK=%v), want %q", what, got.Value, got.OK, v)
	}
}

func testResolveSame(t *testing.T, s mapping.Store) {
	r := resolve(t, s, req(perm, "name", "alice", "Ann", "Bea"))
	want(t, "first resolve", r[0], "Ann")
	if r[0].Existed {
		t.Error("first resolve of alice: Existed, want a new mapping")
	}
	// Different candidates now: the stored mapping wins over any proposal.
	r = resolve(t, s, req(perm, "name", "alice", "Zoe"))
	want(t, "second resolve", r[0], "Ann")
	if !r[0].Existed {
		t.Error("second resolve of alice: not Existed (the Mapper caches such values on first sight)")
	}
	want(t, "lookup", lookup(t, s, req(perm, "name", "alice"))[0], "Ann")
	// The same key twice in one batch gets one mapping.
	r = resolve(t, s, req(perm, "name", "bob", "Cid", "Dan"), req(perm, "name", "bob", "Dan", "Cid"))
	want(t, "batch first", r[0], "Cid")
	want(t, "batch duplicate", r[1], "Cid")
	// Results come back in request order.
	r = resolve(t, s, req(perm, "name", "carol", "Eve"), req(perm, "name", "alice", "x"), req(perm, "name", "dave", "Fay"))
	want(t, "order 0", r[0], "Eve")
	want(t, "order 1", r[1], "Ann")
	want(t, "order 2", r[2], "Fay")
}

func testClash(t *testing.T, s mapping.Store) {
	want(t, "k1", resolve(t, s, req(perm, "name", "k1", "a", "b"))[0], "a")
	want(t, "k2 clashes on a", resolve(t, s, req(perm, "name", "k2", "a", "b"))[0], "b")
	want(t, "k3 finds every candidate taken", resolve(t, s, req(perm, "name", "k3", "a", "b"))[0], "")
	want(t, "k3 with further candidates", resolve(t, s, req(perm, "name", "k3", "c"))[0], "c")
	// Clashes inside one batch: the earlier request claims first.
	r := resolve(t, s, req(perm, "name", "k4", "d", "e"), req(perm, "name", "k5", "d", "e"), req(perm, "name", "k6", "d", "e"))
	want(t, "k4 in batch", r[0], "d")
	want(t, "k5 in batch", r[1], "e")
	want(t, "k6 in batch", r[2], "")
	want(t, "k6 not created", lookup(t, s, req(perm, "name", "k6"))[0], "")
	// An empty candidate list only looks.
	want(t, "k7 without candidates", resolve(t, s, req(perm, "name", "k7"))[0], "")
	want(t, "k1 without candidates", resolve(t, s, req(perm, "name", "k1"))[0], "a")
}

func testLookupDoesNotCreate(t *testing.T, s mapping.Store) {
	want(t, "lookup of a new key", lookup(t, s, req(perm, "name", "k1", "a"))[0], "")
	want(t, "lookup again", lookup(t, s, req(perm, "name", "k1", "a"))[0], "")
	// Nothing was claimed by the lookups: another key can take "a".
	want(t, "k2 takes a", resolve(t, s, req(perm, "name", "k2", "a"))[0], "a")
	want(t, "k1 still absent", lookup(t, s, req(perm, "name", "k1"))[0], "")
	want(t, "k2 absent in another domain", lookup(t, s, req(perm, "email", "k2"))[0], "")
	want(t, "k2 absent in another namespace", lookup(t, s, req(day1, "name", "k2"))[0], "")
}

func testIsolation(t *testing.T, s mapping.Store) {
	// One key and one candidate in four spaces: every space has its own claims.
	spaces := []struct {
		ns     mapping.Namespace
		domain string
	}{{perm, "name"}, {day1, "name"}, {run1, "name"}, {perm, "email"}}
	for _, sp := range spaces {
		want(t, fmt.Sprintf("%v %s", sp.ns, sp.domain), resolve(t, s, req(sp.ns, sp.domain, "k", "a"))[0], "a")
	}
	for i, sp := range spaces {
		other := fmt.Sprintf("other-%d", i)
		want(t, fmt.Sprintf("%v %s other value", sp.ns, sp.domain), resolve(t, s, req(sp.ns, sp.domain, other, "a", "b"+other))[0], "b"+other)
	}
	// A mapping made in one space is invisible in the others.
	want(t, "day2 sees nothing", lookup(t, s, req(day2, "name", "other-0"))[0], "")
	want(t, "perm email has its own", lookup(t, s, req(perm, "email", "other-0"))[0], "")
}

func testForget(t *testing.T, s mapping.Store) {
	for _, ns := range []mapping.Namespace{perm, day1, run1} {
		want(t, "setup "+ns.String(), resolve(t, s, req(ns, "name", "k", "a"))[0], "a")
	}
	want(t, "setup email", resolve(t, s, req(perm, "email", "k", "a"))[0], "a")
	want(t, "setup other key", resolve(t, s, req(perm, "name", "j", "b"))[0], "b")

	n, err := s.Forget(ctxBG, "name", key("k"))
	if err != nil {
		t.Fatalf("Forget: %v", err)
	}
	if n != 3 {
		t.Errorf("Forget removed %d mappings, want 3 (permanent, daily, run)", n)
	}
	for _, ns := range []mapping.Namespace{perm, day1, run1} {
		want(t, "forgotten in "+ns.String(), lookup(t, s, req(ns, "name", "k"))[0], "")
	}
	want(t, "other domain kept", lookup(t, s, req(perm, "email", "k"))[0], "a")
	want(t, "other key kept", lookup(t, s, req(perm, "name", "j"))[0], "b")
	// The replacement is free again.
	want(t, "released claim", resolve(t, s, req(perm, "name", "k2", "a"))[0], "a")
	want(t, "released claim daily", resolve(t, s, req(day1, "name", "k2", "a"))[0], "a")

	n, err = s.Forget(ctxBG, "name", key("k"))
	if err != nil || n != 0 {
		t.Errorf("second Forget = (%d, %v), want (0, nil)", n, err)
	}
	// Forgetting a key does not release a replacement that another key now holds.
	n, err = s.Forget(ctxBG, "name", key("never-mapped"))
	if err != nil || n != 0 {
		t.Errorf("Forget of an unknown key = (%d, %v), want (0, nil)", n, err)
	}
	want(t, "k2 keeps a", resolve(t, s, req(perm, "name", "k3", "a", "c"))[0], "c")
}

func testPurge(t *testing.T, s mapping.Store) {
	all := []mapping.Namespace{perm, day1, day2, run1}
	for _, ns := range all {
		want(t, "setup "+ns.String(), resolve(t, s, req(ns, "name", "k", "a"))[0], "a")
		want(t, "setup email "+ns.String(), resolve(t, s, req(ns, "email", "k", "a"))[0], "a")
	}
	present := func(stage string, wantPresent ...mapping.Namespace) {
		t.Helper()
		for _, ns := range all {
			v := ""
			for _, p := range wantPresent {
				if p.String() == ns.String() {
					v = "a"
				}
			}
			want(t, stage+" "+ns.String(), lookup(t, s, req(ns, "name", "k"))[0], v)
			want(t, stage+" email "+ns.String(), lookup(t, s, req(ns, "email", "k"))[0], v)
		}
	}
	purge := func(scope mapping.Scope, period string) {
		t.Helper()
		if err := s.Purge(ctxBG, scope, period); err != nil {
			t.Fatalf("Purge(%s, %q): %v", scope, period, err)
		}
	}
	purge(mapping.Daily, day1.Period)
	present("after purging one day", perm, day2, run1)
	// The purged namespace starts over: its claims are gone too.
	want(t, "day1 reuse", resolve(t, s, req(day1, "name", "k2", "a"))[0], "a")
	purge(mapping.Daily, "")
	present("after purging daily", perm, run1)
	purge(mapping.Run, "")
	present("after purging run", perm)
	purge(mapping.Permanent, "")
	present("after purging permanent")
}

// smallGen proposes candidates from a few hundred base words, then widens with
// numeric suffixes, as real name generators do: with many values, clashes on the
// base words are the rule, not the exception.
type smallGen struct{ words int }

func (g smallGen) Candidate(_ string, seed []byte, attempt int) string {
	h := binary.BigEndian.Uint64(seed[:8])
	base := fmt.Sprintf("w%04d", (h+uint64(attempt))%uint64(g.words))
	if attempt == 0 {
		return base
	}
	x := mix(binary.BigEndian.Uint64(seed[8:16]) + uint64(attempt))
	switch {
	case attempt < 4:
		return fmt.Sprintf("%s-%04d", base, x%10_000)
	case attempt < 20:
		return fmt.Sprintf("%s-%06d", base, x%1_000_000)
	default:
		return fmt.Sprintf("%s-%09d", base, x%1_000_000_000)
	}
}

// mix is splitmix64's finalizer: nearby inputs give unrelated outputs.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Generator returns the suite's generator: words base outputs widened by numeric
// suffixes. Benchmarks and backends' own tests use it too.
func Generator(words int) mapping.Generator { return smallGen{words: words} }

func testConcurrent(t *testing.T, s mapping.Store) {
	const (
		workers = 8
		values  = 2000
		batch   = 100
	)
	gen := smallGen{words: 300}
	keyer := mapping.NewKeyer(Secret)
	results := make([][]string, workers)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			order := rand.Perm(values)
			out := make([]string, values)
			for start := 0; start < values; start += batch {
				idx := order[start:min(start+batch, values)]
				// Ask with growing candidate windows, as the Mapper does, until all resolve.
				pending := idx
				for lo := 0; len(pending) > 0; lo += 8 {
					if lo > 400 {
						errs <- fmt.Errorf("worker %d: %d values unresolved after %d candidates", w, len(pending), lo)
						return
					}
					reqs := make([]mapping.Request, len(pending))
					for j, v := range pending {
						value := fmt.Sprintf("value-%d", v)
						seed := keyer.Seed(perm, "name", value)
						cands := make([]string, 8)
						for a := range cands {
							cands[a] = gen.Candidate(value, seed, lo+a)
						}
						reqs[j] = mapping.Request{NS: perm, Domain: "name", Key: keyer.Key("name", value), Candidates: cands}
					}
					res, err := s.Resolve(ctxBG, reqs)
					if err != nil {
						errs <- err
						return
					}
					var next []int
					for j, v := range pending {
						if res[j].OK {
							out[v] = res[j].Value
						} else {
							next = append(next, v)
						}
					}
					pending = next
				}
			}
			results[w] = out
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkAgree(t, results)
}

// checkAgree checks that every result set maps each value the same way and that no
// two values share a replacement.
func checkAgree(t *testing.T, results [][]string) {
	t.Helper()
	owner := make(map[string]int)
	for v, out := range results[0] {
		for w := 1; w < len(results); w++ {
			if results[w][v] != out {
				t.Fatalf("value %d: resolver 0 got %q, resolver %d got %q", v, out, w, results[w][v])
			}
		}
		if out == "" {
			t.Fatalf("value %d: no replacement", v)
		}
		if prev, dup := owner[out]; dup {
			t.Fatalf("values %d and %d share replacement %q", prev, v, out)
		}
		owner[out] = v
	}
}

func testExclusive(t *testing.T, url string) {
	s1, err := mapping.Open(ctxBG, url)
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}
	start := time.Now()
	s2, err := mapping.Open(ctxBG, url)
	if err == nil {
		_ = s2.Close()
		_ = s1.Close()
		t.Fatal("second Open of a store held open succeeded; want an error")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("second Open took %s to fail; want it to fail fast", d)
	}
	t.Logf("second Open failed as expected: %v", err)
	if err := s1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s3, err := mapping.Open(ctxBG, url)
	if err != nil {
		t.Fatalf("Open after the first holder closed: %v", err)
	}
	_ = s3.Close()
}

func testManyValues(t *testing.T, s mapping.Store, n int) {
	const batch = 5000
	m := mapping.NewMapper(s, Secret, mapping.MapperOptions{CacheSize: 16_384})
	gen := smallGen{words: 1000}
	owner := make(map[string]int32, n)
	items := make([]mapping.Item, 0, batch)
	for start := 0; start < n; start += batch {
		items = items[:0]
		for v := start; v < min(start+batch, n); v++ {
			items = append(items, mapping.Item{NS: perm, Domain: "name", Value: fmt.Sprintf("v%07d", v), Gen: gen})
		}
		if err := m.Resolve(ctxBG, items); err != nil {
			t.Fatalf("Resolve batch at %d: %v", start, err)
		}
		for i, it := range items {
			if it.Out == "" {
				t.Fatalf("value %d: no replacement", start+i)
			}
			if prev, dup := owner[it.Out]; dup {
				t.Fatalf("values %d and %d share replacement %q", prev, start+i, it.Out)
			}
			owner[it.Out] = int32(start + i)
		}
	}
	if len(owner) != n {
		t.Fatalf("%d values got %d distinct replacements", n, len(owner))
	}
	// A fresh Mapper (cold cache) reads the same mappings back from the store.
	fresh := mapping.NewMapper(s, Secret, mapping.MapperOptions{})
	items = items[:0]
	for v := 0; v < n; v += max(n/batch, 1) {
		items = append(items, mapping.Item{NS: perm, Domain: "name", Value: fmt.Sprintf("v%07d", v), Gen: gen})
	}
	if err := fresh.Resolve(ctxBG, items); err != nil {
		t.Fatalf("Resolve with a fresh Mapper: %v", err)
	}
	for _, it := range items {
		var v int
		fmt.Sscanf(it.Value, "v%d", &v)
		if got := owner[it.Out]; int(got) != v || it.Out == "" {
			t.Fatalf("value %d: a fresh Mapper got %q, which belongs to value %d", v, it.Out, got)
		}
	}
}

func testExpiry(t *testing.T, s mapping.Store) {
	ns := mapping.Namespace{Scope: mapping.Daily, Period: "expiry-" + time.Now().Format("150405.000"), Expires: time.Now().Add(1500 * time.Millisecond)}
	want(t, "resolve", resolve(t, s, req(ns, "name", "k", "a"))[0], "a")
	want(t, "lookup before expiry", lookup(t, s, req(ns, "name", "k"))[0], "a")
	want(t, "permanent unaffected setup", resolve(t, s, req(perm, "name", "k", "a"))[0], "a")

	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for lookup(t, s, req(ns, "name", "k"))[0].OK {
		if time.Now().After(deadline) {
			t.Fatalf("mapping still present %s after its namespace expired", time.Since(ns.Expires).Round(time.Millisecond))
		}
		<-tick.C
	}
	if early := time.Until(ns.Expires); early > 100*time.Millisecond {
		t.Errorf("mapping disappeared %s before its namespace expired", early)
	}
	// The claim expired with it; the same period starts over.
	again := ns
	again.Expires = time.Now().Add(time.Hour)
	want(t, "claim released by expiry", resolve(t, s, req(again, "name", "k2", "a"))[0], "a")
	want(t, "permanent unaffected", lookup(t, s, req(perm, "name", "k"))[0], "a")
}

func testClosed(t *testing.T, s mapping.Store) {
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Resolve(ctxBG, []mapping.Request{req(perm, "name", "k", "a")}); !errors.Is(err, mapping.ErrClosed) {
		t.Errorf("Resolve after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Lookup(ctxBG, []mapping.Request{req(perm, "name", "k")}); !errors.Is(err, mapping.ErrClosed) {
		t.Errorf("Lookup after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Forget(ctxBG, "name", key("k")); !errors.Is(err, mapping.ErrClosed) {
		t.Errorf("Forget after Close: %v, want ErrClosed", err)
	}
	if err := s.Purge(ctxBG, mapping.Run, ""); !errors.Is(err, mapping.ErrClosed) {
		t.Errorf("Purge after Close: %v, want ErrClosed", err)
	}
}
