package redis_test

import (
	"context"
	"fmt"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/understudy/understudy/mapping/mappingtest"
	"github.com/understudy/understudy/testenv"
)

// One worker sending batches of 1,000 new values: one round trip each.
func BenchmarkNewValues(b *testing.B) {
	s := open(b, testenv.Redis(b).URL(b))
	b.Cleanup(func() { _ = s.Close() })
	mappingtest.BenchmarkNewValues(b, s, 1000, 1)
}

// As BenchmarkNewValues, with a generator whose first candidate is nearly always
// free (e-mail addresses, UUIDs): one claim per value.
func BenchmarkNewWideValues(b *testing.B) {
	s := open(b, testenv.Redis(b).URL(b))
	b.Cleanup(func() { _ = s.Close() })
	mappingtest.BenchmarkNewWideValues(b, s, 1000, 1)
}

// Four workers with batches of 1,000: the client's hashing overlaps the server's
// scripts.
func BenchmarkNewValuesParallel(b *testing.B) {
	s := open(b, testenv.Redis(b).URL(b))
	b.Cleanup(func() { _ = s.Close() })
	mappingtest.BenchmarkNewValues(b, s, 1000, 4)
}

func BenchmarkCachedLookups(b *testing.B) {
	s := open(b, testenv.Redis(b).URL(b))
	b.Cleanup(func() { _ = s.Close() })
	mappingtest.BenchmarkCachedLookups(b, s)
}

// BenchmarkBaselineSetNX is the floor for BenchmarkNewValues from the same server:
// the two writes a new mapping needs (reverse claim SET NX, forward SET), for 1,000
// values per pipelined round trip, without keyed hashing, generators or a script.
func BenchmarkBaselineSetNX(b *testing.B) {
	opts, err := goredis.ParseURL(testenv.Redis(b).URL(b))
	if err != nil {
		b.Fatal(err)
	}
	c := goredis.NewClient(opts)
	b.Cleanup(func() { c.Close() })
	ctx := context.Background()
	const batch = 1000
	b.ResetTimer()
	for n := range b.N {
		p := c.Pipeline()
		for i := range batch {
			k := fmt.Sprintf("%d-%d", n, i)
			p.SetNX(ctx, "r:"+k, k, 0)
			p.Set(ctx, "f:"+k, k, 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*batch/b.Elapsed().Seconds(), "values/s")
}
