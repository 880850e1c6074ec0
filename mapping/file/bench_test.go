package file_test

import (
	"path/filepath"
	"testing"

	"github.com/understudy/understudy/mapping/file"
	"github.com/understudy/understudy/mapping/mappingtest"
)

func openBench(b *testing.B) *file.Store {
	s, err := file.Open(filepath.Join(b.TempDir(), "mappings.db"), file.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// One worker sending batches of 1,000 new values: one fsynced batch each.
func BenchmarkNewValues(b *testing.B) {
	mappingtest.BenchmarkNewValues(b, openBench(b), 1000, 1)
}

// As BenchmarkNewValues, with a generator whose first candidate is nearly always
// free (e-mail addresses, UUIDs).
func BenchmarkNewWideValues(b *testing.B) {
	mappingtest.BenchmarkNewWideValues(b, openBench(b), 1000, 1)
}

// Four workers: their batches are merged into group commits.
func BenchmarkNewValuesParallel(b *testing.B) {
	mappingtest.BenchmarkNewValues(b, openBench(b), 1000, 4)
}

func BenchmarkCachedLookups(b *testing.B) {
	mappingtest.BenchmarkCachedLookups(b, openBench(b))
}

func BenchmarkNewValuesBatch5000(b *testing.B) {
	mappingtest.BenchmarkNewValues(b, openBench(b), 5000, 1)
}

// Sixteen workers: group commit merges their batches into larger transactions.
func BenchmarkNewValuesParallel16(b *testing.B) {
	mappingtest.BenchmarkNewValues(b, openBench(b), 1000, 16)
}
