package postgres

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/understudy/understudy/cdc"
)

// One decoder serves the snapshot and the stream. Both read Postgres' *text*
// representation of a value (pgoutput sends text; snapshot queries ask for text
// results), and every connection forces the same output settings (sessionParams),
// so the same stored value arrives as the same bytes on both paths and decodes to
// the same normalized Go value. Consistent replacement depends on that.

// sessionParams are set on every connection, regular and replication, so that
// value output does not depend on the server's or the role's defaults.
var sessionParams = map[string]string{
	"DateStyle":          "ISO, MDY",
	"IntervalStyle":      "postgres",
	"TimeZone":           "UTC",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
	"application_name":   "understudy",
}

// Built-in type OIDs (pg_type.h); they are fixed across Postgres versions.
const (
	oidBool        = 16
	oidBytea       = 17
	oidChar        = 18
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidOID         = 26
	oidJSON        = 114
	oidXML         = 142
	oidCIDR        = 650
	oidFloat4      = 700
	oidFloat8      = 701
	oidMacaddr8    = 774
	oidMacaddr     = 829
	oidInet        = 869
	oidBpchar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidInterval    = 1186
	oidTimetz      = 1266
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
)

// builtinKinds maps the scalar types understudy normalizes specially. Any other
// scalar type (citext, money, bit, tsvector, ranges, composites …) decodes as its
// text, KindString.
var builtinKinds = map[uint32]cdc.Kind{
	oidBool: cdc.KindBool, oidBytea: cdc.KindBytes,
	oidInt2: cdc.KindInt, oidInt4: cdc.KindInt, oidInt8: cdc.KindInt, oidOID: cdc.KindInt,
	oidFloat4: cdc.KindFloat, oidFloat8: cdc.KindFloat, oidNumeric: cdc.KindDecimal,
	oidDate: cdc.KindDate, oidTime: cdc.KindTime, oidTimetz: cdc.KindTime,
	oidTimestamp: cdc.KindTimestamp, oidTimestamptz: cdc.KindTimestamp,
	oidInterval: cdc.KindInterval, oidJSON: cdc.KindJSON, oidJSONB: cdc.KindJSON,
	oidText: cdc.KindString, oidVarchar: cdc.KindString, oidBpchar: cdc.KindString,
	oidName: cdc.KindString, oidChar: cdc.KindString, oidUUID: cdc.KindString,
	oidInet: cdc.KindString, oidCIDR: cdc.KindString, oidMacaddr: cdc.KindString,
	oidMacaddr8: cdc.KindString, oidXML: cdc.KindString,
}

// pgType is a resolved column type: domains are replaced by their base type and
// arrays carry their element type.
type pgType struct {
	OID  uint32
	Base uint32 // OID that selects the decoder (the domain's base; 0 for enums/others)
	Kind cdc.Kind
	Elem *pgType // for arrays
	// Delim separates array elements in the text form (',' for all but box).
	Delim byte
	Enum  []string // labels of an enum (or of an array's enum element)
}

// decodeText converts the text form of one value of type t to its normalized Go
// value (see cdc/value.go). It is the only decoder: snapshot and stream both call
// it. Errors never include the value itself.
func decodeText(t *pgType, text []byte) (any, error) {
	if text == nil {
		return nil, nil
	}
	if t.Elem != nil {
		return parseArray(t, string(text))
	}
	s := string(text)
	switch t.Base {
	case oidBool:
		switch s {
		case "t", "true":
			return true, nil
		case "f", "false":
			return false, nil
		}
		return nil, fmt.Errorf("invalid boolean text (%s)", cdc.Describe(s))
	case oidInt2, oidInt4, oidInt8, oidOID:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid integer text (%s)", cdc.Describe(s))
		}
		return n, nil
	case oidFloat4, oidFloat8:
		// ParseFloat accepts Postgres' NaN, Infinity and -Infinity. With
		// extra_float_digits=3 Postgres prints the shortest exact form.
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid float text (%s)", cdc.Describe(s))
		}
		return f, nil
	case oidNumeric:
		// Postgres prints numerics in plain notation at the column's scale; the
		// text is the exact value (NaN and ±Infinity stay as text).
		return cdc.Decimal(s), nil
	case oidBytea:
		if !strings.HasPrefix(s, `\x`) {
			return nil, fmt.Errorf("bytea is not in hex format (set bytea_output=hex)")
		}
		b, err := hex.DecodeString(s[2:])
		if err != nil {
			return nil, fmt.Errorf("invalid bytea hex text")
		}
		return b, nil
	case oidDate:
		return cdc.Date(s), nil
	case oidTime, oidTimetz:
		return cdc.TimeOfDay(s), nil
	case oidTimestamp, oidTimestamptz:
		return parseTimestamp(s)
	case oidInterval:
		return cdc.Interval(s), nil
	case oidJSON, oidJSONB:
		j, err := cdc.NormalizeJSON(text)
		if err != nil {
			return nil, fmt.Errorf("invalid json text (%s)", cdc.Describe(s))
		}
		return j, nil
	}
	return s, nil
}

