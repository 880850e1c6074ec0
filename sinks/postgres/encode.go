package postgres

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/understudy/understudy/cdc"
)

// Values travel to Postgres in their *text* form, as untyped parameters or COPY
// text fields, so the server parses each with the target column's own input
// function. That handles enums, domains, arrays and extension types without the
// sink knowing their OIDs, and rejects (rather than truncates) a value too long
// for its column.

// encodeText renders a normalized value (cdc/value.go) as Postgres input text.
// ok is false for NULL.
func encodeText(v any) (s string, ok bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, true
	case bool:
		if x {
			return "t", true
		}
		return "f", true
	case int64:
		return strconv.FormatInt(x, 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case int:
		return strconv.Itoa(x), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case float64:
		return formatFloat(x), true
	case float32:
		return formatFloat(float64(x)), true
	case cdc.Decimal:
		return string(x), true
	case cdc.Date:
		return string(x), true
	case cdc.TimeOfDay:
		return string(x), true
	case cdc.Interval:
		return string(x), true
	case cdc.JSON:
		return string(x), true
	case json.Number:
		return x.String(), true
	case []byte:
		return `\x` + hex.EncodeToString(x), true
	case time.Time:
		return formatTimestamp(x), true
	case []any:
		var b strings.Builder
		writeArray(&b, x)
		return b.String(), true
	case map[string]any:
		j, err := cdc.MarshalJSON(x)
		if err != nil {
			return "", false
		}
		return string(j), true
	}
	return fmt.Sprint(v), true
}

func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// formatTimestamp writes UTC with an explicit +00 offset: a timestamptz column
// reads the instant, a timestamp column (decoded as UTC wall time) ignores it.
func formatTimestamp(t time.Time) string {
	t = t.UTC()
	y := t.Year()
	bc := ""
	if y <= 0 {
		// ISO year 0 is 1 BC.
		t = t.AddDate(1-2*y, 0, 0)
		bc = " BC"
	}
	return t.Format("2006-01-02 15:04:05.999999") + "+00" + bc
}

// writeArray renders []any as an array literal, quoting every element so that
// delimiters, braces and the word NULL inside values stay data.
func writeArray(b *strings.Builder, a []any) {
	b.WriteByte('{')
	for i, e := range a {
		if i > 0 {
			b.WriteByte(',')
		}
		if sub, ok := e.([]any); ok {
			writeArray(b, sub)
			continue
		}
		s, ok := encodeText(e)
		if !ok {
			b.WriteString("NULL")
			continue
		}
		b.WriteByte('"')
		for j := 0; j < len(s); j++ {
			if s[j] == '"' || s[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(s[j])
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
}

// copyField appends v as one field of COPY's text format.
func copyField(buf []byte, v any) []byte {
	s, ok := encodeText(v)
	if !ok {
		return append(buf, `\N`...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			buf = append(buf, `\\`...)
		case '\n':
			buf = append(buf, `\n`...)
		case '\r':
			buf = append(buf, `\r`...)
		case '\t':
			buf = append(buf, `\t`...)
		default:
			buf = append(buf, c)
		}
	}
	return buf
}
