package mapping_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/understudy/understudy/mapping"
	"github.com/understudy/understudy/mapping/mappingtest"
	"github.com/understudy/understudy/mapping/memory"
)

var ctx = context.Background()

// recorder is a store that remembers what the Mapper asked of it.
type recorder struct {
	mapping.Store
	mu    sync.Mutex
	calls [][]mapping.Request
}

func (r *recorder) Resolve(ctx context.Context, reqs []mapping.Request) ([]mapping.Resolution, error) {
	r.mu.Lock()
	r.calls = append(r.calls, append([]mapping.Request(nil), reqs...))
	r.mu.Unlock()
	return r.Store.Resolve(ctx, reqs)
}

func (r *recorder) reset() []([]mapping.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

func newMapper(t *testing.T, opts mapping.MapperOptions) (*mapping.Mapper, *recorder) {
	rec := &recorder{Store: memory.New()}
	t.Cleanup(func() { _ = rec.Close() })
	return mapping.NewMapper(rec, []byte("test secret"), opts), rec
}

// fixedGen proposes "<prefix>-<attempt>" whatever the value: every value competes
// for the same candidates, so the n-th value needs n attempts.
type fixedGen struct{ prefix string }

func (g fixedGen) Candidate(_ string, _ []byte, attempt int) string {
	return fmt.Sprintf("%s-%d", g.prefix, attempt)
}

func items(ns mapping.Namespace, gen mapping.Generator, values ...string) []mapping.Item {
	out := make([]mapping.Item, len(values))
	for i, v := range values {
		out[i] = mapping.Item{NS: ns, Domain: "name", Value: v, Gen: gen}
	}
	return out
}

func TestWarmValuesSkipTheStore(t *testing.T) {
	m, rec := newMapper(t, mapping.MapperOptions{})
	gen := mappingtest.Generator(1000)
	first := items(mapping.PermanentNamespace(), gen, "alice", "bob", "alice", "carol", "bob")
	if err := m.Resolve(ctx, first); err != nil {
		t.Fatal(err)
	}
	calls := rec.reset()
	if len(calls) != 1 || len(calls[0]) != 3 {
		t.Fatalf("store calls: %d, first with %d requests; want 1 call with the 3 distinct values", len(calls), len(calls[0]))
	}
	if first[0].Out != first[2].Out || first[1].Out != first[4].Out || first[0].Out == first[1].Out {
		t.Fatalf("inconsistent outputs: %q", []string{first[0].Out, first[1].Out, first[2].Out, first[3].Out, first[4].Out})
	}
	for _, r := range calls[0] {
		if len(r.Candidates) != mapping.DefaultFirstCandidates {
			t.Errorf("first round proposed %d candidates, want %d", len(r.Candidates), mapping.DefaultFirstCandidates)
		}
	}

	// Seen once, the values are not cached yet (see doorkeeper): the second
	// resolution reads them again and admits them.
	second := items(mapping.PermanentNamespace(), gen, "carol", "alice")
	if err := m.Resolve(ctx, second); err != nil {
		t.Fatal(err)
	}
	if calls := rec.reset(); len(calls) != 1 || len(calls[0]) != 2 {
		t.Errorf("second sight: store calls %v; want one with both values", calls)
	}
	again := items(mapping.PermanentNamespace(), nil, "carol", "alice") // no generator needed when cached
	if err := m.Resolve(ctx, again); err != nil {
		t.Fatal(err)
	}
	if calls := rec.reset(); len(calls) != 0 {
		t.Errorf("warm values called the store %d times", len(calls))
	}
	if again[0].Out != first[3].Out || again[1].Out != first[0].Out || second[0].Out != first[3].Out {
		t.Errorf("cached outputs differ from the first resolution")
	}
	hits, misses := m.Stats()
	if hits != 2 || misses != 7 {
		t.Errorf("Stats() = %d hits, %d misses; want 2, 7", hits, misses)
	}
}

// TestOneOffValuesStayOutOfTheCache: values resolved once (a bulk load's e-mail
// addresses) must not fill the cache; with CacheOnFirstSight they do.
func TestOneOffValuesStayOutOfTheCache(t *testing.T) {
	gen := mappingtest.Generator(100_000)
	var values []string
	for i := range 2000 {
		values = append(values, fmt.Sprintf("user%d@example.com", i))
	}
	for _, firstSight := range []bool{false, true} {
		m, rec := newMapper(t, mapping.MapperOptions{CacheOnFirstSight: firstSight})
		if err := m.Resolve(ctx, items(mapping.PermanentNamespace(), gen, values...)); err != nil {
			t.Fatal(err)
		}
		rec.reset()
		if err := m.Resolve(ctx, items(mapping.PermanentNamespace(), gen, values...)); err != nil {
			t.Fatal(err)
		}
		read := 0
		for _, c := range rec.reset() {
			read += len(c)
		}
		if want := map[bool]int{false: len(values), true: 0}[firstSight]; read != want {
			t.Errorf("CacheOnFirstSight %v: the second pass read %d values from the store, want %d", firstSight, read, want)
		}
	}
}

func TestClashesAskForMoreCandidates(t *testing.T) {
	m, rec := newMapper(t, mapping.MapperOptions{})
	gen := fixedGen{"x"}
	// Value i gets "x-i": each clashes with all earlier ones.
	for i := range 30 {
		it := items(mapping.PermanentNamespace(), gen, fmt.Sprintf("v%d", i))
		if err := m.Resolve(ctx, it); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("x-%d", i); it[0].Out != want {
			t.Fatalf("value %d got %q, want %q", i, it[0].Out, want)
		}
	}
	windows := func() string {
		var w []string
		for _, c := range rec.reset() {
			w = append(w, fmt.Sprintf("%s..%s", c[0].Candidates[0], c[0].Candidates[len(c[0].Candidates)-1]))
		}
		return strings.Join(w, " ")
	}
	// A Mapper that has not seen the clashes proposes growing windows.
	fresh := mapping.NewMapper(rec, []byte("test secret"), mapping.MapperOptions{})
	rec.reset()
	it := items(mapping.PermanentNamespace(), gen, "v30")
	if err := fresh.Resolve(ctx, it); err != nil {
		t.Fatal(err)
	}
	if it[0].Out != "x-30" {
		t.Errorf("v30 got %q, want x-30", it[0].Out)
	}
	if got, want := windows(), "x-0..x-3 x-4..x-19 x-20..x-99"; got != want {
		t.Errorf("candidate windows %q, want %q", got, want)
	}
	// The Mapper that saw x-0…x-28 fail while mapping v29 skips them: one round.
	// (Winners are not remembered: x-29, v29's own, is proposed and fails.)
	it = items(mapping.PermanentNamespace(), gen, "v31")
	if err := m.Resolve(ctx, it); err != nil {
		t.Fatal(err)
	}
	if it[0].Out != "x-31" {
		t.Errorf("v31 got %q, want x-31", it[0].Out)
	}
	if got, want := windows(), "x-29..x-32"; got != want {
		t.Errorf("candidate windows of a Mapper that saw the clashes: %q, want %q", got, want)
	}
}

func TestGivesUpWithoutShowingTheValue(t *testing.T) {
	m, _ := newMapper(t, mapping.MapperOptions{MaxCandidates: 50})
	constant := constGen("only")
	if err := m.Resolve(ctx, items(mapping.PermanentNamespace(), constant, "first")); err != nil {
		t.Fatal(err)
	}
	err := m.Resolve(ctx, items(mapping.PermanentNamespace(), constant, "secret-person@example.com"))
	if err == nil {
		t.Fatal("Resolve found a replacement in an exhausted generator")
	}
	if strings.Contains(err.Error(), "secret-person") {
		t.Errorf("error shows the production value: %v", err)
	}
	if !strings.Contains(err.Error(), `domain "name"`) || !strings.Contains(err.Error(), "50 candidates") {
		t.Errorf("error does not say which domain and how many candidates: %v", err)
	}
	t.Log(err)
}

type constGen string

func (g constGen) Candidate(string, []byte, int) string { return string(g) }

func TestMissingGenerator(t *testing.T) {
	m, _ := newMapper(t, mapping.MapperOptions{})
	if err := m.Resolve(ctx, items(mapping.PermanentNamespace(), nil, "x")); err == nil {
		t.Fatal("Resolve without a generator succeeded")
	}
}

func TestForgetEvictsTheCache(t *testing.T) {
	m, rec := newMapper(t, mapping.MapperOptions{CacheOnFirstSight: true})
	gen := fixedGen{"x"}
	perm, day := mapping.PermanentNamespace(), mapping.DailyNamespace(time.Now())
	for _, ns := range []mapping.Namespace{perm, day} {
		if err := m.Resolve(ctx, items(ns, gen, "alice", "bob")); err != nil {
			t.Fatal(err)
		}
	}
	n, err := m.Forget(ctx, "name", "alice")
	if err != nil || n != 2 {
		t.Fatalf("Forget = (%d, %v), want (2, nil)", n, err)
	}
	rec.reset()
	// carol now takes alice's released x-0; alice comes back as a new value.
	it := items(perm, gen, "carol", "alice", "bob")
	if err := m.Resolve(ctx, it); err != nil {
		t.Fatal(err)
	}
	if it[0].Out != "x-0" || it[1].Out != "x-2" || it[2].Out != "x-1" {
		t.Errorf("after Forget: carol %q, alice %q, bob %q; want x-0, x-2, x-1", it[0].Out, it[1].Out, it[2].Out)
	}
	if calls := rec.reset(); len(calls) == 0 || len(calls[0]) != 2 {
		t.Errorf("after Forget the store saw %v; want carol and alice, not cached bob", calls)
	}
}

func TestPurgeEvictsTheCache(t *testing.T) {
	m, rec := newMapper(t, mapping.MapperOptions{CacheOnFirstSight: true})
	gen := fixedGen{"x"}
	run1, run2 := mapping.RunNamespace("r1"), mapping.RunNamespace("r2")
	for _, ns := range []mapping.Namespace{run1, run2, mapping.PermanentNamespace()} {
		if err := m.Resolve(ctx, items(ns, gen, "alice")); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Purge(ctx, mapping.Run, "r1"); err != nil {
		t.Fatal(err)
	}
	rec.reset()
	for _, ns := range []mapping.Namespace{run1, run2, mapping.PermanentNamespace()} {
		if err := m.Resolve(ctx, items(ns, gen, "alice")); err != nil {
			t.Fatal(err)
		}
	}
	if calls := rec.reset(); len(calls) != 1 || calls[0][0].NS.Period != "r1" {
		t.Errorf("after purging r1 the store saw %d calls; want one, for r1", len(calls))
	}
}

func TestCacheEntriesExpireWithTheirNamespace(t *testing.T) {
	m, rec := newMapper(t, mapping.MapperOptions{CacheOnFirstSight: true})
	ns := mapping.Namespace{Scope: mapping.Daily, Period: "short", Expires: time.Now().Add(time.Hour)}
	gone := mapping.Namespace{Scope: mapping.Daily, Period: "gone", Expires: time.Now().Add(-time.Second)}
	gen := fixedGen{"x"}
	for range 2 {
		if err := m.Resolve(ctx, append(items(ns, gen, "alice"), items(gone, gen, "alice")...)); err != nil {
			t.Fatal(err)
		}
	}
	calls := rec.reset()
	if len(calls) != 2 || len(calls[1]) != 1 || calls[1][0].NS.Period != "gone" {
		t.Errorf("store calls %d; want the expired namespace's value to miss the cache every time", len(calls))
	}
	// The period started afresh with a later expiry: cached again after one miss.
	renewed := gone
	renewed.Expires = time.Now().Add(time.Hour)
	for range 3 {
		if err := m.Resolve(ctx, items(renewed, gen, "alice")); err != nil {
			t.Fatal(err)
		}
	}
	if calls := rec.reset(); len(calls) != 1 {
		t.Errorf("renewed namespace: %d store calls for 3 resolves, want 1", len(calls))
	}
}

func TestConcurrentMappersAgree(t *testing.T) {
	store := memory.New()
	defer store.Close()
	gen := mappingtest.Generator(100)
	const workers, values = 4, 3000
	out := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Two Mappers, as in two pipelines of one process; workers share each.
			m := mapping.NewMapper(store, []byte("test secret"), mapping.MapperOptions{CacheSize: 500})
			res := make([]string, values)
			for start := 0; start < values; start += 250 {
				var batch []mapping.Item
				for v := start; v < start+250; v++ {
					batch = append(batch, mapping.Item{NS: mapping.PermanentNamespace(), Domain: "name", Value: fmt.Sprint((v*(w+1))%values + 0), Gen: gen})
				}
				if err := m.Resolve(ctx, batch); err != nil {
					t.Error(err)
					return
				}
				for _, it := range batch {
					var v int
					fmt.Sscan(it.Value, &v)
					res[v] = it.Out
				}
			}
			out[w] = res
		}()
	}
	wg.Wait()
	seen := make(map[string]int)
	for v := range values {
		if out[0][v] == "" {
			continue // not every worker's walk covers every value
		}
		for w := range workers {
			if out[w][v] != "" && out[w][v] != out[0][v] {
				t.Fatalf("value %d: worker 0 %q, worker %d %q", v, out[0][v], w, out[w][v])
			}
		}
		if prev, dup := seen[out[0][v]]; dup {
			t.Fatalf("values %d and %d share %q", prev, v, out[0][v])
		}
		seen[out[0][v]] = v
	}
}