// parseTimestamp reads the ISO output of timestamp and timestamptz (TimeZone=UTC
// makes the offset "+00", but any offset is honoured) and returns UTC at
// microsecond precision. ±infinity, which time.Time cannot hold, stays as the
// string "infinity"/"-infinity"; a sink casts it back.
func parseTimestamp(s string) (any, error) {
	if s == "infinity" || s == "-infinity" {
		return s, nil
	}
	bc := strings.HasSuffix(s, " BC")
	if bc {
		s = strings.TrimSuffix(s, " BC")
	}
	// Years beyond 9999 print with more digits; time.Parse needs exactly four.
	dash := strings.IndexByte(s, '-')
	if dash < 0 {
		return nil, fmt.Errorf("invalid timestamp text")
	}
	year, err := strconv.Atoi(s[:dash])
	if err != nil {
		return nil, fmt.Errorf("invalid timestamp text")
	}
	rest := "2000" + s[dash:]
	layout := "2006-01-02 15:04:05.999999"
	if i := strings.LastIndexAny(rest, "+-"); i > len("2000-01-02") {
		off := rest[i+1:]
		switch strings.Count(off, ":") {
		case 0:
			layout += "-07"
		case 1:
			layout += "-07:00"
		default:
			layout += "-07:00:00"
		}
	}
	t, err := time.Parse(layout, rest)
	if err != nil {
		return nil, fmt.Errorf("invalid timestamp text")
	}
	if bc {
		year = 1 - year // 1 BC is year 0 in ISO 8601 numbering
	}
	t = t.AddDate(year-2000, 0, 0)
	return t.UTC(), nil
}

// parseArray parses an array literal ("{1,NULL,\"a b\"}", possibly with a
// "[0:2]=" bounds prefix and nested dimensions) into []any of element values.
func parseArray(t *pgType, s string) (any, error) {
	if strings.HasPrefix(s, "[") {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, fmt.Errorf("invalid array text")
		}
		s = s[eq+1:]
	}
	p := arrayParser{s: s, delim: t.Delim, elem: t.Elem}
	if p.delim == 0 {
		p.delim = ','
	}
	v, err := p.parse()
	if err != nil {
		return nil, err
	}
	if p.i != len(p.s) {
		return nil, fmt.Errorf("invalid array text: trailing data")
	}
	return v, nil
}

type arrayParser struct {
	s     string
	i     int
	delim byte
	elem  *pgType
}

func (p *arrayParser) parse() ([]any, error) {
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return nil, fmt.Errorf("invalid array text: expected '{'")
	}
	p.i++
	out := []any{}
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return out, nil
	}
	for {
		if p.i >= len(p.s) {
			return nil, fmt.Errorf("invalid array text: unterminated")
		}
		var v any
		switch p.s[p.i] {
		case '{':
			sub, err := p.parse()
			if err != nil {
				return nil, err
			}
			v = sub
		case '"':
			text, err := p.quoted()
			if err != nil {
				return nil, err
			}
			if v, err = decodeText(p.elem, []byte(text)); err != nil {
				return nil, fmt.Errorf("array element: %w", err)
			}
		default:
			start := p.i
			for p.i < len(p.s) && p.s[p.i] != p.delim && p.s[p.i] != '}' {
				p.i++
			}
			text := p.s[start:p.i]
			if text != "NULL" { // an unquoted NULL is SQL NULL; "NULL" quoted is text
				var err error
				if v, err = decodeText(p.elem, []byte(text)); err != nil {
					return nil, fmt.Errorf("array element: %w", err)
				}
			}
		}
		out = append(out, v)
		if p.i >= len(p.s) {
			return nil, fmt.Errorf("invalid array text: unterminated")
		}
		switch p.s[p.i] {
		case p.delim:
			p.i++
		case '}':
			p.i++
			return out, nil
		default:
			return nil, fmt.Errorf("invalid array text: unexpected character")
		}
	}
}

