package transform

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/understudy/understudy/mapping"
)

// fakeResolver is a deterministic, injective in-memory Resolver: the first value
// to claim a candidate in (namespace, domain) wins, like a real store.
type fakeResolver struct {
	mu      sync.Mutex
	fwd     map[fakeKey]string
	claimed map[fakeKey]bool // key.value holds the replacement
	calls   int
}

type fakeKey struct {
	scope  mapping.Scope
	period string
	domain string
	value  string
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{fwd: map[fakeKey]string{}, claimed: map[fakeKey]bool{}}
}

func (f *fakeResolver) Resolve(_ context.Context, items []mapping.Item) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	for i := range items {
		it := &items[i]
		k := fakeKey{it.NS.Scope, it.NS.Period, it.Domain, it.Value}
		if out, ok := f.fwd[k]; ok {
			it.Out = out
			continue
		}
		seed := sha256.Sum256([]byte(fmt.Sprintf("%s|%s|%s|%s", it.NS.Scope, it.NS.Period, it.Domain, it.Value)))
		found := false
		for a := 0; a < 2000; a++ {
			c := it.Gen.Candidate(it.Value, seed[:], a)
			ck := fakeKey{it.NS.Scope, it.NS.Period, it.Domain, c}
			if !f.claimed[ck] {
				f.claimed[ck] = true
				f.fwd[k] = c
				it.Out = c
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("no free candidate in domain %s", it.Domain)
		}
	}
	return nil
}