// uniqueGen proposes "<value>#<attempt>": a value's first candidate is always free.
type uniqueGen struct{}

func (uniqueGen) Candidate(value string, _ []byte, attempt int) string {
	return fmt.Sprintf("%s#%d", value, attempt)
}

func TestFirstWindowAdaptsToTheDomain(t *testing.T) {
	m, rec := newMapper(t, mapping.MapperOptions{})
	batch := func(gen mapping.Generator, prefix string, n int) []mapping.Item {
		vals := make([]string, n)
		for i := range vals {
			vals[i] = fmt.Sprintf("%s%d", prefix, i)
		}
		return items(mapping.PermanentNamespace(), gen, vals...)
	}
	widths := func() []int {
		var w []int
		for _, c := range rec.reset() {
			w = append(w, len(c[0].Candidates))
		}
		return w
	}
	// Every first candidate is free: after one batch the domain proposes one.
	for round, want := range []int{mapping.DefaultFirstCandidates, 1, 1} {
		if err := m.Resolve(ctx, batch(uniqueGen{}, fmt.Sprintf("u%d-", round), 100)); err != nil {
			t.Fatal(err)
		}
		if got := widths(); len(got) != 1 || got[0] != want {
			t.Fatalf("batch %d: store calls proposing %v candidates, want one call proposing %d", round, got, want)
		}
	}
	// The domain gets crowded (all values compete for x-0, x-1, …): the narrow
	// window misses, a second round resolves them, and the window widens again.
	gen := fixedGen{"x"}
	if err := m.Resolve(ctx, batch(gen, "c0-", 40)); err != nil {
		t.Fatal(err)
	}
	if got := widths(); len(got) < 2 || got[0] != 1 {
		t.Fatalf("crowded batch: windows %v, want a first call of 1 and further rounds", got)
	}
	if err := m.Resolve(ctx, batch(gen, "c1-", 40)); err != nil {
		t.Fatal(err)
	}
	if got := widths(); got[0] != mapping.DefaultFirstCandidates {
		t.Fatalf("after a crowded batch: first window %d, want %d", got[0], mapping.DefaultFirstCandidates)
	}
	// Other domains keep their own window.
	it := []mapping.Item{{NS: mapping.PermanentNamespace(), Domain: "other", Value: "v", Gen: uniqueGen{}}}
	if err := m.Resolve(ctx, it); err != nil {
		t.Fatal(err)
	}
	if got := widths(); got[0] != mapping.DefaultFirstCandidates {
		t.Fatalf("new domain: first window %d, want %d", got[0], mapping.DefaultFirstCandidates)
	}
}

