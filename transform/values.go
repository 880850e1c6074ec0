package transform

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/understudy/understudy/cdc"
)

// convertLike turns a generated or hashed text back into the Go type of orig, the
// value it replaces, so a replacement on an int64 column is an int64, on a
// Decimal column a Decimal, on bytes []byte. The error never shows the text.
func convertLike(orig any, out string) (any, error) {
	switch orig.(type) {
	case string:
		return out, nil
	case []byte:
		return []byte(out), nil
	case int64:
		n, err := strconv.ParseInt(out, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("replacement (%d chars) does not fit an int64; use a numeric generator (format) or hash, and keep 19-digit values in text columns", len(out))
		}
		return n, nil
	case uint64:
		n, err := strconv.ParseUint(out, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("replacement (%d chars) does not fit a uint64; use a numeric generator (format) or hash", len(out))
		}
		return n, nil
	case int:
		n, err := strconv.Atoi(out)
		if err != nil {
			return nil, fmt.Errorf("replacement of an int is not an int (len %d)", len(out))
		}
		return n, nil
	case float64:
		f, err := strconv.ParseFloat(out, 64)
		if err != nil {
			return nil, fmt.Errorf("replacement of a float64 is not a number (len %d)", len(out))
		}
		return f, nil
	case cdc.Decimal:
		return cdc.Decimal(out), nil
	case cdc.Date:
		return cdc.Date(out), nil
	case cdc.TimeOfDay:
		return cdc.TimeOfDay(out), nil
	case cdc.Interval:
		return cdc.Interval(out), nil
	case json.Number:
		// A number whose replacement is not a number (format on "1e5") becomes a
		// JSON string rather than invalid JSON.
		if json.Valid([]byte(out)) && isNumberText(out) {
			return json.Number(out), nil
		}
		return out, nil
	case bool:
		b, err := strconv.ParseBool(out)
		if err != nil {
			return nil, fmt.Errorf("replacement of a bool is not a bool (len %d); use constant", len(out))
		}
		return b, nil
	case time.Time:
		t, err := time.Parse(time.RFC3339Nano, out)
		if err != nil {
			return nil, fmt.Errorf("replacement of a timestamp is not a timestamp (len %d); use date_shift", len(out))
		}
		return t, nil
	case cdc.JSON:
		if json.Valid([]byte(out)) {
			return cdc.JSON(out), nil
		}
		return cdc.MarshalJSON(out)
	}
	return nil, fmt.Errorf("cannot write a replacement into a %s value", cdc.Describe(orig))
}

func isNumberText(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// constantFor converts a rule's constant value to the column kind; nil gives the
// kind's zero value (0, "", false, the epoch …).
func constantFor(v any, k cdc.Kind) (any, error) {
	if v == nil {
		return zeroOf(k), nil
	}
	text := cdc.Canonical(v)
	switch k {
	case cdc.KindBool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
		b, err := strconv.ParseBool(text)
		if err != nil {
			return nil, fmt.Errorf("constant for a bool column must be true or false")
		}
		return b, nil
	case cdc.KindInt:
		switch x := v.(type) {
		case int:
			return int64(x), nil
		case int64:
			return x, nil
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
				return int64(x), nil
			}
		}
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("constant for an int column must be an integer")
		}
		return n, nil
	case cdc.KindUint:
		n, err := strconv.ParseUint(text, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("constant for an unsigned column must be a non-negative integer")
		}
		return n, nil
	case cdc.KindFloat:
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("constant for a float column must be a number")
		}
		return f, nil
	case cdc.KindDecimal:
		if _, err := strconv.ParseFloat(text, 64); err != nil {
			return nil, fmt.Errorf("constant for a decimal column must be a number")
		}
		return cdc.Decimal(text), nil
	case cdc.KindString:
		return text, nil
	case cdc.KindBytes:
		return []byte(text), nil
	case cdc.KindTimestamp:
		if t, ok := v.(time.Time); ok {
			return t.UTC(), nil
		}
		for _, layout := range dateLayouts {
			if t, err := time.Parse(layout, text); err == nil {
				return t.UTC(), nil
			}
		}
		return nil, fmt.Errorf("constant for a timestamp column must be a date-time like 2006-01-02T15:04:05Z")
	case cdc.KindDate:
		if _, err := time.Parse("2006-01-02", text); err != nil {
			return nil, fmt.Errorf("constant for a date column must be a date like 2006-01-02")
		}
		return cdc.Date(text), nil
	case cdc.KindTime:
		return cdc.TimeOfDay(text), nil
	case cdc.KindInterval:
		return cdc.Interval(text), nil
	case cdc.KindJSON:
		if s, ok := v.(string); ok && json.Valid([]byte(s)) {
			return cdc.NormalizeJSON([]byte(s))
		}
		return cdc.MarshalJSON(v)
	case cdc.KindArray:
		return nil, fmt.Errorf("constant on an array column must be empty (leave value out)")
	}
	return v, nil
}

// zeroOf is a kind's zero value.
func zeroOf(k cdc.Kind) any {
	switch k {
	case cdc.KindBool:
		return false
	case cdc.KindInt:
		return int64(0)
	case cdc.KindUint:
		return uint64(0)
	case cdc.KindFloat:
		return float64(0)
	case cdc.KindDecimal:
		return cdc.Decimal("0")
	case cdc.KindBytes:
		return []byte{}
	case cdc.KindTimestamp:
		return time.Unix(0, 0).UTC()
	case cdc.KindDate:
		return cdc.Date("1970-01-01")
	case cdc.KindTime:
		return cdc.TimeOfDay("00:00:00")
	case cdc.KindInterval:
		return cdc.Interval("00:00:00")
	case cdc.KindJSON:
		return cdc.JSON("{}")
	case cdc.KindArray:
		return []any{}
	}
	return ""
}

// zeroLike is the zero value of v's Go type, for constants on columns (and JSON
// leaves) whose kind is unknown.
func zeroLike(v any) any {
	switch v.(type) {
	case bool:
		return false
	case int64:
		return int64(0)
	case uint64:
		return uint64(0)
	case int:
		return 0
	case float64:
		return float64(0)
	case json.Number:
		return json.Number("0")
	case cdc.Decimal:
		return cdc.Decimal("0")
	case []byte:
		return []byte{}
	case time.Time:
		return time.Unix(0, 0).UTC()
	case cdc.Date:
		return cdc.Date("1970-01-01")
	case cdc.JSON:
		return cdc.JSON("{}")
	case map[string]any:
		return map[string]any{}
	case []any:
		return []any{}
	}
	return ""
}

// constLike converts a constant given for an unknown kind to v's Go type,
// falling back to the constant's own value.
func constLike(v, c any) any {
	if out, err := convertLike(v, cdc.Canonical(c)); err == nil {
		return out
	}
	return c
}

// isEmpty reports whether v is an empty text value, which stays empty: the
// replica keeps production's blanks.
func isEmpty(v any) bool {
	switch x := v.(type) {
	case string:
		return x == ""
	case []byte:
		return len(x) == 0
	}
	return false
}
