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
	keys  sync.Pool // of *keyHash, HMAC-SHA256 under the secret
	seeds sync.Pool // of *keyHash, HMAC-SHA256 under the derived seed secret
}

// keyHash is a reusable HMAC with a scratch buffer: the fields of one input are
// laid out in buf and hashed in one Write, which costs no allocation per call
// (a Write per field converted each string to bytes on the heap).
type keyHash struct {
	h   hash.Hash
	buf []byte
	out [sha256.Size]byte // Sum's destination, which would escape from the stack
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
		keys:  sync.Pool{New: func() any { return &keyHash{h: hmac.New(sha256.New, key)} }},
		seeds: sync.Pool{New: func() any { return &keyHash{h: hmac.New(sha256.New, seedKey)} }},
	}
}

// sum returns the HMAC of kh.buf into out and returns kh to pool. Very long
// values do not stay pinned in the pool's buffer.
func (kh *keyHash) sum(pool *sync.Pool, out *[sha256.Size]byte) {
	kh.h.Reset()
	kh.h.Write(kh.buf)
	kh.h.Sum(kh.out[:0])
	*out = kh.out
	if cap(kh.buf) > 64<<10 {
		kh.buf = nil
	}
	pool.Put(kh)
}

// Key returns HMAC-SHA256(secret, len(domain) || domain || value): the stored key of
// value in domain. It does not depend on the namespace, so Forget can find a value's
// mappings in every namespace from one key.
func (k *Keyer) Key(domain, value string) Key {
	kh := k.keys.Get().(*keyHash)
	kh.buf = append(appendLP(kh.buf[:0], domain), value...)
	var out Key
	kh.sum(&k.keys, (*[sha256.Size]byte)(&out))
	return out
}

// Seed returns the bytes a Generator derives its candidates from: an HMAC under a
// secret derived from the mapping secret, over the namespace, domain and value.
// Because the namespace is included, a daily namespace gives a value a different
// replacement each day.
func (k *Keyer) Seed(ns Namespace, domain, value string) []byte {
	out := new([sha256.Size]byte)
	k.seedTo(out, ns, domain, value)
	return out[:]
}

// seedTo is Seed into out.
func (k *Keyer) seedTo(out *[sha256.Size]byte, ns Namespace, domain, value string) {
	kh := k.seeds.Get().(*keyHash)
	b := appendLP(kh.buf[:0], string(ns.Scope))
	b = appendLP(b, ns.Period)
	b = appendLP(b, domain)
	kh.buf = append(b, value...)
	kh.sum(&k.seeds, out)
}

// appendLP appends s preceded by its length, so concatenated fields stay
// unambiguous.
func appendLP(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}
