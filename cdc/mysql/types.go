package mysql

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/encoding/charmap"

	"github.com/understudy/understudy/cdc"
)

// ColumnType is what the decoder needs to know about one column, parsed from its
// COLUMN_TYPE text ("int(10) unsigned", "enum('a','b')", "decimal(12,2)") and Kind.
// The snapshot, the stream and the MySQL sink's reader all decode through it, so a
// value is the same Go value whichever path produced it.
type ColumnType struct {
	Data     string // data type, lowercase: "int", "varchar", "enum", "json", …
	Kind     cdc.Kind
	Unsigned bool
	Length   int      // binary(n): n, for the padding the binlog strips
	Labels   []string // enum and set labels, in definition order
	// Charset is "latin1" for latin1 columns as the binlog carries them (raw
	// column bytes), converted to UTF-8; empty for values read over a utf8mb4
	// connection, which the server already converted.
	Charset string
}

// ParseColumnType parses a column's COLUMN_TYPE text. kind is the column's Kind
// when already known (a sink reading a table), or KindUnknown to derive it.
func ParseColumnType(typ string, kind cdc.Kind) ColumnType {
	t := strings.ToLower(strings.TrimSpace(typ))
	ct := ColumnType{}
	data := t
	if i := strings.IndexAny(data, "( "); i >= 0 {
		data = data[:i]
	}
	ct.Data = data
	ct.Unsigned = strings.Contains(t[len(data):], "unsigned")
	if data == "enum" || data == "set" {
		ct.Labels = parseLabels(typ[strings.IndexByte(typ, '(')+1 : strings.LastIndexByte(typ, ')')])
	}
	if data == "binary" {
		if open, close := strings.IndexByte(t, '('), strings.IndexByte(t, ')'); open > 0 && close > open {
			ct.Length, _ = strconv.Atoi(t[open+1 : close])
		}
	}
	ct.Kind = kind
	if kind == cdc.KindUnknown {
		ct.Kind = kindOf(data, ct.Unsigned)
	}
	return ct
}

// kindOf maps a MySQL data type to the normalized kind of its values.
func kindOf(data string, unsigned bool) cdc.Kind {
	switch data {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
		if unsigned {
			return cdc.KindUint
		}
		return cdc.KindInt
	case "year":
		return cdc.KindInt
	case "bit":
		return cdc.KindUint
	case "decimal", "numeric", "dec", "fixed":
		return cdc.KindDecimal
	case "float", "double", "real":
		return cdc.KindFloat
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob",
		"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
		"multipolygon", "geometrycollection":
		return cdc.KindBytes
	case "date":
		return cdc.KindDate
	case "datetime", "timestamp":
		return cdc.KindTimestamp
	case "time":
		return cdc.KindTime
	case "json":
		return cdc.KindJSON
	}
	return cdc.KindString // char, varchar, text types, enum, set, inet6, uuid
}

// parseLabels splits "'a','b,c','it”s'" into its labels.
func parseLabels(s string) []string {
	var out []string
	var cur strings.Builder
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case !in && c == '\'':
			in = true
			cur.Reset()
		case in && c == '\'' && i+1 < len(s) && s[i+1] == '\'':
			cur.WriteByte('\'')
			i++
		case in && c == '\'':
			in = false
			out = append(out, cur.String())
		case in && c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case in:
			cur.WriteByte(c)
		}
	}
	return out
}

// Decode converts a value as a driver or the binlog delivers it into its normalized
// Go value (see cdc/value.go). It accepts the binary protocol's values (int64,
// uint64, float32, float64, []byte text) and go-mysql's row event values (int8…int64,
// float32, string, []byte, enum index, set bitmask, bit int64), so that the
// snapshot and the stream give identical values.
func (ct ColumnType) Decode(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch ct.Kind {
	case cdc.KindBool:
		n, err := toInt(v)
		if err != nil {
			return nil, err
		}
		return n != 0, nil
	case cdc.KindInt:
		return toInt(v)
	case cdc.KindUint:
		if ct.Data == "bit" {
			return toBits(v)
		}
		return toUint(v, ct.Data)
	case cdc.KindFloat:
		switch x := v.(type) {
		case float32:
			return float64(x), nil
		case float64:
			if ct.Data == "float" {
				return float64(float32(x)), nil
			}
			return x, nil
		}
		s, err := toText(v)
		if err != nil {
			return nil, err
		}
		bits := 64
		if ct.Data == "float" {
			bits = 32
		}
		f, err := strconv.ParseFloat(s, bits)
		if err != nil {
			return nil, fmt.Errorf("%s value is not a number", ct.Data)
		}
		return f, nil
	case cdc.KindDecimal:
		s, err := toText(v)
		return cdc.Decimal(s), err
	case cdc.KindBytes:
		var b []byte
		switch x := v.(type) {
		case []byte:
			b = make([]byte, len(x)) // never nil: an empty value is not NULL
			copy(b, x)
		case string:
			b = []byte(x)
		default:
			return nil, fmt.Errorf("%s value arrived as %T", ct.Data, v)
		}
		if ct.Data == "binary" && len(b) < ct.Length {
			// The binlog strips binary(n)'s trailing zero padding; SELECT keeps it.
			b = append(b, make([]byte, ct.Length-len(b))...)
		}
		return b, nil
	case cdc.KindDate:
		s, err := toText(v)
		return cdc.Date(s), err
	case cdc.KindTimestamp:
		if t, ok := v.(time.Time); ok {
			// The binlog reader parses DATETIME/TIMESTAMP from 1970 on (ParseTime);
			// earlier and zero dates still arrive as text.
			return t.UTC(), nil
		}
		s, err := toText(v)
		if err != nil {
			return nil, err
		}
		return parseDatetime(s)
	case cdc.KindTime:
		s, err := toText(v)
		if err != nil {
			return nil, err
		}
		return cdc.TimeOfDay(trimFraction(s)), nil
	case cdc.KindJSON:
		var raw []byte
		switch x := v.(type) {
		case []byte:
			raw = x
		case string:
			raw = []byte(x)
		default:
			return nil, fmt.Errorf("json value arrived as %T", v)
		}
		if ct.Charset == "latin1" {
			raw = []byte(latin1(raw))
		}
		if len(raw) == 0 {
			return cdc.JSON("null"), nil
		}
		return cdc.NormalizeJSON(raw)
	}
	// Strings: text, enum, set and the rest.
	switch ct.Data {
	case "enum":
		if n, ok := asInt(v); ok { // binlog: 1-based index, 0 is the '' error value
			if n == 0 {
				return "", nil
			}
			if n < 1 || int(n) > len(ct.Labels) {
				return nil, fmt.Errorf("enum index %d outside its %d labels", n, len(ct.Labels))
			}
			return ct.Labels[n-1], nil
		}
	case "set":
		if n, ok := asInt(v); ok { // binlog: bitmask over the labels
			var parts []string
			for i, l := range ct.Labels {
				if uint64(n)&(1<<uint(i)) != 0 {
					parts = append(parts, l)
				}
			}
			return strings.Join(parts, ","), nil
		}
	}
	switch x := v.(type) {
	case string:
		if ct.Charset == "latin1" {
			return latin1([]byte(x)), nil
		}
		return x, nil
	case []byte:
		if ct.Charset == "latin1" {
			return latin1(x), nil
		}
		return string(x), nil
	}
	return fmt.Sprint(v), nil
}

