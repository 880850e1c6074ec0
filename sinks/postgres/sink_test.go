package postgres

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/understudy/understudy/cdc"
	pgsource "github.com/understudy/understudy/cdc/postgres"
	"github.com/understudy/understudy/checkpoint"
	"github.com/understudy/understudy/sinks"
	"github.com/understudy/understudy/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func openSink(t *testing.T, url, sourceURL string) *Sink {
	t.Helper()
	s, err := open(context.Background(), sinks.Options{URL: url, Pipeline: "p1", SourceURL: sourceURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func query(t *testing.T, dsn, sql string) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var s *string
	if err := c.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if s == nil {
		return "<null>"
	}
	return *s
}

var accounts = cdc.Table{
	Name: "public.accounts",
	Columns: []cdc.Column{
		{Name: "id", Type: "bigint", Kind: cdc.KindInt},
		{Name: "name", Type: "text", Kind: cdc.KindString, Nullable: true},
		{Name: "notes", Type: "text", Kind: cdc.KindString, Nullable: true},
		{Name: "tier", Type: "public.tier", Kind: cdc.KindString, Nullable: true, Enum: []string{"free", "pro"}},
		{Name: "tags", Type: "public.tier[]", Kind: cdc.KindArray, Nullable: true, Enum: []string{"free", "pro"}},
	},
	Key: []string{"id"},
}

func TestPrepareRefusesWhatIsNotAReplica(t *testing.T) {
	pg := testenv.Postgres(t)
	ctx := context.Background()

	// Unmarked database with tables: refused, and nothing is written.
	prod := pg.NewDatabase(t)
	pg.Exec(t, prod, `CREATE TABLE customers (id int PRIMARY KEY)`)
	s := openSink(t, prod, "")
	err := s.Prepare(ctx, []cdc.Table{accounts})
	if !errors.Is(err, sinks.ErrNotReplica) || !strings.Contains(err.Error(), "public.customers") {
		t.Fatalf("unmarked non-empty target: %v", err)
	}
	if got := query(t, prod, `SELECT count(*)::text FROM pg_namespace WHERE nspname = 'understudy'`); got != "0" {
		t.Fatal("refused target was written to")
	}
	if err := s.Clear(ctx, []string{"public.customers"}); !errors.Is(err, sinks.ErrNotReplica) {
		t.Fatalf("Clear on unmarked target: %v", err)
	}

	// The source itself, even when empty: refused.
	empty := pg.NewDatabase(t)
	s = openSink(t, empty, empty)
	if err := s.Prepare(ctx, []cdc.Table{accounts}); !errors.Is(err, sinks.ErrNotReplica) || !strings.Contains(err.Error(), "source") {
		t.Fatalf("target = source: %v", err)
	}

	// An empty database gets marked, then its tables created; a second Prepare is fine.
	s = openSink(t, empty, prod)
	for i := 0; i < 2; i++ {
		if err := s.Prepare(ctx, []cdc.Table{accounts}); err != nil {
			t.Fatal(err)
		}
	}
	if got := query(t, empty, `SELECT string_agg(pipeline, ',') FROM understudy.replica`); got != "p1" {
		t.Fatalf("marker rows: %s", got)
	}
	if got := query(t, empty, `SELECT string_agg(enumlabel::text, ',' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = 'public.tier'::regtype`); got != "free,pro" {
		t.Fatalf("enum labels: %s", got)
	}
	if got := query(t, empty, `SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'public.accounts'::regclass AND contype = 'p'`); got != "PRIMARY KEY (id)" {
		t.Fatalf("primary key: %s", got)
	}
	if got := query(t, empty, `SELECT attnotnull::text FROM pg_attribute WHERE attrelid = 'public.accounts'::regclass AND attname = 'id'`); got != "true" {
		t.Fatal("key column is nullable")
	}
	if err := s.Clear(ctx, []string{"public.accounts"}); err != nil {
		t.Fatal(err)
	}
}

func TestSchemaDrift(t *testing.T) {
	pg := testenv.Postgres(t)
	ctx := context.Background()
	dsn := pg.NewDatabase(t)
	s := openSink(t, dsn, "")
	if err := s.Prepare(ctx, []cdc.Table{accounts}); err != nil {
		t.Fatal(err)
	}
	// The release under test added its own column; production adds another and
	// a new enum label.
	pg.Exec(t, dsn, `ALTER TABLE accounts ADD COLUMN test_only int DEFAULT 7`)
	next := accounts
	next.Columns = append(append([]cdc.Column{}, accounts.Columns...), cdc.Column{Name: "score", Type: "numeric(5,2)", Kind: cdc.KindDecimal})
	next.Columns[3].Enum = []string{"free", "pro", "enterprise"}
	if err := s.Prepare(ctx, []cdc.Table{next}); err != nil {
		t.Fatal(err)
	}
	err := s.Apply(ctx, []cdc.Change{{Table: "public.accounts", Op: cdc.Insert, Key: cdc.Row{"id": int64(1)},
		After: cdc.Row{"id": int64(1), "name": "a", "notes": nil, "tier": "enterprise", "tags": []any{"pro", nil}, "score": cdc.Decimal("1.50")}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := query(t, dsn, `SELECT a::text FROM accounts a`); got != `(1,a,,enterprise,"{pro,NULL}",7,1.50)` {
		t.Fatalf("row: %s", got)
	}
}

func TestApplyIsIdempotentAndOrdered(t *testing.T) {
	pg := testenv.Postgres(t)
	ctx := context.Background()
	dsn := pg.NewDatabase(t)
	s := openSink(t, dsn, "")
	if err := s.Prepare(ctx, []cdc.Table{accounts}); err != nil {
		t.Fatal(err)
	}
	k := func(id int64) cdc.Row { return cdc.Row{"id": id} }
	row := func(id int64, name, notes string) cdc.Row {
		return cdc.Row{"id": id, "name": name, "notes": notes, "tier": "pro", "tags": []any{}}
	}
	batch := []cdc.Change{
		{Table: "public.accounts", Op: cdc.Insert, Key: k(1), After: row(1, "ann", "long notes")},
		{Table: "public.accounts", Op: cdc.Insert, Key: k(2), After: row(2, "bob", "b")},
		{Table: "public.accounts", Op: cdc.Insert, Key: k(3), After: row(3, "cy", "c")},
		{Table: "public.accounts", Op: cdc.Update, Key: k(2), After: row(2, "bob2", "b2")}, // same key twice in a group
		{Table: "public.accounts", Op: cdc.Delete, Key: k(3)},
		{Table: "public.accounts", Op: cdc.Insert, Key: k(4), After: row(4, "dee", "d")},
		{Table: "public.accounts", Op: cdc.Delete, Key: k(4)}, // delete after insert wins
		// TOAST: notes not sent, must survive.
		{Table: "public.accounts", Op: cdc.Update, Key: k(1), After: cdc.Row{"id": int64(1), "name": "ann2", "tier": "free", "tags": nil}, Unchanged: []string{"notes"}},
		// Key change 2 → 5 with an unchanged column.
		{Table: "public.accounts", Op: cdc.Update, Key: k(2), After: cdc.Row{"id": int64(5), "name": "bob5", "tier": "pro", "tags": nil}, Unchanged: []string{"notes"}},
	}
	want := `(1,ann2,"long notes",free,)|(5,bob5,b2,pro,)`
	for i := 0; i < 2; i++ {
		if err := s.Apply(ctx, batch); err != nil {
			t.Fatalf("apply #%d: %v", i+1, err)
		}
		if got := query(t, dsn, `SELECT string_agg(a::text, '|' ORDER BY id) FROM accounts a`); got != want {
			t.Fatalf("after apply #%d: %s, want %s", i+1, got, want)
		}
	}
	if err := s.Apply(ctx, []cdc.Change{{Table: "public.accounts", Op: cdc.Truncate}}); err != nil {
		t.Fatal(err)
	}
	if got := query(t, dsn, `SELECT count(*)::text FROM accounts`); got != "0" {
		t.Fatalf("truncate left %s rows", got)
	}
	// Errors name the column, never the value.
	err := s.Apply(ctx, []cdc.Change{{Table: "public.accounts", Op: cdc.Insert, Key: k(9), After: cdc.Row{"id": int64(9), "tier": "secret-tier"}}})
	if err == nil || strings.Contains(err.Error(), "secret-tier") {
		t.Fatalf("bad enum value: %v", err)
	}
}

func TestApplyManyRowsRespectsParameterLimit(t *testing.T) {
	pg := testenv.Postgres(t)
	ctx := context.Background()
	dsn := pg.NewDatabase(t)
	s := openSink(t, dsn, "")
	if err := s.Prepare(ctx, []cdc.Table{accounts}); err != nil {
		t.Fatal(err)
	}
	var batch, dels []cdc.Change
	for i := int64(0); i < 30000; i++ {
		batch = append(batch, cdc.Change{Table: "public.accounts", Op: cdc.Insert, Key: cdc.Row{"id": i},
			After: cdc.Row{"id": i, "name": "n", "notes": nil, "tier": nil, "tags": nil}})
		if i%2 == 0 {
			dels = append(dels, cdc.Change{Table: "public.accounts", Op: cdc.Delete, Key: cdc.Row{"id": i}})
		}
	}
	if err := s.Apply(ctx, append(batch, dels...)); err != nil {
		t.Fatal(err)
	}
	if got := query(t, dsn, `SELECT count(*)::text FROM accounts`); got != "15000" {
		t.Fatalf("%s rows", got)
	}
}

func TestApplyAndSave(t *testing.T) {
	pg := testenv.Postgres(t)
	ctx := context.Background()
	dsn := pg.NewDatabase(t)
	s := openSink(t, dsn, "")
	if err := s.Prepare(ctx, []cdc.Table{accounts}); err != nil {
		t.Fatal(err)
	}
	store := s.Checkpoints()
	if _, err := store.Load(ctx, "p1"); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("load before save: %v", err)
	}
	ins := func(id int64) []cdc.Change {
		return []cdc.Change{{Table: "public.accounts", Op: cdc.Insert, Key: cdc.Row{"id": id}, After: cdc.Row{"id": id}}}
	}
	cp := checkpoint.Checkpoint{Pipeline: "p1", Seq: 5, Position: []byte{1, 2}, SavedAt: time.Now().UTC().Truncate(time.Second)}
	if err := s.ApplyAndSave(ctx, ins(1), cp); err != nil {
		t.Fatal(err)
	}
	stale := cp
	stale.Seq = 4
	if err := s.ApplyAndSave(ctx, ins(2), stale); !errors.Is(err, checkpoint.ErrStale) {
		t.Fatalf("lower seq: %v", err)
	}
	if got := query(t, dsn, `SELECT string_agg(id::text, ',') FROM accounts`); got != "1" {
		t.Fatalf("a refused ApplyAndSave wrote rows: %s", got)
	}
	// A failing change rolls back the checkpoint too.
	bad := []cdc.Change{{Table: "public.accounts", Op: cdc.Insert, Key: cdc.Row{"id": int64(3)}, After: cdc.Row{"id": int64(3), "tier": "nope"}}}
	next := cp
	next.Seq = 6
	if err := s.ApplyAndSave(ctx, bad, next); err == nil {
		t.Fatal("bad change accepted")
	}
	got, err := store.Load(ctx, "p1")
	if err != nil || got.Seq != 5 || !reflect.DeepEqual(got.Position, []byte{1, 2}) || !got.SavedAt.Equal(cp.SavedAt) {
		t.Fatalf("stored checkpoint %+v %v", got, err)
	}
	if err := store.Save(ctx, stale); !errors.Is(err, checkpoint.ErrStale) {
		t.Fatalf("store save lower seq: %v", err)
	}
	if err := store.Save(ctx, next); err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Load(ctx, "p1"); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("load after delete: %v", err)
	}
}

// TestRoundTripEveryType reads a production table with the Postgres source,
// loads it (COPY path) and applies its stream (upsert path), and requires the
// target rows to equal the source rows as Postgres prints them.
func TestRoundTripEveryType(t *testing.T) {
	pg := testenv.Postgres(t)
	ctx := context.Background()
	prod := pg.NewDatabase(t)
	pg.Exec(t, prod,
		`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
		`CREATE TABLE alltypes (
			id int PRIMARY KEY, touch int NOT NULL DEFAULT 0,
			i2 smallint, i8 bigint, num numeric(12,4), f4 real, f8 double precision,
			t text, vc varchar(20), bp char(5), e mood, inet_ inet, u uuid,
			b bytea, bo boolean, d date, tm time, tmtz timetz,
			ts timestamp, tstz timestamptz, iv interval, j json, jb jsonb,
			ai int[], at text[], ae mood[], a2 int[][], ats timestamptz[])`,
		`INSERT INTO alltypes VALUES
		(1, 0, -32768, 9223372036854775807, 12345678.1234, 3.14159, 2.718281828459045,
		 E'ünï\tcode\n\\ "q"', 'varchar', 'ab', 'happy', '10.1.2.3/16', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
		 '\x00ff10', true, '2024-02-29', '13:14:15.5', '13:14:15+02',
		 '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.123456+05:30', '1 year 2 mons 3 days 04:05:06.7',
		 '{"b": 1, "a": "x"}', '{"b": [1, 2.50], "a": null}',
		 '{1,NULL,3}', '{"a,b","c\"d",NULL,"NULL",""}', '{sad,happy}', '{{1,2},{3,4}}', ARRAY['2024-01-01 00:00:00+00'::timestamptz]),
		(2, 0, NULL, NULL, 'NaN', 'NaN', '-Infinity', '', NULL, NULL, NULL, NULL, NULL,
		 '\x', false, 'infinity', '00:00', NULL, '-infinity', 'infinity', '-1 days',
		 'null', '[]', '{}', '{}', NULL, NULL, NULL),
		(3, 0, 0, 0, -0.0001, 0, 1e-300, NULL, NULL, NULL, 'sad', '::1', NULL,
		 NULL, NULL, '0044-03-15 BC', NULL, NULL, '0044-03-15 12:00 BC', NULL, '00:00:00.000001',
		 NULL, NULL, NULL, NULL, NULL, NULL, NULL)`)

	src, err := cdc.NewSource(ctx, cdc.SourceOptions{URL: prod, Pipeline: "roundtrip", Tables: []string{"alltypes"}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	tables, err := src.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer src.(cdc.Resetter).Reset(context.Background())
	target := pg.NewDatabase(t)
	s := openSink(t, target, prod)
	if err := s.Prepare(ctx, tables); err != nil {
		t.Fatal(err)
	}
	sn, err := src.BeginSnapshot(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := sn.Chunks(ctx, tables[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chunks {
		for i := 0; i < 2; i++ { // a resumed chunk overlaps: loading twice is harmless
			if err := sn.ReadChunk(ctx, c, func(rows []cdc.Row) error { return s.Load(ctx, "public.alltypes", rows) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	pos := sn.Position()
	sn.Close()
	// json is compared as jsonb: understudy canonicalizes JSON (key order).
	dump := `SELECT string_agg((to_jsonb(a) - 'j')::text || ' ' || coalesce(a.j::jsonb::text, '-'), E'\n' ORDER BY id) FROM alltypes a`
	if got, want := query(t, target, dump), query(t, prod, dump); got != want {
		t.Fatalf("after load:\ntarget %s\nsource %s", got, want)
	}

	pg.Exec(t, prod, `UPDATE alltypes SET touch = touch + 1`, `DELETE FROM alltypes WHERE id = 3`)
	sctx, cancel := context.WithCancel(ctx)
	out := make(chan cdc.Batch)
	done := make(chan error, 1)
	go func() { done <- src.Stream(sctx, pos, out) }()
	var changes []cdc.Change
	for len(changes) < 4 {
		select {
		case b := <-out:
			changes = append(changes, b.Changes...)
		case err := <-done:
			t.Fatal(err)
		case <-time.After(20 * time.Second):
			t.Fatal("stream timed out")
		}
	}
	cancel()
	<-done
	// Both upsert paths (VALUES with parameters; COPY into staging), each
	// applied over the other's result: apply is idempotent.
	for _, minRows := range []int{1, 1 << 30} {
		setStageMinRows(t, minRows)
		if err := s.Apply(ctx, changes); err != nil {
			t.Fatal(err)
		}
		if got, want := query(t, target, dump), query(t, prod, dump); got != want {
			t.Fatalf("after stream (staged from %d rows):\ntarget %s\nsource %s", minRows, got, want)
		}
	}
	// ReadTable on both sides decodes to the same normalized rows.
	read := func(r interface {
		ReadTable(context.Context, cdc.Table, func([]cdc.Row) error) error
	}) map[any]cdc.Row {
		out := map[any]cdc.Row{}
		err := r.ReadTable(ctx, tables[0], func(rows []cdc.Row) error {
			for _, row := range rows {
				out[row["id"]] = row
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	fromSource, fromTarget := read(src.(*pgsource.Source)), read(s)
	if len(fromSource) != 2 || len(fromTarget) != 2 {
		t.Fatalf("ReadTable: %d source rows, %d target rows", len(fromSource), len(fromTarget))
	}
	for id, want := range fromSource {
		for col, wv := range want {
			gv := fromTarget[id][col]
			if f, ok := wv.(float64); ok && f != f {
				if g, ok := gv.(float64); ok && g != g {
					continue
				}
			}
			if !reflect.DeepEqual(gv, wv) {
				t.Errorf("ReadTable row %v column %s: target %#v, source %#v", id, col, gv, wv)
			}
		}
	}
}

func TestByTableKeepsEachTablesOrder(t *testing.T) {
	in := []cdc.Change{
		{Table: "a", Op: cdc.Insert}, {Table: "b", Op: cdc.Insert}, {Table: "a", Op: cdc.Delete},
		{Table: "c", Op: cdc.Truncate}, {Table: "b", Op: cdc.Update}, {Table: "a", Op: cdc.Update},
	}
	var got []string
	for _, c := range byTable(in) {
		got = append(got, fmt.Sprintf("%s%v", c.Table, c.Op))
	}
	want := []string{
		fmt.Sprintf("a%v", cdc.Insert), fmt.Sprintf("a%v", cdc.Delete), fmt.Sprintf("a%v", cdc.Update),
		fmt.Sprintf("b%v", cdc.Insert), fmt.Sprintf("b%v", cdc.Update), fmt.Sprintf("c%v", cdc.Truncate),
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("byTable: %v, want %v", got, want)
	}
}

// An OLTP batch alternates tables (pgbench: accounts, tellers, branches); applied
// table by table it must end where in-order application ends.
func TestApplyInterleavedTables(t *testing.T) {
	pg := testenv.Postgres(t)
	ctx := context.Background()
	dsn := pg.NewDatabase(t)
	s := openSink(t, dsn, "")
	tellers := cdc.Table{Name: "public.tellers", Key: []string{"id"}, Columns: []cdc.Column{
		{Name: "id", Type: "bigint", Kind: cdc.KindInt},
		{Name: "balance", Type: "bigint", Kind: cdc.KindInt},
	}}
	if err := s.Prepare(ctx, []cdc.Table{accounts, tellers}); err != nil {
		t.Fatal(err)
	}
	k := func(id int64) cdc.Row { return cdc.Row{"id": id} }
	acc := func(id int64, name string) cdc.Row {
		return cdc.Row{"id": id, "name": name, "notes": "n", "tier": "pro", "tags": nil}
	}
	tel := func(id, bal int64) cdc.Row { return cdc.Row{"id": id, "balance": bal} }
	var batch []cdc.Change
	for i := int64(1); i <= 300; i++ {
		batch = append(batch,
			cdc.Change{Table: "public.accounts", Op: cdc.Update, Key: k(i % 7), After: acc(i%7, fmt.Sprint("a", i))},
			cdc.Change{Table: "public.tellers", Op: cdc.Update, Key: k(i % 3), After: tel(i%3, i)},
		)
		if i == 150 {
			batch = append(batch, cdc.Change{Table: "public.tellers", Op: cdc.Truncate},
				cdc.Change{Table: "public.accounts", Op: cdc.Delete, Key: k(2)})
		}
	}
	if err := s.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	want := "(0,a294,n,pro,)|(1,a295,n,pro,)|(2,a296,n,pro,)|(3,a297,n,pro,)|(4,a298,n,pro,)|(5,a299,n,pro,)|(6,a300,n,pro,)"
	if got := query(t, dsn, `SELECT string_agg(a::text, '|' ORDER BY id) FROM accounts a`); got != want {
		t.Fatalf("accounts: %s, want %s", got, want)
	}
	if got := query(t, dsn, `SELECT string_agg(t::text, '|' ORDER BY id) FROM tellers t`); got != "(0,300)|(1,298)|(2,299)" {
		t.Fatalf("tellers: %s", got)
	}
}

// A batch that partly overlaps rows already loaded (a chunk re-read after a
// crash) makes the direct COPY fail on the key; Load then upserts it through
// staging, in a fresh transaction, so nothing is half-written.
func TestLoadFallsBackToUpsertOnOverlap(t *testing.T) {
	pg := testenv.Postgres(t)
	ctx := context.Background()
	dsn := pg.NewDatabase(t)
	s := openSink(t, dsn, "")
	if err := s.Prepare(ctx, []cdc.Table{accounts}); err != nil {
		t.Fatal(err)
	}
	row := func(id int64, name string) cdc.Row {
		return cdc.Row{"id": id, "name": name, "notes": nil, "tier": "pro", "tags": []any{"free", "pro"}}
	}
	if err := s.Load(ctx, "public.accounts", []cdc.Row{row(1, "a"), row(2, "b")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Load(ctx, "public.accounts", []cdc.Row{row(2, "b2"), row(3, "c\tx\\y\nz")}); err != nil {
		t.Fatal(err)
	}
	want := `(1,a,,pro,"{free,pro}")|(2,b2,,pro,"{free,pro}")|(3,"c	x\\y` + "\n" + `z",,pro,"{free,pro}")`
	if got := query(t, dsn, `SELECT string_agg(a::text, '|' ORDER BY id) FROM accounts a`); got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func setStageMinRows(t *testing.T, n int) {
	old := stageMinRows
	stageMinRows = n
	t.Cleanup(func() { stageMinRows = old })
}

// Staged upserts: one staging table serves several groups of one transaction
// (it is emptied between them), order within a key holds across groups, and
// TOAST-unchanged columns are left alone.
func TestApplyStagedGroupsInOneTransaction(t *testing.T) {
	setStageMinRows(t, 1)
	pg := testenv.Postgres(t)
	ctx := context.Background()
	dsn := pg.NewDatabase(t)
	s := openSink(t, dsn, "")
	if err := s.Prepare(ctx, []cdc.Table{accounts}); err != nil {
		t.Fatal(err)
	}
	k := func(id int64) cdc.Row { return cdc.Row{"id": id} }
	row := func(id int64, name string) cdc.Row {
		return cdc.Row{"id": id, "name": name, "notes": "n" + name, "tier": "pro", "tags": []any{"free"}}
	}
	ins := func(id int64, name string) cdc.Change {
		return cdc.Change{Table: "public.accounts", Op: cdc.Insert, Key: k(id), After: row(id, name)}
	}
	batch := []cdc.Change{
		ins(1, "a"), ins(2, "b"), ins(3, "c"), ins(1, "a2"),
		{Table: "public.accounts", Op: cdc.Delete, Key: k(2)},
		ins(2, "b2"), ins(4, "d"),
		{Table: "public.accounts", Op: cdc.Delete, Key: k(4)},
		{Table: "public.accounts", Op: cdc.Update, Key: k(3), After: cdc.Row{"id": int64(3), "name": "c2", "tier": nil, "tags": nil}, Unchanged: []string{"notes"}},
	}
	want := `(1,a2,na2,pro,{free})|(2,b2,nb2,pro,{free})|(3,c2,nc,,)`
	for i := 0; i < 2; i++ {
		if err := s.Apply(ctx, batch); err != nil {
			t.Fatalf("apply #%d: %v", i+1, err)
		}
		if got := query(t, dsn, `SELECT string_agg(a::text, '|' ORDER BY id) FROM accounts a`); got != want {
			t.Fatalf("after apply #%d: %s, want %s", i+1, got, want)
		}
	}
}

// writesExactly is the grouping shortcut of apply: it must agree with
// writtenColumns whenever it says yes, or rows would be upserted with another
// row's column list (a TOAST-unchanged column overwritten, or one dropped).
func TestWritesExactlyAgreesWithWrittenColumns(t *testing.T) {
	row := func(cols ...string) cdc.Row {
		r := cdc.Row{}
		for _, c := range cols {
			r[c] = int64(1)
		}
		return r
	}
	cases := []struct {
		name string
		c    cdc.Change
		cols []string
		want bool
	}{
		{"same columns", cdc.Change{After: row("a", "b", "id")}, []string{"a", "b", "id"}, true},
		{"one more column", cdc.Change{After: row("a", "b", "c", "id")}, []string{"a", "b", "id"}, false},
		{"one fewer column", cdc.Change{After: row("a", "id")}, []string{"a", "b", "id"}, false},
		{"another column", cdc.Change{After: row("a", "c", "id")}, []string{"a", "b", "id"}, false},
		{"unchanged TOAST column: not the shortcut's case", cdc.Change{After: row("a", "b", "id"), Unchanged: []string{"b"}}, []string{"a", "id"}, false},
		{"unchanged column the group writes", cdc.Change{After: row("a", "b", "id"), Unchanged: []string{"b"}}, []string{"a", "b", "id"}, false},
		{"unchanged column not in After", cdc.Change{After: row("a", "id"), Unchanged: []string{"b"}}, []string{"a", "id"}, false},
	}
	for _, tc := range cases {
		got := writesExactly(tc.c, tc.cols)
		if got != tc.want {
			t.Errorf("%s: writesExactly = %v, want %v", tc.name, got, tc.want)
		}
		if got && !slices.Equal(writtenColumns(tc.c), tc.cols) {
			t.Errorf("%s: writesExactly says yes but writtenColumns = %v", tc.name, writtenColumns(tc.c))
		}
	}
}
