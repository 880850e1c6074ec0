package cdc

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Normalized values. Every source converts its wire values to exactly these Go types,
// in its snapshot path and in its stream path alike, because consistent replacement
// keys on the value: a value that looked different in the snapshot than in the stream
// would get two different replacements.
//
//	SQL NULL / missing attribute  nil
//	boolean                        bool
//	signed integers                int64
//	unsigned integers              uint64
//	float, double                  float64
//	numeric / decimal              Decimal (exact text, no exponent, no trailing zeros kept beyond scale)
//	text, varchar, char, enum, uuid, inet, set    string
//	bytea, blob, binary            []byte
//	timestamp, datetime            time.Time in UTC, at the source's precision
//	date                           Date
//	time of day                    TimeOfDay
//	interval                       Interval
//	json, jsonb, documents         JSON (canonical: keys sorted, no insignificant space)
//	arrays                         []any of the above

// Decimal is an exact decimal number in plain notation ("-12.50").
type Decimal string

// Date is a calendar date, "2006-01-02".
type Date string

// TimeOfDay is a time of day without zone, "15:04:05" with optional fraction.
type TimeOfDay string

// Interval is a duration in the source's own text form (Postgres "1 day 02:00:00").
type Interval string

// JSON is a canonical JSON document: object keys sorted, no insignificant
// whitespace, numbers as written by the source.
type JSON []byte

// NormalizeJSON parses raw JSON text and returns its canonical form, so that a
// document read by a snapshot ("{"b": 1, "a": 2}") and the same document decoded from
// a binary log ("{"a":2,"b":1}") are identical bytes.
func NormalizeJSON(raw []byte) (JSON, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return MarshalJSON(v)
}

// ParseJSON decodes canonical JSON into Go values, keeping numbers as json.Number so
// that re-encoding does not change them.
func ParseJSON(j JSON) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalJSON encodes v canonically (encoding/json sorts map keys) without HTML
// escaping, which would otherwise turn "<" into "\u003c" and change the bytes.
func MarshalJSON(v any) (JSON, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return JSON(bytes.TrimRight(buf.Bytes(), "\n")), nil
}

// Canonical returns the text form of a normalized value that consistent replacement
// keys on. Equal logical values give equal text whichever source path produced them;
// the kind is not part of the text, so "42" the string and 42 the integer share a
// replacement within a domain (a customer id stored as text in one table and as an
// integer in another maps the same way).
func Canonical(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case int:
		return strconv.Itoa(x)
	case bool:
		return strconv.FormatBool(x)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatFloat(x, 'f', -1, 64)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case Decimal:
		return string(x)
	case Date:
		return string(x)
	case TimeOfDay:
		return string(x)
	case Interval:
		return string(x)
	case JSON:
		return string(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case json.Number:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}

// Describe names a value's type without showing its content, for error messages:
// logs and errors must never print production values.
func Describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return fmt.Sprintf("string(len %d)", len(x))
	case []byte:
		return fmt.Sprintf("bytes(len %d)", len(x))
	case JSON:
		return fmt.Sprintf("json(len %d)", len(x))
	default:
		return fmt.Sprintf("%T", v)
	}
}

// EncodeBytes renders binary data as text where a text-only store needs it.
func EncodeBytes(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
