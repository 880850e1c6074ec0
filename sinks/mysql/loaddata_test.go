package mysql_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/sinks"
	"github.com/understudy/understudy/testenv"
)

// TestLoadUsesLoadDataAndKeepsEveryValue: snapshot rows go through LOAD DATA
// LOCAL INFILE; separators, escapes, NULL next to empty and "\N" text, binary
// bytes, bits, latin1, JSON, fractional datetimes and floats read back unchanged,
// and a reloaded row is replaced, not duplicated.
func TestLoadUsesLoadDataAndKeepsEveryValue(t *testing.T) {
	ctx := context.Background()
	my := testenv.MariaDB(t)
	name := my.NewDatabaseName(t)
	s, err := sinks.New(ctx, sinks.Options{URL: my.URL(name), Pipeline: "loaddata"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tbl := cdc.Table{Name: "prod.every", Key: []string{"id"}, Columns: []cdc.Column{
		{Name: "id", Type: "bigint unsigned", Kind: cdc.KindUint},
		{Name: "s", Type: "varchar(40)", Kind: cdc.KindString, Nullable: true},
		{Name: "l1", Type: "varchar(20) CHARACTER SET latin1", Kind: cdc.KindString, Nullable: true},
		{Name: "b", Type: "varbinary(10)", Kind: cdc.KindBytes, Nullable: true},
		{Name: "bits", Type: "bit(10)", Kind: cdc.KindUint, Nullable: true},
		{Name: "f", Type: "double", Kind: cdc.KindFloat, Nullable: true},
		{Name: "d", Type: "decimal(12,2)", Kind: cdc.KindDecimal, Nullable: true},
		{Name: "ts", Type: "datetime(6)", Kind: cdc.KindTimestamp, Nullable: true},
		{Name: "j", Type: "json", Kind: cdc.KindJSON, Nullable: true},
	}}
	if err := s.Prepare(ctx, []cdc.Table{tbl}); err != nil {
		t.Fatal(err)
	}
	rows := []cdc.Row{
		{"id": uint64(1), "s": "tab\there\nnew\\line\r\x00end", "l1": "café", "b": []byte{0, '\t', '\n', '\\', 0xff},
			"bits": uint64(0b1010101010), "f": 0.30000000000000004, "d": cdc.Decimal("-12.50"),
			"ts": time.Date(1999, 12, 31, 23, 59, 59, 123456000, time.UTC), "j": cdc.JSON(`{"a":"x\ty","b":[1,2.5]}`)},
		{"id": uint64(2), "s": "", "l1": "", "b": []byte{}, "bits": uint64(0), "f": -1e300, "d": cdc.Decimal("0.00"),
			"ts": time.Date(2038, 1, 19, 3, 14, 7, 0, time.UTC), "j": cdc.JSON(`[]`)},
		{"id": uint64(3), "s": `\N`, "l1": nil, "b": nil, "bits": nil, "f": nil, "d": nil, "ts": nil, "j": nil},
		{"id": uint64(18446744073709551615), "s": "Zoë 🚀", "l1": "naïve", "b": []byte("ab"), "bits": uint64(1023),
			"f": 1.5, "d": cdc.Decimal("9999999999.99"), "ts": time.Date(2024, 2, 29, 12, 0, 0, 1000, time.UTC), "j": cdc.JSON(`null`)},
	}
	before := my.Query(t, "", "SHOW GLOBAL STATUS LIKE 'Com_load'")
	if err := s.Load(ctx, tbl.Name, rows); err != nil {
		t.Fatal(err)
	}
	if after := my.Query(t, "", "SHOW GLOBAL STATUS LIKE 'Com_load'"); after == before {
		t.Fatalf("Load did not use LOAD DATA (Com_load %q before and after)", after)
	}
	// Reloading replaces.
	changed := rows[0].Clone()
	changed["s"] = "again"
	if err := s.Load(ctx, tbl.Name, []cdc.Row{changed}); err != nil {
		t.Fatal(err)
	}
	rows[0] = changed
	var got []cdc.Row
	if err := s.(sinks.TableReader).ReadTable(ctx, tbl, func(rs []cdc.Row) error { got = append(got, rs...); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rows) {
		t.Fatalf("read %d rows, loaded %d", len(got), len(rows))
	}
	byID := map[uint64]cdc.Row{}
	for _, r := range got {
		byID[r["id"].(uint64)] = r
	}
	for _, want := range rows {
		g := byID[want["id"].(uint64)]
		for c, v := range want {
			if !reflect.DeepEqual(g[c], v) {
				t.Errorf("row %v column %s: read %#v, loaded %#v", want["id"], c, g[c], v)
			}
		}
	}
	if n := my.Query(t, my.DSN(name), "SELECT count(*) FROM every WHERE l1 = CONVERT('café' USING latin1)"); strings.TrimSpace(n) != "1" {
		t.Errorf("latin1 column not stored as latin1 text: %s rows match", n)
	}
}
