// Package dynamodb is (for now, partly) the DynamoDB Streams source: item
// normalization and the stream check. The snapshot (parallel Scan) and stream
// reader are not written yet.
//
// Items are normalized to understudy's value model so that the same item gives
// the same values from a Scan (service/dynamodb types) and from a stream record
// (service/dynamodbstreams types):
//
//	S     string
//	N     cdc.Decimal, exact plain text ("-12.5", "1000"; no exponent, no trailing zeros)
//	B     []byte
//	BOOL  bool
//	NULL  nil
//	SS    []any of string, sorted (a set has no order; sorting keeps Canonical stable)
//	NS    []any of cdc.Decimal, sorted by value
//	BS    []any of []byte, sorted bytewise
//	M     cdc.JSON object
//	L     cdc.JSON array
//
// Maps and lists become canonical JSON documents so that the transformer's JSON
// path rules address nested attributes: the attribute profile = {M: {email: …}}
// is the column "profile", and a rule {json: {$.email: …}} on it rewrites
// profile.email; phones[*] is {json: {$[*]: …}} on the column "phones". Inside a
// document, N becomes a JSON number with its exact digits, B a base64 string,
// sets JSON arrays (sorted as above), NULL null. A sink that writes DynamoDB turns
// documents back into M and L; binary and set types nested in documents come back
// as strings and lists.
package dynamodb

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	streams "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/understudy/understudy/cdc"
)

// Normalize converts an item (from GetItem, Scan or Query) into a row.
func Normalize(item map[string]ddb.AttributeValue) (cdc.Row, error) {
	row := make(cdc.Row, len(item))
	for name, av := range item {
		v, err := value(av)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", name, err)
		}
		row[name] = v
	}
	return row, nil
}

// NormalizeStream converts a stream record's image into a row, exactly as
// Normalize converts the same item.
func NormalizeStream(image map[string]streams.AttributeValue) (cdc.Row, error) {
	item := make(map[string]ddb.AttributeValue, len(image))
	for k, v := range image {
		item[k] = FromStream(v)
	}
	return Normalize(item)
}

// FromStream converts a dynamodbstreams attribute value into the dynamodb one.
func FromStream(v streams.AttributeValue) ddb.AttributeValue {
	switch x := v.(type) {
	case *streams.AttributeValueMemberS:
		return &ddb.AttributeValueMemberS{Value: x.Value}
	case *streams.AttributeValueMemberN:
		return &ddb.AttributeValueMemberN{Value: x.Value}
	case *streams.AttributeValueMemberB:
		return &ddb.AttributeValueMemberB{Value: x.Value}
	case *streams.AttributeValueMemberBOOL:
		return &ddb.AttributeValueMemberBOOL{Value: x.Value}
	case *streams.AttributeValueMemberNULL:
		return &ddb.AttributeValueMemberNULL{Value: x.Value}
	case *streams.AttributeValueMemberSS:
		return &ddb.AttributeValueMemberSS{Value: x.Value}
	case *streams.AttributeValueMemberNS:
		return &ddb.AttributeValueMemberNS{Value: x.Value}
	case *streams.AttributeValueMemberBS:
		return &ddb.AttributeValueMemberBS{Value: x.Value}
	case *streams.AttributeValueMemberM:
		m := make(map[string]ddb.AttributeValue, len(x.Value))
		for k, e := range x.Value {
			m[k] = FromStream(e)
		}
		return &ddb.AttributeValueMemberM{Value: m}
	case *streams.AttributeValueMemberL:
		l := make([]ddb.AttributeValue, len(x.Value))
		for i, e := range x.Value {
			l[i] = FromStream(e)
		}
		return &ddb.AttributeValueMemberL{Value: l}
	}
	return nil
}

func value(av ddb.AttributeValue) (any, error) {
	switch x := av.(type) {
	case *ddb.AttributeValueMemberS:
		return x.Value, nil
	case *ddb.AttributeValueMemberN:
		d, err := Decimal(x.Value)
		return d, err
	case *ddb.AttributeValueMemberB:
		return x.Value, nil
	case *ddb.AttributeValueMemberBOOL:
		return x.Value, nil
	case *ddb.AttributeValueMemberNULL:
		return nil, nil
	case *ddb.AttributeValueMemberSS:
		s := append([]string(nil), x.Value...)
		sort.Strings(s)
		out := make([]any, len(s))
		for i, e := range s {
			out[i] = e
		}
		return out, nil
	case *ddb.AttributeValueMemberNS:
		ds, err := sortedDecimals(x.Value)
		if err != nil {
			return nil, err
		}
		out := make([]any, len(ds))
		for i, d := range ds {
			out[i] = d
		}
		return out, nil
	case *ddb.AttributeValueMemberBS:
		b := append([][]byte(nil), x.Value...)
		sort.Slice(b, func(i, j int) bool { return bytes.Compare(b[i], b[j]) < 0 })
		out := make([]any, len(b))
		for i, e := range b {
			out[i] = e
		}
		return out, nil
	case *ddb.AttributeValueMemberM, *ddb.AttributeValueMemberL:
		doc, err := document(av)
		if err != nil {
			return nil, err
		}
		return cdc.MarshalJSON(doc)
	}
	return nil, fmt.Errorf("unsupported attribute value %T", av)
}

