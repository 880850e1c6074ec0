package transform

import (
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// rng is a small deterministic generator (splitmix64). Generators draw from it so
// that a candidate depends only on (seed, attempt): no global randomness, the
// same candidate in every process.
//
// A non-cryptographic mix is enough here because the seed already is a keyed
// HMAC of the value (mapping.Keyer.Seed); knowing a candidate reveals nothing the
// seed did not.
type rng struct{ s uint64 }

// newRNG returns the stream of one candidate: attempt n of seed.
func newRNG(seed []byte, attempt int) rng {
	return rng{s: xxhash.Sum64(seed) ^ (uint64(attempt)+1)*0xD1B54A32D192ED03}
}

// seedBase is a per-seed offset used by the sequential phase of the
// format-preserving generators (see digitSpace.pick).
func seedBase(seed []byte) uint64 { return xxhash.Sum64(seed) * 0x9E3779B97F4A7C15 }

func (r *rng) next() uint64 {
	r.s += 0x9E3779B97F4A7C15
	z := r.s
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// intn returns a uniform int in [0, n) (Lemire's multiply-shift; the bias is
// below 2^-32 for the dictionary sizes used here).
func (r *rng) intn(n int) int {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int(hi)
}
