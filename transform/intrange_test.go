package transform

import (
	"context"
	"math"
	"strconv"
	"testing"

	"github.com/understudy/understudy/cdc"
)

// Hash and format on integer columns keep every value within the column type's
// range (a 10-digit int4 drawn as 10 random digits overflows most of the time,
// and a 19-digit bigint often does).
func TestIntegerReplacementsFitTheirColumn(t *testing.T) {
	cols := []cdc.Column{
		{Name: "id", Kind: cdc.KindInt, Type: "bigint"},
		{Name: "i4", Kind: cdc.KindInt, Type: "integer"},
		{Name: "i2", Kind: cdc.KindInt, Type: "smallint"},
		{Name: "big", Kind: cdc.KindInt, Type: "bigint"},
		{Name: "u4", Kind: cdc.KindUint, Type: "int(10) unsigned"},
		{Name: "f4", Kind: cdc.KindInt, Type: "int(11)"},
	}
	table := cdc.Table{Name: "public.n", Key: []string{"id"}, Columns: cols}
	tr, err := New(Config{
		Secret: []byte("0123456789abcdef"),
		Mapper: newFakeResolver(),
		Rules: map[string]map[string]Rule{table.Name: {
			"i4": {Action: Hash}, "i2": {Action: Hash}, "big": {Action: Hash}, "u4": {Action: Hash},
			"f4": {Action: Replace, Generator: GenFormat},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Plan(table); err != nil {
		t.Fatal(err)
	}
	var rows []cdc.Row
	for i := range 2000 {
		rows = append(rows, cdc.Row{
			"id": int64(i), "i4": int64(2_000_000_000 + i), "i2": int64(30_000 + i%2000),
			"big": int64(9_000_000_000_000_000_000 + i), "u4": uint64(4_000_000_000 + i), "f4": int64(-2_100_000_000 - i),
		})
	}
	out, err := tr.Rows(context.Background(), table.Name, rows)
	if err != nil {
		t.Fatalf("transform failed: %v", err)
	}
	for _, r := range out {
		for col, limit := range map[string]int64{"i4": math.MaxInt32, "i2": math.MaxInt16, "f4": math.MaxInt32} {
			if v := r[col].(int64); v > limit || v < -limit-1 {
				t.Fatalf("%s = %d, outside its column's range", col, v)
			}
		}
		if v := r["u4"].(uint64); v > math.MaxUint32 {
			t.Fatalf("u4 = %d, outside int unsigned", v)
		}
		if s := strconv.FormatInt(r["big"].(int64), 10); len(s) < 10 {
			t.Fatalf("big hashed to %s: far narrower than the input", s)
		}
	}
}

func TestFoldInt(t *testing.T) {
	for in, want := range map[string]string{"99999": "1695", "-40000": "-7232", "12": "12", "18446744073709551616": "0"} {
		max := uint64(32767)
		if len(in) > 15 {
			max = math.MaxUint64
		}
		if got := foldInt(in, max); got != want {
			t.Errorf("foldInt(%s, %d) = %s, want %s", in, max, got, want)
		}
	}
}
