// Package registry maps URL schemes to backend constructors. Sources, sinks,
// mapping stores and checkpoint stores each keep one Registry; backends register in
// init(), and cmd/understudy imports the backends a build ships.
package registry

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Registry holds the constructors of one kind of backend, by URL scheme.
type Registry[F any] struct {
	kind string // "source", "target", "mapping store", "checkpoint store"
	mu   sync.RWMutex
	m    map[string]F
}

// New returns an empty registry; kind names the backends in messages.
func New[F any](kind string) *Registry[F] {
	return &Registry[F]{kind: kind, m: map[string]F{}}
}

// Register adds f under scheme (case-insensitive). Registering a scheme twice
// panics: two backends claiming one scheme is a build mistake.
func (r *Registry[F]) Register(scheme string, f F) {
	scheme = strings.ToLower(scheme)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[scheme]; dup {
		panic(r.kind + ": scheme registered twice: " + scheme)
	}
	r.m[scheme] = f
}

// Schemes returns the registered schemes, sorted.
func (r *Registry[F]) Schemes() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s := make([]string, 0, len(r.m))
	for k := range r.m {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// Lookup parses rawURL and returns the constructor registered for its scheme.
// Errors never repeat a password the URL may hold, and list the schemes this
// build has.
func (r *Registry[F]) Lookup(rawURL string) (F, *url.URL, error) {
	var zero F
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the raw URL, which may hold a password: say only why.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return zero, nil, fmt.Errorf("%s URL: %w", r.kind, err)
	}
	if u.Scheme == "" {
		return zero, nil, fmt.Errorf("%s URL %q has no scheme; use one of %s", r.kind, u.Redacted(), r.known())
	}
	u.Scheme = strings.ToLower(u.Scheme)
	r.mu.RLock()
	f, ok := r.m[u.Scheme]
	r.mu.RUnlock()
	if !ok {
		return zero, nil, fmt.Errorf("%s:// %ss are not available in this build of understudy (available: %s)", u.Scheme, r.kind, r.known())
	}
	return f, u, nil
}

func (r *Registry[F]) known() string {
	s := r.Schemes()
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
