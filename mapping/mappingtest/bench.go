package mappingtest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/understudy/understudy/mapping"
)

// BenchmarkNewValues measures how many never-seen values per second a Mapper maps
// through s: every Resolve call carries batch new values, from workers goroutines
// at once. The generator is the suite's 1,000-word one, so most values clash on
// their first candidate, as they would with a real name dictionary. Reports
// "values/s".
func BenchmarkNewValues(b *testing.B, s mapping.Store, batch, workers int) {
	benchmarkNewValues(b, s, batch, workers, smallGen{words: 1000})
}

// BenchmarkNewWideValues is BenchmarkNewValues with a generator whose first
// candidate is nearly always free, as with e-mail addresses or UUIDs: the common
// case of a bulk load, where a new value costs one claim.
func BenchmarkNewWideValues(b *testing.B, s mapping.Store, batch, workers int) {
	benchmarkNewValues(b, s, batch, workers, smallGen{words: 1 << 40})
}

func benchmarkNewValues(b *testing.B, s mapping.Store, batch, workers int, gen mapping.Generator) {
	m := mapping.NewMapper(s, Secret, mapping.MapperOptions{})
	var next atomic.Int64 // batch counter shared by the workers
	run := fmt.Sprintf("%p", b)
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			items := make([]mapping.Item, batch)
			for {
				n := next.Add(1) - 1
				if n >= int64(b.N) {
					return
				}
				for i := range items {
					items[i] = mapping.Item{NS: perm, Domain: "bench", Value: fmt.Sprintf("%s-%d-%d", run, n, i), Gen: gen}
				}
				if err := m.Resolve(context.Background(), items); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)*float64(batch)/b.Elapsed().Seconds(), "values/s")
}

// BenchmarkCachedLookups measures values per second answered from a warm Mapper
// cache, from parallel goroutines, in batches of 100 items. Reports "values/s".
func BenchmarkCachedLookups(b *testing.B, s mapping.Store) {
	const (
		distinct = 100_000
		batch    = 100
	)
	m := mapping.NewMapper(s, Secret, mapping.MapperOptions{})
	gen := smallGen{words: 1000}
	values := make([]mapping.Item, distinct)
	for i := range values {
		values[i] = mapping.Item{NS: perm, Domain: "bench-cached", Value: fmt.Sprintf("cached-%d", i), Gen: gen}
	}
	for start := 0; start < distinct; start += 5000 {
		if err := m.Resolve(context.Background(), values[start:start+5000]); err != nil {
			b.Fatal(err)
		}
	}
	_, misses0 := m.Stats()
	var total atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		items := make([]mapping.Item, batch)
		var off, n int
		for pb.Next() {
			copy(items, values[off:off+batch])
			off = (off + batch) % distinct
			if err := m.Resolve(context.Background(), items); err != nil {
				b.Error(err)
				return
			}
			n += batch
		}
		total.Add(int64(n))
	})
	b.StopTimer()
	_, misses := m.Stats()
	if misses != misses0 {
		b.Errorf("%d cache misses during the cached benchmark", misses-misses0)
	}
	b.ReportMetric(float64(total.Load())/b.Elapsed().Seconds(), "values/s")
}
