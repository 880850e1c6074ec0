package file

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/understudy/understudy/mapping"
)

// Expired namespaces are removed from the store when it is opened, not only
// hidden: their registry entry and their mappings are deleted.
func TestExpiredNamespacesDroppedOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mappings.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Already past: the namespace is written, then must go at the next Open.
	soon := mapping.Namespace{Scope: mapping.Daily, Period: "soon", Expires: time.Now().Add(-time.Second)}
	_, err = s.Resolve(context.Background(), []mapping.Request{
		{NS: soon, Domain: "d", Key: mapping.Key{1}, Candidates: []string{"a"}},
		{NS: mapping.PermanentNamespace(), Domain: "d", Key: mapping.Key{1}, Candidates: []string{"a"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	names, spaces := contents(t, path)
	if len(names) != 1 || names[0] != "permanent/" {
		t.Errorf("namespaces in the store after reopening: %q, want only permanent/", names)
	}
	if len(spaces) != 1 {
		t.Errorf("mappings of %d namespaces in the store after reopening, want 1: %v", len(spaces), spaces)
	}
}

// The periodic sweep drops an expired namespace while the store stays open.
func TestSweepDropsExpired(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "mappings.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ns := mapping.Namespace{Scope: mapping.Daily, Period: "p", Expires: time.Now().Add(50 * time.Millisecond)}
	if _, err := s.Resolve(context.Background(), []mapping.Request{{NS: ns, Domain: "d", Key: mapping.Key{1}, Candidates: []string{"a"}}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := s.do(s.sweep); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.reg[ns.String()]; ok {
		t.Error("expired namespace still registered after a sweep")
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixMapping}, UpperBound: []byte{prefixMapping + 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if it.First() {
		t.Errorf("mapping key %q left after the sweep", it.Key())
	}
}

// contents opens the closed store at path directly and returns its registered
// namespaces and the ids of the namespaces that have mapping keys.
func contents(t *testing.T, path string) (names []string, spaces map[uint64]int) {
	t.Helper()
	db, err := pebble.Open(path, &pebble.Options{ReadOnly: true, Comparer: comparer, Logger: logger{path}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	spaces = make(map[uint64]int)
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		switch k[0] {
		case prefixRegistry:
			names = append(names, string(k[1:]))
		case prefixMapping:
			spaces[binary.BigEndian.Uint64(k[1:9])]++
		}
	}
	return names, spaces
}

// A replacement released by Forget is free again even after a clash put its claim
// in the claimed cache.
func TestForgetReleasesCachedClaim(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "mappings.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	perm := mapping.PermanentNamespace()
	resolve := func(key byte, cands ...string) string {
		t.Helper()
		res, err := s.Resolve(ctx, []mapping.Request{{NS: perm, Domain: "d", Key: mapping.Key{key}, Candidates: cands}})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Value
	}
	if got := resolve(1, "a"); got != "a" {
		t.Fatalf("key 1 got %q, want a", got)
	}
	if got := resolve(2, "a", "b"); got != "b" { // reads the claim on a: cached
		t.Fatalf("key 2 got %q, want b", got)
	}
	if n, err := s.Forget(ctx, "d", mapping.Key{1}); err != nil || n != 1 {
		t.Fatalf("Forget = %d, %v", n, err)
	}
	if got := resolve(3, "a", "c"); got != "a" {
		t.Errorf("key 3 got %q after a was released, want a", got)
	}
}