// DecodeText decodes a value read with the text protocol (nil is NULL). Floats
// read that way may be rounded by the server; readers use the binary protocol.
func (ct ColumnType) DecodeText(raw []byte) (any, error) {
	if raw == nil {
		return nil, nil
	}
	return ct.Decode(raw)
}

// latin1 decodes MySQL's latin1 (Windows-1252) bytes, as the binlog carries them.
func latin1(b []byte) string {
	s, err := charmap.Windows1252.NewDecoder().Bytes(b)
	if err != nil {
		return string(b)
	}
	return string(s)
}

func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case int:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), true
	}
	return 0, false
}

func toInt(v any) (int64, error) {
	if n, ok := asInt(v); ok {
		return n, nil
	}
	s, err := toText(v)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("integer value does not parse")
	}
	return n, nil
}

// toUint reads an unsigned column. Row events carry unsigned columns as the signed
// Go type of their width (no signedness metadata without binlog_row_metadata=FULL),
// so the bits are reinterpreted at that width.
func toUint(v any, data string) (uint64, error) {
	switch x := v.(type) {
	case int8:
		return uint64(uint8(x)), nil
	case int16:
		return uint64(uint16(x)), nil
	case int32:
		if data == "mediumint" {
			return uint64(uint32(x) & 0xFFFFFF), nil
		}
		return uint64(uint32(x)), nil
	case int64:
		if x < 0 && data != "bigint" {
			return 0, fmt.Errorf("negative value in unsigned %s", data)
		}
		return uint64(x), nil
	case int:
		return uint64(x), nil
	case uint8:
		return uint64(x), nil
	case uint16:
		return uint64(x), nil
	case uint32:
		return uint64(x), nil
	case uint64:
		return x, nil
	}
	s, err := toText(v)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("unsigned value does not parse")
	}
	return n, nil
}

// toBits reads bit(n): an int64 from the binlog, big-endian bytes from SELECT.
func toBits(v any) (uint64, error) {
	if n, ok := asInt(v); ok {
		return uint64(n), nil
	}
	b, ok := v.([]byte)
	if !ok {
		return 0, fmt.Errorf("bit value arrived as %T", v)
	}
	if len(b) > 8 {
		return 0, fmt.Errorf("bit value longer than 64 bits")
	}
	var buf [8]byte
	copy(buf[8-len(b):], b)
	return binary.BigEndian.Uint64(buf[:]), nil
}

func toText(v any) (string, error) {
	switch x := v.(type) {
	case []byte:
		return string(x), nil
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05.999999"), nil
	}
	if n, ok := asInt(v); ok {
		return strconv.FormatInt(n, 10), nil
	}
	return "", fmt.Errorf("value arrived as %T", v)
}

// parseDatetime reads "2006-01-02 15:04:05[.ffffff]" as UTC (understudy's sessions
// run with time_zone '+00:00', and the stream renders TIMESTAMP in UTC). A zero or
// partly zero date ("0000-00-00 00:00:00"), which MySQL allows, becomes the zero
// time.Time on both paths; sinks write it back as the zero datetime.
func parseDatetime(s string) (time.Time, error) {
	if strings.HasPrefix(s, "0000-00-00") || strings.Contains(s[:min(len(s), 10)], "-00") {
		return time.Time{}, nil
	}
	t, err := time.ParseInLocation("2006-01-02 15:04:05.999999999", s, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("datetime value does not parse")
	}
	return t, nil
}

// trimFraction drops trailing zeros of a time's fraction ("12:00:00.500" →
// "12:00:00.5", "12:00:00.000" → "12:00:00"): SELECT pads to the column's
// precision, the binlog omits a zero fraction.
func trimFraction(s string) string {
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s = strings.TrimRight(s, "0")
		s = strings.TrimSuffix(s, ".")
	}
	return s
}