func (p *arrayParser) quoted() (string, error) {
	p.i++ // opening quote
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch c {
		case '\\':
			if p.i+1 >= len(p.s) {
				return "", fmt.Errorf("invalid array text: dangling escape")
			}
			b.WriteByte(p.s[p.i+1])
			p.i += 2
		case '"':
			p.i++
			return b.String(), nil
		default:
			b.WriteByte(c)
			p.i++
		}
	}
	return "", fmt.Errorf("invalid array text: unterminated quote")
}

// typeCache resolves type OIDs through the catalog once and remembers them. Both
// the snapshot (column types at Open) and the stream (RelationMessage type OIDs)
// resolve through it, so they agree on every column's decoder.
type typeCache struct {
	pool *pgxpool.Pool
	mu   sync.Mutex
	byID map[uint32]*pgType
}

func newTypeCache(pool *pgxpool.Pool) *typeCache {
	return &typeCache{pool: pool, byID: map[uint32]*pgType{}}
}

// resolve returns the type for oid, querying the catalog for types it has not
// seen (domains, enums, arrays, extension types).
func (c *typeCache) resolve(ctx context.Context, oid uint32) (*pgType, error) {
	c.mu.Lock()
	t, ok := c.byID[oid]
	c.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err := c.load(ctx, oid, 0)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.byID[oid] = t
	c.mu.Unlock()
	return t, nil
}

// forget drops cached types, e.g. after a stream sees an enum gain a label.
func (c *typeCache) forget(oid uint32) {
	c.mu.Lock()
	delete(c.byID, oid)
	c.mu.Unlock()
}

func (c *typeCache) load(ctx context.Context, oid uint32, depth int) (*pgType, error) {
	if depth > 10 {
		return nil, fmt.Errorf("type %d: domain or array nesting too deep", oid)
	}
	if k, ok := builtinKinds[oid]; ok {
		return &pgType{OID: oid, Base: oid, Kind: k}, nil
	}
	var (
		typtype, category, delim string
		base, elem               uint32
		labels                   []string
	)
	err := c.pool.QueryRow(ctx, `
		SELECT t.typtype::text, t.typcategory::text, t.typdelim::text, t.typbasetype, t.typelem,
		       coalesce((SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
		                 FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid), '{}')
		FROM pg_catalog.pg_type t WHERE t.oid = $1`, oid).
		Scan(&typtype, &category, &delim, &base, &elem, &labels)
	if err != nil {
		return nil, fmt.Errorf("look up type %d: %w", oid, err)
	}
	switch {
	case typtype == "d": // domain: decode as its base type
		b, err := c.load(ctx, base, depth+1)
		if err != nil {
			return nil, err
		}
		d := *b
		d.OID = oid
		return &d, nil
	case typtype == "e":
		return &pgType{OID: oid, Kind: cdc.KindString, Enum: labels}, nil
	case category == "A" && elem != 0:
		e, err := c.load(ctx, elem, depth+1)
		if err != nil {
			return nil, err
		}
		var eDelim byte = ','
		// The delimiter of an array literal is its element type's typdelim.
		var ed string
		if err := c.pool.QueryRow(ctx, `SELECT typdelim::text FROM pg_catalog.pg_type WHERE oid = $1`, elem).Scan(&ed); err == nil && len(ed) == 1 {
			eDelim = ed[0]
		}
		return &pgType{OID: oid, Kind: cdc.KindArray, Elem: e, Delim: eDelim, Enum: e.Enum}, nil
	}
	return &pgType{OID: oid, Kind: cdc.KindString}, nil
}

// Decoder decodes text-format values of one database by type OID with the same
// rules as the source (sinks/postgres uses it to read a target back for
// `understudy verify`). The connections must use sessionParams-equivalent
// settings (DateStyle ISO, IntervalStyle postgres, bytea_output hex).
type Decoder struct{ types *typeCache }

// NewDecoder returns a Decoder that resolves types through pool.
func NewDecoder(pool *pgxpool.Pool) *Decoder { return &Decoder{types: newTypeCache(pool)} }

// Decode converts the text form of one value of type oid to its normalized Go
// value; nil text is NULL.
func (d *Decoder) Decode(ctx context.Context, oid uint32, text []byte) (any, error) {
	t, err := d.types.resolve(ctx, oid)
	if err != nil {
		return nil, err
	}
	return decodeText(t, text)
}

// SessionParams returns the run-time parameters every understudy connection to
// Postgres sets, so that values print the same way everywhere.
func SessionParams() map[string]string {
	out := make(map[string]string, len(sessionParams))
	for k, v := range sessionParams {
		out[k] = v
	}
	return out
}
