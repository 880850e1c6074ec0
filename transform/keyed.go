package transform

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/internal/gencache"
)

// Labels separate the keys derived from the one secret, so a keyed hash can never
// equal a date-shift seed or a mapping key even for the same domain and value.
const (
	hashLabel      = "understudy/transform/hash/v1"
	dateShiftLabel = "understudy/transform/date_shift/v1"
)

// keyedHash is HMAC-SHA256 under a key derived from (secret, label, domain). It
// is safe for concurrent use.
type keyedHash struct {
	pool sync.Pool // of hash.Hash
	memo *gencache.Map[string, string]
}

// memo remembers the renders of short values (keyedHash.memo). A hash rule
// runs on every change of a row, and the same value recurs in every update of
// it: the HMAC and the layout draw cost ~1.6 µs, about 8% of a busy Postgres
// stream's CPU, where a map lookup costs a tenth of that. At most 2 × memoSize
// entries of at most memoMaxLen bytes (~25 MB per rule at worst) stay; a
// generation of 131,072 values holds the distinct values of the rows a stream
// keeps updating (see internal/gencache on cycles larger than that).
const (
	memoSize   = 1 << 17
	memoMaxLen = 64
)

func newKeyedHash(secret []byte, label, domain string) *keyedHash {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write([]byte(domain))
	key := m.Sum(nil)
	return &keyedHash{pool: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}, memo: gencache.New[string, string](memoSize)}
}

// sum64 returns the first 8 bytes of the HMAC of value.
func (k *keyedHash) sum64(value string) uint64 {
	h := k.pool.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(value))
	var buf [sha256.Size]byte
	sum := h.Sum(buf[:0])
	k.pool.Put(h)
	return binary.LittleEndian.Uint64(sum)
}

// render returns the keyed hash of value drawn in value's layout: same length,
// digits for digits, letters for letters in the same case, everything else kept.
// It is deterministic and needs no mapping store, but unlike a replacement it is
// not injective (two values may, rarely, share a hash).
func (k *keyedHash) render(value string) string {
	if len(value) > memoMaxLen {
		return k.draw(value, k.sum64(value))
	}
	if out, ok := k.memo.Get(value); ok {
		return out
	}
	out := k.draw(value, k.sum64(value))
	k.memo.Put(strings.Clone(value), out)
	return out
}

// renderSalted is another deterministic draw of value's layout (the n-th), for
// redrawing a hash that does not fit its column.
func (k *keyedHash) renderSalted(value string, n int) string {
	return k.draw(value, k.sum64(value+"\x00"+strconv.Itoa(n)))
}

func (k *keyedHash) draw(value string, seed uint64) string {
	l := layoutOf(value, false)
	r := rng{s: seed}
	l.fillRandom(&r)
	return string(l.out)
}

// dateShifter moves dates by a whole number of days in [-maxDays, -1] ∪ [1,
// maxDays] chosen by HMAC of the entity's value, so every date of one entity moves
// by the same amount and intervals between them survive.
type dateShifter struct {
	key     *keyedHash
	maxDays int
}

// days returns the shift for an entity (its canonical value).
func (d *dateShifter) days(entity string) int {
	h := d.key.sum64(entity)
	n := 1 + int(h%uint64(d.maxDays))
	if h>>63 == 1 {
		n = -n
	}
	return n
}

// Layouts of date strings that date_shift recognises, tried in order. A value is
// written back in the layout it was read in.
var dateLayouts = []string{
	"2006-01-02",
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
}

// shift moves v by days. It handles cdc.Date, time.Time and strings in one of
// dateLayouts; ok is false for a value it cannot read (a MySQL zero date, free
// text), which the caller decides about.
func shiftValue(v any, days int) (out any, ok bool) {
	switch x := v.(type) {
	case time.Time:
		return x.AddDate(0, 0, days), true
	case cdc.Date:
		t, err := time.Parse("2006-01-02", string(x))
		if err != nil {
			return v, false
		}
		return cdc.Date(t.AddDate(0, 0, days).Format("2006-01-02")), true
	case string:
		s, ok := shiftString(x, days)
		return s, ok
	case []byte:
		s, ok := shiftString(string(x), days)
		return []byte(s), ok
	}
	return v, false
}

func shiftString(s string, days int) (string, bool) {
	for _, layout := range dateLayouts {
		t, err := time.Parse(layout, s)
		if err != nil {
			continue
		}
		out := t.AddDate(0, 0, days).Format(layout)
		// Layouts with optional fractions may print a different fraction width
		// than the input had; keep the input's width so only the date changes.
		if len(out) != len(s) {
			if fixed, ok := sameWidthFraction(s, out); ok {
				out = fixed
			}
		}
		return out, true
	}
	return s, false
}

// sameWidthFraction pads out's fractional seconds with zeros to the width of
// in's ("…:05.120" printed as "…:05.12").
func sameWidthFraction(in, out string) (string, bool) {
	ip, op := fracSpan(in), fracSpan(out)
	if ip[0] < 0 {
		return out, false
	}
	iw := ip[1] - ip[0]
	ow := 0
	if op[0] >= 0 {
		ow = op[1] - op[0]
	}
	if ow >= iw {
		return out, false
	}
	pad := make([]byte, iw-ow)
	for i := range pad {
		pad[i] = '0'
	}
	at := op[1]
	frac := ""
	if op[0] < 0 { // no fraction printed at all: insert ".000"
		at = secondsEnd(out)
		if at < 0 {
			return out, false
		}
		frac = "."
	}
	return out[:at] + frac + string(pad) + out[at:], true
}

// fracSpan returns the [start, end) of the fraction digits after "HH:MM:SS.", or
// {-1, -1}.
func fracSpan(s string) [2]int {
	at := secondsEnd(s)
	if at < 0 || at >= len(s) || s[at] != '.' {
		return [2]int{-1, -1}
	}
	e := at + 1
	for e < len(s) && isDigit(s[e]) {
		e++
	}
	return [2]int{at + 1, e}
}

// secondsEnd returns the index just past "HH:MM:SS" in a date-time string.
func secondsEnd(s string) int {
	if len(s) < 19 {
		return -1
	}
	return 19
}
