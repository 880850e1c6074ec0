// Package gencache is a bounded map with generational eviction, the cache
// behind the mapping cache's shards and the hash rule's memo.
//
// Entries go into a young map; when it holds Limit entries it becomes the old
// map and the previous old map is dropped whole. A hit in the old map moves the
// entry back to the young one, so entries in use survive. That costs no
// per-entry bookkeeping on the hot path (a read-locked map lookup), unlike an
// LRU list, and bounds the map to 2 × Limit entries. Like an LRU it keeps
// nothing of a cycle of distinct keys larger than a generation: size Limit to
// the keys that recur.
package gencache

import "sync"

// Map is safe for concurrent use. The zero value is not usable; call New.
type Map[K comparable, V any] struct {
	mu         sync.RWMutex
	young, old map[K]V
	limit      int
}

// New returns a Map of at most 2 × limit entries (limit at least 1).
func New[K comparable, V any](limit int) *Map[K, V] {
	limit = max(limit, 1)
	return &Map[K, V]{young: make(map[K]V, min(limit, 1024)), limit: limit}
}

// Get returns k's value; a hit in the old generation moves it to the young one.
func (m *Map[K, V]) Get(k K) (V, bool) {
	m.mu.RLock()
	v, young := m.young[k]
	ok := young
	if !ok {
		v, ok = m.old[k]
	}
	m.mu.RUnlock()
	if ok && !young {
		m.Put(k, v)
	}
	return v, ok
}

// Put stores v under k, replacing an entry. The Map keeps k: it must not point
// into a buffer the caller reuses or one the Map should not pin.
func (m *Map[K, V]) Put(k K, v V) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.young[k]; !ok && len(m.young) >= m.limit {
		m.old = m.young
		m.young = make(map[K]V, min(m.limit, 1024))
	}
	m.young[k] = v
}

// DeleteFunc drops every entry whose key del reports.
func (m *Map[K, V]) DeleteFunc(del func(K) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, g := range []map[K]V{m.young, m.old} {
		for k := range g {
			if del(k) {
				delete(g, k)
			}
		}
	}
}

// Len returns the number of entries in both generations.
func (m *Map[K, V]) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.young) + len(m.old)
}