// document converts a value into a JSON-encodable tree.
func document(av ddb.AttributeValue) (any, error) {
	switch x := av.(type) {
	case *ddb.AttributeValueMemberS:
		return x.Value, nil
	case *ddb.AttributeValueMemberN:
		d, err := Decimal(x.Value)
		return json.Number(d), err
	case *ddb.AttributeValueMemberB:
		return base64.StdEncoding.EncodeToString(x.Value), nil
	case *ddb.AttributeValueMemberBOOL:
		return x.Value, nil
	case *ddb.AttributeValueMemberNULL:
		return nil, nil
	case *ddb.AttributeValueMemberNS:
		ds, err := sortedDecimals(x.Value)
		if err != nil {
			return nil, err
		}
		out := make([]any, len(ds))
		for i, d := range ds {
			out[i] = json.Number(d)
		}
		return out, nil
	case *ddb.AttributeValueMemberSS, *ddb.AttributeValueMemberBS:
		v, err := value(av)
		if err != nil {
			return nil, err
		}
		out := v.([]any)
		for i, e := range out {
			if b, ok := e.([]byte); ok {
				out[i] = base64.StdEncoding.EncodeToString(b)
			}
		}
		return out, nil
	case *ddb.AttributeValueMemberM:
		m := make(map[string]any, len(x.Value))
		for k, e := range x.Value {
			v, err := document(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			m[k] = v
		}
		return m, nil
	case *ddb.AttributeValueMemberL:
		l := make([]any, len(x.Value))
		for i, e := range x.Value {
			v, err := document(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			l[i] = v
		}
		return l, nil
	}
	return nil, fmt.Errorf("unsupported attribute value %T", av)
}

// Decimal returns DynamoDB number text in exact plain notation: no exponent, no
// leading zeros, no trailing fractional zeros, "0" for any zero.
func Decimal(s string) (cdc.Decimal, error) {
	// The error describes the text, never quotes it: it is a production value.
	bad := func() (cdc.Decimal, error) { return "", fmt.Errorf("invalid number (%d characters)", len(s)) }
	t := strings.TrimSpace(s)
	neg := false
	if t != "" && (t[0] == '-' || t[0] == '+') {
		neg = t[0] == '-'
		t = t[1:]
	}
	exp := 0
	if i := strings.IndexAny(t, "eE"); i >= 0 {
		var e int
		if _, err := fmt.Sscanf(t[i+1:], "%d", &e); err != nil || e > 400 || e < -400 {
			return bad()
		}
		exp, t = e, t[:i]
	}
	intPart, frac := t, ""
	if i := strings.IndexByte(t, '.'); i >= 0 {
		intPart, frac = t[:i], t[i+1:]
	}
	digits := intPart + frac
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return bad()
	}
	point := len(intPart) + exp // position of the decimal point in digits
	for point > len(digits) {
		digits += "0"
	}
	for point < 0 {
		digits = "0" + digits
		point++
	}
	ip := strings.TrimLeft(digits[:point], "0")
	fp := strings.TrimRight(digits[point:], "0")
	if ip == "" {
		ip = "0"
	}
	out := ip
	if fp != "" {
		out += "." + fp
	}
	if out == "0" {
		return "0", nil
	}
	if neg {
		out = "-" + out
	}
	return cdc.Decimal(out), nil
}

// sortedDecimals normalizes a number set and sorts it by value.
func sortedDecimals(ns []string) ([]cdc.Decimal, error) {
	out := make([]cdc.Decimal, len(ns))
	for i, n := range ns {
		d, err := Decimal(n)
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	sort.Slice(out, func(i, j int) bool { return lessDecimal(string(out[i]), string(out[j])) })
	return out, nil
}

// lessDecimal compares two normalized decimals by value.
func lessDecimal(a, b string) bool {
	na, nb := strings.HasPrefix(a, "-"), strings.HasPrefix(b, "-")
	if na != nb {
		return na
	}
	if na {
		return lessAbs(b[1:], a[1:])
	}
	return lessAbs(a, b)
}

func lessAbs(a, b string) bool {
	ai, af, _ := strings.Cut(a, ".")
	bi, bf, _ := strings.Cut(b, ".")
	if len(ai) != len(bi) {
		return len(ai) < len(bi)
	}
	if ai != bi {
		return ai < bi
	}
	return af < bf
}
