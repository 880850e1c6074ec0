// Package memory is a mapping store in process memory, for tests and for the run
// scope of a single process. Its mappings die with the process.
package memory

import (
	"context"
	"net/url"
	"sync"
	"time"

	"github.com/understudy/understudy/mapping"
)

func init() {
	mapping.Register("memory", func(_ context.Context, _ *url.URL) (mapping.Store, error) {
		return New(), nil
	})
}

var _ mapping.Store = (*Store)(nil)

// Store keeps mappings in maps under one mutex. One lock for everything keeps
// get-or-create trivially atomic; a batch holds it once.
type Store struct {
	mu     sync.Mutex
	closed bool
	spaces map[nsID]*space
}

// nsID identifies a namespace; Expires is not part of its identity.
type nsID struct {
	scope  mapping.Scope
	period string
}

type space struct {
	expires time.Time // zero = never
	domains map[string]*domain
}

type domain struct {
	fwd map[mapping.Key]string // key → replacement
	rev map[string]mapping.Key // replacement → key: the claim
}

// New returns an empty store.
func New() *Store {
	return &Store{spaces: make(map[nsID]*space)}
}

// Resolve implements mapping.Store: get-or-create for every request under one lock.
func (s *Store) Resolve(_ context.Context, reqs []mapping.Request) ([]mapping.Resolution, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, mapping.ErrClosed
	}
	now := time.Now()
	out := make([]mapping.Resolution, len(reqs))
	for i, r := range reqs {
		d := s.domain(r.NS, r.Domain, now, true)
		if v, ok := d.fwd[r.Key]; ok {
			out[i] = mapping.Resolution{Value: v, OK: true, Existed: true}
			continue
		}
		for _, c := range r.Candidates {
			if _, taken := d.rev[c]; taken {
				continue
			}
			d.rev[c] = r.Key
			d.fwd[r.Key] = c
			out[i] = mapping.Resolution{Value: c, OK: true}
			break
		}
	}
	return out, nil
}

// Lookup implements mapping.Store. An expired namespace is absent.
func (s *Store) Lookup(_ context.Context, reqs []mapping.Request) ([]mapping.Resolution, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, mapping.ErrClosed
	}
	now := time.Now()
	out := make([]mapping.Resolution, len(reqs))
	for i, r := range reqs {
		if d := s.domain(r.NS, r.Domain, now, false); d != nil {
			v, ok := d.fwd[r.Key]
			out[i] = mapping.Resolution{Value: v, OK: ok}
		}
	}
	return out, nil
}

// domain returns the maps of (ns, name), dropping the namespace first when it has
// expired. With create it makes missing maps; without, it returns nil for them.
func (s *Store) domain(ns mapping.Namespace, name string, now time.Time, create bool) *domain {
	id := nsID{ns.Scope, ns.Period}
	sp := s.spaces[id]
	if sp != nil && !sp.expires.IsZero() && !sp.expires.After(now) {
		delete(s.spaces, id)
		sp = nil
	}
	if sp == nil {
		if !create {
			return nil
		}
		sp = &space{expires: ns.Expires, domains: make(map[string]*domain)}
		s.spaces[id] = sp
	}
	if create && !sp.expires.IsZero() && ns.Expires.After(sp.expires) {
		sp.expires = ns.Expires // a later expiry extends the namespace
	}
	d := sp.domains[name]
	if d == nil {
		if !create {
			return nil
		}
		d = &domain{fwd: make(map[mapping.Key]string), rev: make(map[string]mapping.Key)}
		sp.domains[name] = d
	}
	return d
}

// Forget implements mapping.Store.
func (s *Store) Forget(_ context.Context, domain string, key mapping.Key) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, mapping.ErrClosed
	}
	n := 0
	now := time.Now()
	for id, sp := range s.spaces {
		if !sp.expires.IsZero() && !sp.expires.After(now) {
			delete(s.spaces, id) // expired: absent, not counted
			continue
		}
		d := sp.domains[domain]
		if d == nil {
			continue
		}
		v, ok := d.fwd[key]
		if !ok {
			continue
		}
		delete(d.fwd, key)
		if d.rev[v] == key {
			delete(d.rev, v)
		}
		n++
	}
	return n, nil
}

// Purge implements mapping.Store.
func (s *Store) Purge(_ context.Context, scope mapping.Scope, period string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return mapping.ErrClosed
	}
	for id := range s.spaces {
		if id.scope == scope && (period == "" || id.period == period) {
			delete(s.spaces, id)
		}
	}
	return nil
}

// Close implements mapping.Store; the mappings are dropped.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.spaces = nil
	return nil
}
