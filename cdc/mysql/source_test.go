package mysql

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func openSource(t *testing.T, url string, tables ...string) (*Source, []cdc.Table) {
	t.Helper()
	s, err := newSource(cdc.SourceOptions{URL: url, Pipeline: "test", Tables: tables})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ts, err := s.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s, ts
}

// snapshotRows reads every chunk of every table.
func snapshotRows(t *testing.T, s *Source, snap cdc.Snapshot, tbl cdc.Table) []cdc.Row {
	t.Helper()
	ctx := context.Background()
	chunks, err := snap.Chunks(ctx, tbl)
	if err != nil {
		t.Fatal(err)
	}
	var out []cdc.Row
	for _, c := range chunks {
		err := snap.ReadChunk(ctx, c, func(rows []cdc.Row) error { out = append(out, rows...); return nil })
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// collect streams from pos until n changes arrived (and their transaction ended).
func collect(t *testing.T, s *Source, pos cdc.Position, n int) ([]cdc.Change, []cdc.Batch) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := make(chan cdc.Batch, 100)
	errc := make(chan error, 1)
	go func() { errc <- s.Stream(ctx, pos, out) }()
	var changes []cdc.Change
	var batches []cdc.Batch
	for {
		select {
		case b := <-out:
			batches = append(batches, b)
			changes = append(changes, b.Changes...)
			if len(changes) >= n && b.Commit != nil {
				cancel()
				<-errc
				return changes, batches
			}
		case err := <-errc:
			t.Fatalf("stream ended after %d of %d changes: %v", len(changes), n, err)
		}
	}
}

const allTypes = `CREATE TABLE every (
	id int unsigned NOT NULL PRIMARY KEY,
	i8 tinyint, u8 tinyint unsigned, i16 smallint, u16 smallint unsigned,
	i24 mediumint, u24 mediumint unsigned, i32 int, u32 int unsigned, i64 bigint, u64 bigint unsigned,
	dec1 decimal(12,2), dec2 decimal(30,10), f float, d double,
	c char(5), vc varchar(80), tx text, l1 varchar(20) CHARACTER SET latin1, l1t text CHARACTER SET latin1,
	bn binary(4), vb varbinary(10), bl blob,
	dt date, dtm datetime, dtm6 datetime(6), ts timestamp(3) NULL, tm time, tm3 time(3), yr year,
	en enum('small','medium','large'), st set('a','b','c'), b1 bit(1), b12 bit(12), js json
) DEFAULT CHARSET=utf8mb4`

const allValues = `SET NAMES utf8mb4; SET time_zone = '+00:00'; INSERT INTO every VALUES
(1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
 -12.50, 12345678901234567890.0123456789, 0.1, 0.30000000000000004,
 'ab', 'Zoë 🚀', 'long text ünïcode', 'café', 'naïve text', 'ab', x'000102', x'DEADBEEF00',
 '2024-02-29', '2024-02-29 12:30:00', '1999-12-31 23:59:59.123456', '2038-01-19 03:14:07.999', '-838:59:59', '12:00:00.500', 2024,
 'medium', 'a,c', b'1', b'101010101010', '{"b": 1, "a": [1, 2.50, "x"], "c": {"z": null}}'),
(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1.2345678, -1e300, '', '', '', '', '', '', '', '',
 '1970-01-01', '1970-01-01 00:00:00', '2000-01-01 00:00:00.000001', '1970-01-01 00:00:01', '00:00:00', '00:00:00', 1901,
 'small', '', b'0', b'0', '[]')`

// TestEveryTypeIsTheSameValueInSnapshotAndStream is the invariant consistent
// replacement depends on: one logical value, one Go value, whichever path read it.
func TestEveryTypeIsTheSameValueInSnapshotAndStream(t *testing.T) {
	my := testenv.MariaDB(t)
	name := my.NewDatabaseName(t)
	my.Exec(t, my.DSN(name), allTypes)
	s, tables := openSource(t, my.URL(name), "every")
	if tables[0].Name != name+".every" {
		t.Fatalf("table name %q", tables[0].Name)
	}
	snap, err := s.BeginSnapshot(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	my.Exec(t, my.DSN(name), allValues)
	snapRows := snapshotRows(t, s, snap, tables[0])
	if len(snapRows) != 3 {
		t.Fatalf("snapshot read %d rows, want 3", len(snapRows))
	}
	changes, _ := collect(t, s, snap.Position(), 3)
	byID := map[uint64]cdc.Row{}
	for _, c := range changes {
		byID[c.After["id"].(uint64)] = c.After
	}
	for _, r := range snapRows {
		id := r["id"].(uint64)
		st := byID[id]
		for col, v := range r {
			if !reflect.DeepEqual(v, st[col]) {
				t.Errorf("row %d column %s: snapshot %#v (%T), stream %#v (%T)", id, col, v, v, st[col], st[col])
			}
		}
	}
	want := cdc.Row{
		"id": uint64(1), "i8": int64(-128), "u8": uint64(255), "i16": int64(-32768), "u16": uint64(65535),
		"i24": int64(-8388608), "u24": uint64(16777215), "i32": int64(-2147483648), "u32": uint64(4294967295),
		"i64": int64(-9223372036854775808), "u64": uint64(18446744073709551615),
		"dec1": cdc.Decimal("-12.50"), "dec2": cdc.Decimal("12345678901234567890.0123456789"),
		"f": float64(float32(0.1)), "d": 0.30000000000000004,
		"c": "ab", "vc": "Zoë 🚀", "tx": "long text ünïcode", "l1": "café", "l1t": "naïve text",
		"bn": []byte("ab\x00\x00"), "vb": []byte{0, 1, 2}, "bl": []byte{0xDE, 0xAD, 0xBE, 0xEF, 0},
		"dt": cdc.Date("2024-02-29"), "dtm": time.Date(2024, 2, 29, 12, 30, 0, 0, time.UTC),
		"dtm6": time.Date(1999, 12, 31, 23, 59, 59, 123456000, time.UTC),
		"ts":   time.Date(2038, 1, 19, 3, 14, 7, 999000000, time.UTC),
		"tm":   cdc.TimeOfDay("-838:59:59"), "tm3": cdc.TimeOfDay("12:00:00.5"), "yr": int64(2024),
		"en": "medium", "st": "a,c", "b1": uint64(1), "b12": uint64(0b101010101010),
		"js": cdc.JSON(`{"a":[1,2.50,"x"],"b":1,"c":{"z":null}}`),
	}
	for col, v := range want {
		if got := byID[1][col]; !reflect.DeepEqual(got, v) {
			t.Errorf("row 1 column %s = %#v (%T), want %#v", col, got, got, v)
		}
	}
	for col, v := range byID[2] {
		if col != "id" && v != nil {
			t.Errorf("row 2 column %s = %#v, want NULL", col, v)
		}
	}
	if tbl := tables[0]; func() bool { c, _ := tbl.Column("js"); return c.Kind != cdc.KindJSON }() {
		t.Errorf("MariaDB json column not described as JSON")
	}
}

func TestOpenNamesEachProblemOnItsLine(t *testing.T) {
	my := testenv.MariaDB(t)
	name := my.NewDatabaseName(t)
	my.Exec(t, my.DSN(name), "CREATE TABLE nokey (a int)")
	s, err := newSource(cdc.SourceOptions{URL: my.URL(name), Pipeline: "p", Tables: []string{"nokey", "missing"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Open(context.Background())
	if err == nil {
		t.Fatal("Open accepted a table without primary key and a missing table")
	}
	msg := err.Error()
	for _, want := range []string{name + ".nokey has no primary key", "ALTER TABLE `" + name + "`.`nokey` ADD PRIMARY KEY", name + ".missing does not exist"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}

	bad, _ := newSource(cdc.SourceOptions{URL: "mysql://u:sekret@127.0.0.1:1/db", Pipeline: "p", Tables: []string{"t"}})
	_, err = bad.Open(context.Background())
	if err == nil || strings.Contains(err.Error(), "sekret") || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "\n") {
		t.Errorf("unreachable server: %v", err)
	}
}

func TestPurgedBinlogIsPositionLost(t *testing.T) {
	my := testenv.MariaDB(t)
	name := my.NewDatabaseName(t)
	my.Exec(t, my.DSN(name), "CREATE TABLE t (id int PRIMARY KEY)")
	s, _ := openSource(t, my.URL(name), "t")
	pos := Position{Flavor: FlavorMariaDB, File: "binlog.000000", Pos: 4}.Encode()
	err := s.Stream(context.Background(), pos, make(chan cdc.Batch))
	if !errors.Is(err, cdc.ErrPositionLost) || !strings.Contains(err.Error(), "understudy reset") {
		t.Fatalf("stream from a purged binlog: %v", err)
	}
}

// A column's charset is part of its Type: a MySQL target creates its table from
// Type, and a latin1 column copied as utf8mb4 is not a replica of production's.
func TestColumnTypeCarriesANonUTF8MB4Charset(t *testing.T) {
	my := testenv.MariaDB(t)
	db := my.NewDatabaseName(t)
	my.Exec(t, my.DSN(db), `CREATE TABLE c (id int PRIMARY KEY, l varchar(20) CHARACTER SET latin1, a char(3) CHARACTER SET ascii, u varchar(20), b varbinary(4), e enum('x','y') CHARACTER SET latin1) DEFAULT CHARSET=utf8mb4`)
	_, ts := openSource(t, my.URL(db), db+".c")
	got := map[string]string{}
	for _, c := range ts[0].Columns {
		got[c.Name] = c.Type
	}
	want := map[string]string{"id": "int(11)", "l": "varchar(20) CHARACTER SET latin1", "a": "char(3) CHARACTER SET ascii",
		"u": "varchar(20)", "b": "varbinary(4)", "e": "enum('x','y') CHARACTER SET latin1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("column types %v, want %v", got, want)
	}
	if ct := ParseColumnType(got["e"], cdc.KindUnknown); !reflect.DeepEqual(ct.Labels, []string{"x", "y"}) {
		t.Errorf("enum labels of %q: %v", got["e"], ct.Labels)
	}
}
