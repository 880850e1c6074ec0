package postgres

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/cdc"
)

func TestDecodeScalars(t *testing.T) {
	ts := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	cases := []struct {
		oid  uint32
		text string
		want any
	}{
		{oidInt4, "-42", int64(-42)},
		{oidBool, "t", true},
		{oidFloat8, "0.1", 0.1},
		{oidNumeric, "12.50", cdc.Decimal("12.50")},
		{oidNumeric, "NaN", cdc.Decimal("NaN")},
		{oidBytea, `\x00ff`, []byte{0, 0xff}},
		{oidTimestamptz, "2024-02-29 13:14:15.123456+00", ts("2024-02-29T13:14:15.123456Z")},
		{oidTimestamptz, "2024-02-29 13:14:15+05:30", ts("2024-02-29T07:44:15Z")},
		{oidTimestamp, "1999-12-31 23:59:59", ts("1999-12-31T23:59:59Z")},
		{oidTimestamp, "infinity", "infinity"},
		{oidJSONB, `{"b": 1, "a": [1, 2]}`, cdc.JSON(`{"a":[1,2],"b":1}`)},
		{oidInterval, "1 year 2 mons 3 days 04:05:06", cdc.Interval("1 year 2 mons 3 days 04:05:06")},
		{oidDate, "2024-01-02", cdc.Date("2024-01-02")},
	}
	for _, c := range cases {
		got, err := decodeText(&pgType{OID: c.oid, Base: c.oid}, []byte(c.text))
		if err != nil {
			t.Errorf("%d %q: %v", c.oid, c.text, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%d %q: got %#v, want %#v", c.oid, c.text, got, c.want)
		}
	}
}

func TestDecodeArray(t *testing.T) {
	text := &pgType{Kind: cdc.KindArray, Delim: ',', Elem: &pgType{OID: oidText, Base: oidText}}
	got, err := decodeText(text, []byte(`{a,"b c",NULL,"NULL","q\"uo\\te",""}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []any{"a", "b c", nil, "NULL", `q"uo\te`, ""}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v", got)
	}
	ints := &pgType{Kind: cdc.KindArray, Delim: ',', Elem: &pgType{OID: oidInt4, Base: oidInt4}}
	got, err = decodeText(ints, []byte(`[0:1]={{1,2},{3,NULL}}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []any{[]any{int64(1), int64(2)}, []any{int64(3), nil}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v", got)
	}
	if got, _ := decodeText(ints, []byte(`{}`)); !reflect.DeepEqual(got, []any{}) {
		t.Fatalf("empty array: %#v", got)
	}
}

func TestDecodeErrorsHideValues(t *testing.T) {
	_, err := decodeText(&pgType{OID: oidInt4, Base: oidInt4}, []byte("secret-value"))
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error must not show the value: %v", err)
	}
}

func TestWalLevelMessage(t *testing.T) {
	if p := checkWalLevel("logical"); p != "" {
		t.Fatalf("logical: %q", p)
	}
	p := checkWalLevel("replica")
	if !strings.Contains(p, "wal_level=logical") || !strings.Contains(p, "restart") {
		t.Fatalf("message does not give the fix: %q", p)
	}
}

func TestPosition(t *testing.T) {
	p := LSN(0x16B374D848).Encode()
	got, err := ParsePosition(p)
	if err != nil || got != 0x16B374D848 {
		t.Fatalf("%v %v", got, err)
	}
	if a, b := LSN(1).Encode(), LSN(256).Encode(); string(a) >= string(b) {
		t.Fatal("encoded order must be LSN order")
	}
	if _, err := ParsePosition([]byte{1, 2}); err == nil {
		t.Fatal("short position accepted")
	}
	if ReplicationName("Billing-EU") != "understudy_billing_eu" {
		t.Fatal(ReplicationName("Billing-EU"))
	}
}
