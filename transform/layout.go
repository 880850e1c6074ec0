package transform

import (
	"math/bits"
	"unicode"
	"unicode/utf8"
)

// layout is the shape of a value for the format-preserving generators and the
// keyed hash: the output starts as a copy of the input in which every letter and
// digit becomes a slot; punctuation, spaces and symbols stay where they are.
//
// Each slot draws from a contiguous range of characters [lo, lo+n): digits stay
// digits, upper-case letters stay upper case, lower-case stay lower case.
// Non-ASCII letters and digits become ASCII ones of the same class, so the rune
// length is kept but the byte length may shrink.
type layout struct {
	out   []byte
	slots []slot
}

type slot struct {
	pos int  // index into out
	lo  byte // first character of the range
	n   byte // size of the range
}

// layoutOf builds the layout of value. With freeLead false, the first digit of a
// run of two or more digits keeps its zero-ness: a non-zero leading digit stays
// non-zero (so an integer keeps its length and "007" keeps its zero), which makes
// the map shape-preserving and therefore a bijection within each shape.
func layoutOf(value string, freeLead bool) layout {
	l := layout{out: make([]byte, 0, len(value))}
	prevDigit := false
	for i, r := range value {
		switch {
		case r < utf8.RuneSelf && isDigit(byte(r)) || r >= utf8.RuneSelf && unicode.IsDigit(r):
			lead := !prevDigit && i+1 < len(value) && isDigit(value[i+1])
			s := slot{pos: len(l.out), lo: '0', n: 10}
			if lead && !freeLead {
				if r == '0' {
					s.n = 0 // fixed zero: keeps "0…" shapes apart from the rest
				} else {
					s.lo, s.n = '1', 9
				}
			}
			l.out = append(l.out, '0')
			if s.n > 0 {
				l.slots = append(l.slots, s)
			}
			prevDigit = true
			continue
		case r >= 'A' && r <= 'Z' || r >= utf8.RuneSelf && unicode.IsUpper(r):
			l.slots = append(l.slots, slot{pos: len(l.out), lo: 'A', n: 26})
			l.out = append(l.out, 'A')
		case r >= 'a' && r <= 'z' || r >= utf8.RuneSelf && unicode.IsLetter(r):
			l.slots = append(l.slots, slot{pos: len(l.out), lo: 'a', n: 26})
			l.out = append(l.out, 'a')
		default:
			l.out = utf8.AppendRune(l.out, r)
		}
		prevDigit = false
	}
	return l
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// size returns the number of distinct fillings, and false when it exceeds uint64.
func (l *layout) size() (uint64, bool) {
	p := uint64(1)
	for _, s := range l.slots {
		hi, lo := bits.Mul64(p, uint64(s.n))
		if hi != 0 {
			return 0, false
		}
		p = lo
	}
	return p, true
}

// fillRandom fills every slot from r.
func (l *layout) fillRandom(r *rng) {
	for _, s := range l.slots {
		l.out[s.pos] = s.lo + byte(r.intn(int(s.n)))
	}
}

// fillIndex fills the slots with the mixed-radix digits of idx (idx < size).
func (l *layout) fillIndex(idx uint64) {
	for i := len(l.slots) - 1; i >= 0; i-- {
		s := l.slots[i]
		l.out[s.pos] = s.lo + byte(idx%uint64(s.n))
		idx /= uint64(s.n)
	}
}

// Phases of the format-preserving generators: random candidates first (they
// spread well and rarely clash), then, from seqAttempt on, a walk through the
// whole space starting at a per-seed offset. The walk visits every filling once,
// so a caller that keeps asking finds a free value whenever one exists — the
// shape-preserving map is a bijection within each shape, so one always does.
const seqAttempt = 24

// candidate returns attempt's filling of l, avoiding the input itself during the
// random phase (a replacement equal to the production value would leak it).
func (l *layout) candidate(value string, seed []byte, attempt int) string {
	size, fits := l.size()
	if size <= 1 && fits {
		return string(l.out)
	}
	if attempt < seqAttempt || !fits {
		r := newRNG(seed, attempt)
		for try := 0; try < 8; try++ {
			l.fillRandom(&r)
			if string(l.out) != value {
				break
			}
		}
		return string(l.out)
	}
	l.fillIndex((seedBase(seed) + uint64(attempt-seqAttempt)) % size)
	return string(l.out)
}
