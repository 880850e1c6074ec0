package transform

import (
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/mapping"
)

// intMax returns the largest magnitude an integer column's type holds, so that a
// hashed or format-preserving replacement — same digit count as the input — is
// redrawn until it fits: a 10-digit integer (int4) drawn as 10 random digits
// exceeds 2147483647 most of the time, and the target would reject the row. 0
// means the column is not an integer column.
func intMax(c cdc.Column) uint64 {
	if c.Kind != cdc.KindInt && c.Kind != cdc.KindUint {
		return 0
	}
	t := strings.ToLower(c.Type)
	unsigned := c.Kind == cdc.KindUint || strings.Contains(t, "unsigned")
	pick := func(signed, uns uint64) uint64 {
		if unsigned {
			return uns
		}
		return signed
	}
	switch {
	case strings.Contains(t, "tinyint"):
		return pick(math.MaxInt8, math.MaxUint8)
	case strings.Contains(t, "smallint"), t == "int2":
		return pick(math.MaxInt16, math.MaxUint16)
	case strings.Contains(t, "mediumint"):
		return pick(1<<23-1, 1<<24-1)
	case strings.Contains(t, "bigint"), t == "int8":
		return pick(math.MaxInt64, math.MaxUint64)
	case strings.HasPrefix(t, "int"), strings.Contains(t, "integer"), t == "serial":
		return pick(math.MaxInt32, math.MaxUint32)
	}
	return pick(math.MaxInt64, math.MaxUint64)
}

// fitsInt reports whether s is a decimal integer whose magnitude is at most max.
func fitsInt(s string, max uint64) bool {
	s = strings.TrimPrefix(s, "-")
	n, err := strconv.ParseUint(s, 10, 64)
	return err == nil && n <= max
}

// foldInt brings a decimal integer into [-max, max] deterministically (the last
// resort after redraws): its magnitude modulo max+1, sign kept.
func foldInt(s string, max uint64) string {
	neg := strings.HasPrefix(s, "-")
	n, ok := new(big.Int).SetString(strings.TrimPrefix(s, "-"), 10)
	if !ok {
		return s // not a number: the caller's conversion reports it
	}
	m := new(big.Int).SetUint64(max)
	n.Mod(n, m.Add(m, big.NewInt(1)))
	out := n.String()
	if neg && n.Sign() != 0 {
		out = "-" + out
	}
	return out
}

// redraws bounds how many draws a bounded hash or generator tries before folding.
const redraws = 64

// boundedGen keeps a numeric generator's candidates within an integer column's
// range. Each attempt draws from its own block of the inner generator's attempts,
// so distinct attempts still give distinct candidates, and the mapping store
// claims the final string, so replacements stay injective.
type boundedGen struct {
	inner mapping.Generator
	max   uint64
}

func (g boundedGen) Candidate(value string, seed []byte, attempt int) string {
	var out string
	for j := range redraws {
		out = g.inner.Candidate(value, seed, attempt*redraws+j)
		if fitsInt(out, g.max) {
			return out
		}
	}
	return foldInt(out, g.max)
}

// boundedHash renders the keyed hash of value and redraws (another draw of the
// same layout) until it fits max.
func boundedHash(k *keyedHash, value string, max uint64) string {
	out := k.render(value)
	for j := 1; j < redraws && !fitsInt(out, max); j++ {
		out = k.renderSalted(value, j)
	}
	if fitsInt(out, max) {
		return out
	}
	return foldInt(out, max)
}
