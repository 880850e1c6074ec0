package transform

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/mapping"
	"github.com/understudy/understudy/mapping/memory"
)

// mapResolver answers from a map without allocating, standing in for the
// Mapper's in-process cache on a warm path; unknown values get a cheap
// deterministic replacement and are remembered.
type mapResolver struct {
	m map[benchKey]string
}

type benchKey struct{ domain, value string }

func (r *mapResolver) Resolve(_ context.Context, items []mapping.Item) error {
	for i := range items {
		it := &items[i]
		k := benchKey{it.Domain, it.Value}
		out, ok := r.m[k]
		if !ok {
			out = it.Gen.Candidate(it.Value, []byte(it.Value), 0)
			r.m[k] = out
		}
		it.Out = out
	}
	return nil
}

var benchTable = cdc.Table{
	Name: "public.customers",
	Key:  []string{"id"},
	Columns: []cdc.Column{
		{Name: "id", Kind: cdc.KindInt}, {Name: "email", Kind: cdc.KindString}, {Name: "first_name", Kind: cdc.KindString},
		{Name: "last_name", Kind: cdc.KindString}, {Name: "tenant_id", Kind: cdc.KindInt}, {Name: "status", Kind: cdc.KindString},
		{Name: "created_at", Kind: cdc.KindTimestamp}, {Name: "score", Kind: cdc.KindFloat}, {Name: "active", Kind: cdc.KindBool},
		{Name: "country", Kind: cdc.KindString},
	},
}

func benchTransformer(b *testing.B) *Transformer {
	tr, err := New(Config{
		Secret: []byte("bench-secret"),
		Mapper: &mapResolver{m: map[benchKey]string{}},
		Rules: map[string]map[string]Rule{benchTable.Name: {
			"email":      {Action: Replace, Generator: GenEmail},
			"first_name": {Action: Replace, Generator: GenFirstName},
			"last_name":  {Action: Replace, Generator: GenLastName},
		}},
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tr.Plan(benchTable); err != nil {
		b.Fatal(err)
	}
	return tr
}

func benchRow(i int) cdc.Row {
	return cdc.Row{
		"id": int64(i), "email": "user" + strconv.Itoa(i) + "@corp.com", "first_name": "First" + strconv.Itoa(i),
		"last_name": "Last" + strconv.Itoa(i), "tenant_id": int64(i % 7), "status": "active",
		"created_at": time.Unix(int64(i), 0).UTC(), "score": float64(i) / 3, "active": i%2 == 0, "country": "DE",
	}
}

const benchBatch = 512

// benchWarm transforms the same batch of already-mapped rows over and over.
func benchWarm(b *testing.B, tr *Transformer) {
	rows := make([]cdc.Row, benchBatch)
	for i := range rows {
		rows[i] = benchRow(i)
	}
	if _, err := tr.Rows(context.Background(), benchTable.Name, rows); err != nil { // warm up
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for n < b.N {
		if _, err := tr.Rows(context.Background(), benchTable.Name, rows); err != nil {
			b.Fatal(err)
		}
		n += len(rows)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/row")
}

// benchUncached transforms batches whose values were never seen before.
func benchUncached(b *testing.B, tr *Transformer) {
	rows := make([]cdc.Row, benchBatch)
	b.ReportAllocs()
	b.ResetTimer()
	n, next := 0, 0
	for n < b.N {
		b.StopTimer()
		for i := range rows {
			rows[i] = benchRow(next)
			next++
		}
		b.StartTimer()
		if _, err := tr.Rows(context.Background(), benchTable.Name, rows); err != nil {
			b.Fatal(err)
		}
		n += len(rows)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/row")
}

// BenchmarkTransformRow: 10-column rows, 3 replaced columns, every value already
// mapped (warm cache), in snapshot batches of 512.
func BenchmarkTransformRow(b *testing.B) { benchWarm(b, benchTransformer(b)) }

// BenchmarkTransformRowUncached: every row carries values never seen before, so
// each one runs its generator (the resolver stands in for a store that accepts
// the first candidate).
func BenchmarkTransformRowUncached(b *testing.B) { benchUncached(b, benchTransformer(b)) }

// mapperTransformer is benchTransformer with the real Mapper (in-process cache in
// front of the memory store) instead of the map resolver: the warm path users get.
func mapperTransformer(b *testing.B) *Transformer {
	m := mapping.NewMapper(memory.New(), []byte("bench-secret"), mapping.MapperOptions{})
	tr, err := New(Config{
		Secret: []byte("bench-secret"),
		Mapper: m,
		Rules: map[string]map[string]Rule{benchTable.Name: {
			"email":      {Action: Replace, Generator: GenEmail},
			"first_name": {Action: Replace, Generator: GenFirstName},
			"last_name":  {Action: Replace, Generator: GenLastName},
		}},
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tr.Plan(benchTable); err != nil {
		b.Fatal(err)
	}
	return tr
}

// BenchmarkTransformRowMapperWarm: as BenchmarkTransformRow, through the real
// Mapper's cache.
func BenchmarkTransformRowMapperWarm(b *testing.B) { benchWarm(b, mapperTransformer(b)) }

// BenchmarkTransformRowMapperUncached: every value new, through the real Mapper
// (keyed hash, generator candidates, memory store claim).
func BenchmarkTransformRowMapperUncached(b *testing.B) { benchUncached(b, mapperTransformer(b)) }

// BenchmarkRowCopyBaseline is the floor the transform is measured against: only
// cloning each 10-column row, which any transform that must not mutate its input
// pays.
func BenchmarkRowCopyBaseline(b *testing.B) {
	rows := make([]cdc.Row, benchBatch)
	for i := range rows {
		rows[i] = benchRow(i)
	}
	out := make([]cdc.Row, benchBatch)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for n < b.N {
		for i, r := range rows {
			out[i] = r.Clone()
		}
		n += len(rows)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
}