func TestOneValueInTwoNamespacesIsTwoMappings(t *testing.T) {
	m, rec := newMapper(t, mapping.MapperOptions{})
	gen := fixedGen{"x"}
	perm, run := mapping.PermanentNamespace(), mapping.RunNamespace("r1")
	batch := []mapping.Item{
		{NS: perm, Domain: "name", Value: "alice", Gen: gen},
		{NS: run, Domain: "name", Value: "alice", Gen: gen},
		{NS: perm, Domain: "name", Value: "alice", Gen: gen},
		{NS: run, Domain: "name", Value: "alice", Gen: gen},
	}
	if err := m.Resolve(ctx, batch); err != nil {
		t.Fatal(err)
	}
	calls := rec.reset()
	if len(calls) != 1 || len(calls[0]) != 2 || calls[0][0].NS != perm || calls[0][1].NS != run {
		t.Fatalf("store calls %v: want one call with alice once per namespace", calls)
	}
	if batch[0].Out != batch[2].Out || batch[1].Out != batch[3].Out {
		t.Errorf("repeats of a value got other replacements: %q", []string{batch[0].Out, batch[1].Out, batch[2].Out, batch[3].Out})
	}
}

// TestMappedValuesAreCachedOnFirstSight: a value the store already held (a
// stream after the load that mapped it, another process) recurs, so the
// doorkeeper does not make it wait for a second read.
func TestMappedValuesAreCachedOnFirstSight(t *testing.T) {
	store := memory.New()
	t.Cleanup(func() { _ = store.Close() })
	gen := mappingtest.Generator(1000)
	loader := mapping.NewMapper(store, []byte("test secret"), mapping.MapperOptions{})
	if err := loader.Resolve(ctx, items(mapping.PermanentNamespace(), gen, "alice", "bob")); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Store: store}
	m := mapping.NewMapper(rec, []byte("test secret"), mapping.MapperOptions{})
	for range 2 {
		if err := m.Resolve(ctx, items(mapping.PermanentNamespace(), gen, "alice", "bob", "carol")); err != nil {
			t.Fatal(err)
		}
	}
	calls := rec.reset()
	if len(calls) != 2 || len(calls[1]) != 1 {
		t.Fatalf("store calls %v; want the second pass to read only carol, new on the first", calls)
	}
}
