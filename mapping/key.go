package mapping

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
)

// seedLabel derives the seed secret from the mapping secret, so that a seed can
// never equal a stored key even though both are HMACs of the same value.
const seedLabel = "understudy/mapping/seed/v1"

// Keyer computes mapping keys and generator seeds from the secret. Every process
// of a deployment must use the same secret: keys and seeds, and therefore
// replacements, depend on it.
//
// Inputs are length-prefixed, so ("ab", "c") and ("a", "bc") never share a key.
type Keyer struct {
	keys  sync.Pool // of hash.Hash, HMAC-SHA256 under the secret
	seeds sync.Pool // of hash.Hash, HMAC-SHA256 under the derived seed secret
}

// NewKeyer returns a Keyer for secret. It panics on an empty secret: an unkeyed
// hash of a production value can be reversed by guessing, and config validation
// refuses an empty secret long before this point.
func NewKeyer(secret []byte) *Keyer {
	if len(secret) == 0 {
		panic("mapping: empty secret")
	}
	key := append([]byte(nil), secret...)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(seedLabel))
	seedKey := m.Sum(nil)
	return &Keyer{
		keys:  sync.Pool{New: func() any { return hmac.New(sha256.New, key) }},
		seeds: sync.Pool{New: func() any { return hmac.New(sha256.New, seedKey) }},
	}
}

// Key returns HMAC-SHA256(secret, len(domain) || domain || value): the stored key of
// value in domain. It does not depend on the namespace, so Forget can find a value's
// mappings in every namespace from one key.
func (k *Keyer) Key(domain, value string) Key {
	h := k.keys.Get().(hash.Hash)
	h.Reset()
	writeLP(h, domain)
	h.Write([]byte(value))
	var out Key
	h.Sum(out[:0])
	k.keys.Put(h)
	return out
}

// Seed returns the bytes a Generator derives its candidates from: an HMAC under a
// secret derived from the mapping secret, over the namespace, domain and value.
// Because the namespace is included, a daily namespace gives a value a different
// replacement each day.
func (k *Keyer) Seed(ns Namespace, domain, value string) []byte {
	h := k.seeds.Get().(hash.Hash)
	h.Reset()
	writeLP(h, string(ns.Scope))
	writeLP(h, ns.Period)
	writeLP(h, domain)
	h.Write([]byte(value))
	out := h.Sum(make([]byte, 0, sha256.Size))
	k.seeds.Put(h)
	return out
}

// writeLP writes s preceded by its length, so concatenated fields stay unambiguous.
func writeLP(h hash.Hash, s string) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
	h.Write([]byte(s))
}
