package postgres

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// env is one fresh source database.
type env struct {
	t   *testing.T
	pg  *testenv.PostgresServer
	dsn string
}

func newEnv(t *testing.T, setup ...string) *env {
	t.Helper()
	pg := testenv.Postgres(t)
	e := &env{t: t, pg: pg, dsn: pg.NewDatabase(t)}
	if len(setup) > 0 {
		pg.Exec(t, e.dsn, setup...)
	}
	return e
}

func (e *env) exec(sql ...string) { e.t.Helper(); e.pg.Exec(e.t, e.dsn, sql...) }

// open opens a source on the env's database; the test cleans up the slot.
func (e *env) open(tables ...string) (*Source, []cdc.Table) {
	e.t.Helper()
	ctx := context.Background()
	src, err := newSource(cdc.SourceOptions{URL: e.dsn, Pipeline: e.t.Name(), Tables: tables})
	if err != nil {
		e.t.Fatal(err)
	}
	ts, err := src.Open(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		_ = src.Reset(context.Background())
		src.Close()
	})
	return src, ts
}

// readAll reads every chunk of every table, keyed by table and the id column.
func readAll(t *testing.T, sn cdc.Snapshot, tables []cdc.Table) map[string]cdc.Row {
	t.Helper()
	ctx := context.Background()
	out := map[string]cdc.Row{}
	for _, tb := range tables {
		chunks, err := sn.Chunks(ctx, tb)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chunks {
			err := sn.ReadChunk(ctx, c, func(rows []cdc.Row) error {
				for _, r := range rows {
					out[tb.Name+"/"+cdc.Canonical(r["id"])] = r
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// streamer runs Stream in the background and collects batches.
type collector struct {
	mu      sync.Mutex
	batches []cdc.Batch
	cancel  context.CancelFunc
	done    chan error
}

func startStream(t *testing.T, src *Source, from cdc.Position) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan cdc.Batch)
	c := &collector{cancel: cancel, done: make(chan error, 1)}
	go func() { c.done <- src.Stream(ctx, from, out) }()
	go func() {
		for {
			select {
			case b := <-out:
				c.mu.Lock()
				c.batches = append(c.batches, b)
				c.mu.Unlock()
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { c.stop(t) })
	return c
}

func (c *collector) stop(t *testing.T) {
	c.cancel()
	select {
	case err := <-c.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("stream: %v", err)
		}
		c.done <- context.Canceled // later stops return at once
	case <-time.After(10 * time.Second):
		t.Error("stream did not stop within 10s of cancellation")
	}
}

func (c *collector) changes() []cdc.Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []cdc.Change
	for _, b := range c.batches {
		out = append(out, b.Changes...)
	}
	return out
}

// waitFor polls until cond holds on the collected changes.
func (c *collector) waitFor(t *testing.T, what string, cond func([]cdc.Change) bool) []cdc.Change {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if ch := c.changes(); cond(ch) {
			return ch
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; have %d changes", what, len(c.changes()))
	return nil
}

func atLeast(n int) func([]cdc.Change) bool {
	return func(ch []cdc.Change) bool { return len(ch) >= n }
}

const allTypesDDL = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE TABLE alltypes (
	id int PRIMARY KEY,
	touch int NOT NULL DEFAULT 0,
	i2 smallint, i8 bigint, num numeric(12,4), numnan numeric, f4 real, f8 double precision,
	t text, vc varchar(20), bp char(5), nm name,
	e mood, inet_ inet, cidr_ cidr, mac macaddr, u uuid, x xml,
	b bytea, bo boolean, d date, tm time, tmtz timetz,
	ts timestamp(6), tstz timestamptz, iv interval,
	j json, jb jsonb,
	ai int[], at text[], aj jsonb[], ae mood[], ats timestamptz[], a2 int[][],
	dom positive, money_ money
)`

const allTypesRow = `INSERT INTO alltypes VALUES
(1, 0, -32768, 9223372036854775807, 12345678.1234, 'NaN', 3.14159, 2.718281828459045,
 'plain ünïcode ✓', 'varchar', 'ab', 'name', 'happy', '10.1.2.3/16', '10.1.0.0/16', '08:00:2b:01:02:03',
 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '<a>x</a>',
 '\x00ff10', true, '2024-02-29', '13:14:15.5', '13:14:15+02',
 '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.123456+05:30', '1 year 2 mons 3 days 04:05:06.7',
 '{"b": 1, "a": "x"}', '{"b": [1, 2.50], "a": null}',
 '{1,NULL,3}', '{"a,b","c\"d",NULL,"NULL",""}', ARRAY['{"k": 1}'::jsonb], '{sad,happy}',
 ARRAY['2024-01-01 00:00:00+00'::timestamptz], '{{1,2},{3,4}}', 7, 12.34),
(2, 0, NULL, NULL, NULL, NULL, 'Infinity', '-Infinity',
 '', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 '\x', false, 'infinity', '00:00', NULL, '-infinity', 'infinity', '-1 days',
 'null', '[]', '{}', '{}', NULL, NULL, NULL, NULL, NULL, NULL),
(3, 0, 0, 0, -0.0001, 0, 'NaN', 1e-300, 'line1
line2	tab', NULL, NULL, NULL, 'sad', '::1', NULL, NULL, NULL, NULL,
 NULL, NULL, '0044-03-15 BC', NULL, NULL, '0044-03-15 12:00 BC', NULL, '00:00:00.000001',
 NULL, '{"s": "<>&\u00e9"}', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`

// TestSnapshotAndStreamDecodeAlike reads the same rows through the snapshot and
// through the stream (an UPDATE makes pgoutput send every column) and requires
// deeply equal rows: consistent replacement keys on these values.
func TestSnapshotAndStreamDecodeAlike(t *testing.T) {
	e := newEnv(t, allTypesDDL, allTypesRow)
	src, tables := e.open("alltypes")
	ctx := context.Background()
	sn, err := src.BeginSnapshot(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap := readAll(t, sn, tables)
	pos := sn.Position()
	sn.Close()
	if len(snap) != 3 {
		t.Fatalf("snapshot read %d rows", len(snap))
	}

	e.exec(`UPDATE alltypes SET touch = 1`)
	c := startStream(t, src, pos)
	got := c.waitFor(t, "3 updates", atLeast(3))
	for _, ch := range got {
		if ch.Op != cdc.Update || len(ch.Unchanged) != 0 {
			t.Fatalf("unexpected change %v unchanged=%v", ch.Op, ch.Unchanged)
		}
		want := snap["public.alltypes/"+cdc.Canonical(ch.Key["id"])].Clone()
		want["touch"] = int64(1)
		for col, wv := range want {
			if gv := ch.After[col]; !sameValue(gv, wv) {
				t.Errorf("row %v column %s: stream %#v, snapshot %#v", ch.Key["id"], col, gv, wv)
			}
		}
		if len(ch.After) != len(want) {
			t.Errorf("row %v: stream has %d columns, snapshot %d", ch.Key["id"], len(ch.After), len(want))
		}
	}
	// Spot-check the normalization itself.
	r1 := snap["public.alltypes/1"]
	checks := map[string]any{
		"i8":   int64(9223372036854775807),
		"num":  cdc.Decimal("12345678.1234"),
		"e":    "happy",
		"b":    []byte{0, 0xff, 0x10},
		"tstz": time.Date(2024, 2, 29, 7, 44, 15, 123456000, time.UTC),
		"jb":   cdc.JSON(`{"a":null,"b":[1,2.50]}`),
		"at":   []any{"a,b", `c"d`, nil, "NULL", ""},
		"ae":   []any{"sad", "happy"},
		"a2":   []any{[]any{int64(1), int64(2)}, []any{int64(3), int64(4)}},
		"dom":  int64(7),
		"iv":   cdc.Interval("1 year 2 mons 3 days 04:05:06.7"),
	}
	for col, want := range checks {
		if got := r1[col]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %#v, want %#v", col, got, want)
		}
	}
	byName := map[string]cdc.Column{}
	for _, col := range tables[0].Columns {
		byName[col.Name] = col
	}
	if c := byName["e"]; c.Type != "public.mood" || !slices.Equal(c.Enum, []string{"sad", "ok", "happy"}) || c.Kind != cdc.KindString {
		t.Errorf("enum column: %+v", c)
	}
	if c := byName["ae"]; c.Type != "public.mood[]" || c.Kind != cdc.KindArray {
		t.Errorf("enum array column: %+v", c)
	}
	if c := byName["vc"]; c.Type != "character varying(20)" || !c.Nullable {
		t.Errorf("varchar column: %+v", c)
	}
	if c := byName["dom"]; c.Kind != cdc.KindInt {
		t.Errorf("domain column: %+v", c)
	}
	if !slices.Equal(tables[0].Key, []string{"id"}) {
		t.Errorf("key %v", tables[0].Key)
	}
}

// sameValue is reflect.DeepEqual, except that NaN equals NaN (both paths must
// produce NaN for a NaN).
func sameValue(a, b any) bool {
	if fa, ok := a.(float64); ok {
		if fb, ok := b.(float64); ok && fa != fa && fb != fb {
			return true
		}
	}
	return reflect.DeepEqual(a, b)
}

func TestOpenExplainsEveryProblem(t *testing.T) {
	e := newEnv(t,
		`CREATE TABLE nokey (a int)`,
		`CREATE TABLE fullnokey (a int)`, `ALTER TABLE fullnokey REPLICA IDENTITY FULL`,
		`CREATE TABLE uniq (a int NOT NULL UNIQUE, b text)`,
		`CREATE TABLE ok (id int PRIMARY KEY)`,
		`CREATE TABLE secret (id int PRIMARY KEY)`,
		// Roles are server-wide and the server is shared by the test binary
		// (and outlives a -count=2 rerun): create it once.
		`DO $$ BEGIN CREATE ROLE weak LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`, `GRANT SELECT ON ok TO weak`,
	)
	src, err := newSource(cdc.SourceOptions{URL: e.dsn, Pipeline: "p", Tables: []string{"nokey", "fullnokey", "uniq", "public.missing", "ok"}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, err = src.Open(context.Background())
	if err == nil {
		t.Fatal("Open accepted broken tables")
	}
	msg := err.Error()
	for _, want := range []string{
		"table public.nokey has no primary key: add one (ALTER TABLE \"public\".\"nokey\" ADD PRIMARY KEY",
		"table public.fullnokey has REPLICA IDENTITY FULL but no primary key",
		"REPLICA IDENTITY USING INDEX public.uniq_a_key",
		"table public.missing does not exist",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "public.ok") {
		t.Errorf("error blames a good table:\n%s", msg)
	}

	weakDSN := strings.Replace(e.dsn, "postgres@", "weak@", 1)
	src, _ = newSource(cdc.SourceOptions{URL: weakDSN, Pipeline: "p", Tables: []string{"ok", "secret"}})
	defer src.Close()
	_, err = src.Open(context.Background())
	if err == nil {
		t.Fatal("Open accepted a role without REPLICATION or SELECT")
	}
	for _, want := range []string{`ALTER ROLE "weak" WITH REPLICATION`, `GRANT SELECT ON "public"."secret" TO "weak"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%s", want, err)
		}
	}

	src, _ = newSource(cdc.SourceOptions{URL: "postgres://u:hunter2@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", Pipeline: "p", Tables: []string{"t"}})
	_, err = src.Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1/db is unreachable") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("unreachable server: %v", err)
	}
}

func TestStreamInsertUpdateDeleteTruncate(t *testing.T) {
	e := newEnv(t,
		`CREATE TABLE acct (id int PRIMARY KEY, name text, big text, n int)`,
		`ALTER TABLE acct ALTER COLUMN big SET STORAGE EXTERNAL`, // toast without compression
	)
	src, _ := e.open("acct")
	ctx := context.Background()
	sn, err := src.BeginSnapshot(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	pos := sn.Position()
	sn.Close()
	big := strings.Repeat("x", 5000)
	e.exec(
		`INSERT INTO acct VALUES (1, 'ann', '`+big+`', 1), (2, 'bob', NULL, 2)`,
		`UPDATE acct SET n = 10 WHERE id = 1`, // big is TOASTed and unchanged
		`UPDATE acct SET id = 3 WHERE id = 2`, // key change
		`DELETE FROM acct WHERE id = 3`,       //
		`TRUNCATE acct`,                       //
	)
	c := startStream(t, src, pos)
	ch := c.waitFor(t, "6 changes", atLeast(6))
	if len(ch) != 6 {
		t.Fatalf("got %d changes", len(ch))
	}
	ins, upd, move, del, trunc := ch[0], ch[2], ch[3], ch[4], ch[5]
	if ins.Op != cdc.Insert || ins.Table != "public.acct" || !reflect.DeepEqual(ins.Key, cdc.Row{"id": int64(1)}) || ins.After["big"] != big {
		t.Errorf("insert: %v %v %v", ins.Op, ins.Table, ins.Key)
	}
	if upd.Op != cdc.Update || !slices.Equal(upd.Unchanged, []string{"big"}) || upd.After["n"] != int64(10) {
		t.Errorf("update: %v unchanged=%v", upd.Op, upd.Unchanged)
	}
	if _, sent := upd.After["big"]; sent {
		t.Error("unchanged TOAST column present in After")
	}
	if move.Op != cdc.Update || !reflect.DeepEqual(move.Key, cdc.Row{"id": int64(2)}) || move.After["id"] != int64(3) {
		t.Errorf("key change: key %v after id %v", move.Key, move.After["id"])
	}
	if del.Op != cdc.Delete || !reflect.DeepEqual(del.Key, cdc.Row{"id": int64(3)}) || del.After != nil {
		t.Errorf("delete: %v %v", del.Op, del.Key)
	}
	if trunc.Op != cdc.Truncate || trunc.Table != "public.acct" {
		t.Errorf("truncate: %v %v", trunc.Op, trunc.Table)
	}
	// Each statement above was its own transaction: every batch ends with a commit.
	c.mu.Lock()
	var last LSN
	for _, b := range c.batches {
		lsn, err := ParsePosition(b.Commit)
		if err != nil || b.Commit == nil || lsn <= last || b.CommitTime.IsZero() {
			t.Errorf("batch commit %v (prev %v) time %v", lsn, last, b.CommitTime)
		}
		if !reflect.DeepEqual(b.Changes[len(b.Changes)-1].Position, b.Commit) {
			t.Error("last change of a transaction lacks its Position")
		}
		last = lsn
	}
	c.mu.Unlock()
}

func TestLargeTransactionIsSplit(t *testing.T) {
	e := newEnv(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	src, _ := e.open("t")
	src.MaxBatch = 100
	sn, err := src.BeginSnapshot(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pos := sn.Position()
	sn.Close()
	e.exec(`INSERT INTO t SELECT generate_series(1, 350)`)
	c := startStream(t, src, pos)
	c.waitFor(t, "350 inserts", atLeast(350))
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.batches) != 4 {
		t.Fatalf("got %d batches, want 4", len(c.batches))
	}
	for i, b := range c.batches {
		if len(b.Changes) > 100 {
			t.Errorf("batch %d has %d changes", i, len(b.Changes))
		}
		if (b.Commit != nil) != (i == 3) {
			t.Errorf("batch %d: commit %v", i, b.Commit)
		}
	}
}

// TestOnlyAckedPositionsAreFlushed: a stream that received changes but was never
// acknowledged must hand them out again after a restart; once acknowledged, the
// slot moves to exactly the acknowledged position.
func TestOnlyAckedPositionsAreFlushed(t *testing.T) {
	e := newEnv(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	src, _ := e.open("t")
	src.StatusInterval = 200 * time.Millisecond
	sn, err := src.BeginSnapshot(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pos := sn.Position()
	sn.Close()
	e.exec(`INSERT INTO t VALUES (1)`, `INSERT INTO t VALUES (2)`)

	c := startStream(t, src, pos)
	c.waitFor(t, "2 inserts", atLeast(2))
	time.Sleep(1 * time.Second) // several status updates and keepalives go by
	c.stop(t)

	c = startStream(t, src, pos)
	again := c.waitFor(t, "the same 2 inserts again", atLeast(2))
	if again[0].After["id"] != int64(1) || again[1].After["id"] != int64(2) {
		t.Fatalf("replay differs: %v %v", again[0].After, again[1].After)
	}
	first := again[0].Position
	if err := src.Ack(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	want, _ := ParsePosition(first)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var flushed string
		if err := src.pool.QueryRow(context.Background(), `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, src.name).Scan(&flushed); err != nil {
			t.Fatal(err)
		}
		if flushed == want.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("confirmed_flush_lsn %s, want the acked %s", flushed, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.stop(t)
	c = startStream(t, src, pos)
	rest := c.waitFor(t, "the unacknowledged insert", atLeast(1))
	time.Sleep(500 * time.Millisecond)
	rest = c.changes()
	if len(rest) != 1 || rest[0].After["id"] != int64(2) {
		t.Fatalf("after acking the first commit, restart gave %d changes", len(rest))
	}
}

// TestHeartbeatAdvancesIdleSlot: with everything acknowledged, writes to an
// unpublished table still let the slot's flush position move.
func TestHeartbeatAdvancesIdleSlot(t *testing.T) {
	e := newEnv(t, `CREATE TABLE t (id int PRIMARY KEY)`, `CREATE TABLE other (id int PRIMARY KEY)`)
	src, _ := e.open("t")
	src.StatusInterval = 200 * time.Millisecond
	sn, err := src.BeginSnapshot(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pos := sn.Position()
	sn.Close()
	c := startStream(t, src, pos)
	e.exec(`INSERT INTO other SELECT generate_series(1, 1000)`)
	var current string
	if err := src.pool.QueryRow(context.Background(), `SELECT pg_current_wal_lsn()::text`).Scan(&current); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var behind bool
		err := src.pool.QueryRow(context.Background(),
			`SELECT confirmed_flush_lsn < $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1`, src.name, current).Scan(&behind)
		if err != nil {
			t.Fatal(err)
		}
		if !behind {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("slot did not advance on a database with only unpublished writes")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := len(c.changes()); n != 0 {
		t.Fatalf("unpublished table produced %d changes", n)
	}
}

// TestSnapshotMissesNothing inserts rows while the snapshot is taken and read;
// every committed row is in the snapshot or in the stream from its Position.
func TestSnapshotMissesNothing(t *testing.T) {
	e := newEnv(t, `CREATE TABLE t (id int PRIMARY KEY, v text)`,
		`INSERT INTO t SELECT g, 'seed' FROM generate_series(1, 20000) g`)
	src, tables := e.open("t")
	ctx := context.Background()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	committed := map[int]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := pgx.Connect(ctx, e.dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		for id := 100000; ; id++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO t VALUES (%d, 'live')", id)); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			committed[id] = true
			mu.Unlock()
		}
	}()
	time.Sleep(50 * time.Millisecond)
	sn, err := src.BeginSnapshot(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for k := range readAll(t, sn, tables) {
		seen[k] = true
	}
	pos := sn.Position()
	sn.Close()
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()

	mu.Lock()
	missing := func() int {
		n := 0
		for id := range committed {
			if !seen[fmt.Sprintf("public.t/%d", id)] {
				n++
			}
		}
		return n
	}
	mu.Unlock()
	c := startStream(t, src, pos)
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, ch := range c.changes() {
			seen["public.t/"+cdc.Canonical(ch.Key["id"])] = true
		}
		if missing() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d committed rows are neither in the snapshot nor in the stream", missing())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := 1; i <= 20000; i++ {
		if !seen[fmt.Sprintf("public.t/%d", i)] {
			t.Fatalf("seed row %d missing", i)
		}
	}
	if len(committed) < 10 {
		t.Fatalf("only %d concurrent inserts: the test proves little", len(committed))
	}
}

func TestChunksCoverTableAndResumeNeedsSlot(t *testing.T) {
	e := newEnv(t, `CREATE TABLE t (id int PRIMARY KEY, pad text)`,
		`INSERT INTO t SELECT g, repeat('p', 200) FROM generate_series(1, 30000) g`, `ANALYZE t`)
	src, tables := e.open("t")
	ctx := context.Background()
	sn, err := src.BeginSnapshot(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snx := sn.(*snapshot)
	old := chunkRowsForTest
	chunkRowsForTest = 5000
	defer func() { chunkRowsForTest = old }()
	chunks, err := sn.Chunks(ctx, tables[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) < 4 || !strings.HasSuffix(chunks[len(chunks)-1].ID, "-") {
		t.Fatalf("chunks: %v", chunks)
	}
	if n := len(readAll(t, sn, tables)); n != 30000 {
		t.Fatalf("chunks read %d rows", n)
	}
	pos := snx.Position()
	sn.Close()

	// Resume keeps the position and reads without the exported snapshot.
	sn, err = src.BeginSnapshot(ctx, pos)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sn.Position(), pos) {
		t.Fatal("resumed snapshot changed the position")
	}
	if n := len(readAll(t, sn, tables)); n != 30000 {
		t.Fatalf("resumed read %d rows", n)
	}
	sn.Close()

	if err := src.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := src.BeginSnapshot(ctx, pos); !errors.Is(err, cdc.ErrPositionLost) {
		t.Fatalf("resume without slot: %v", err)
	}
	out := make(chan cdc.Batch)
	if err := src.Stream(ctx, pos, out); !errors.Is(err, cdc.ErrPositionLost) {
		t.Fatalf("stream without slot: %v", err)
	}
}

func TestSchemaChangeIsAnnounced(t *testing.T) {
	e := newEnv(t, `CREATE TABLE t (id int PRIMARY KEY, a text)`)
	src, _ := e.open("t")
	sn, err := src.BeginSnapshot(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pos := sn.Position()
	sn.Close()
	e.exec(`INSERT INTO t VALUES (1, 'a')`, `ALTER TABLE t ADD COLUMN b numeric(10,2)`, `INSERT INTO t VALUES (2, 'b', 1.5)`)
	c := startStream(t, src, pos)
	c.waitFor(t, "2 inserts", atLeast(2))
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.batches[0].Schema) != 0 {
		t.Errorf("unchanged relation announced: %+v", c.batches[0].Schema)
	}
	s := c.batches[1].Schema
	if len(s) != 1 || len(s[0].Columns) != 3 || s[0].Columns[2].Type != "numeric(10,2)" || s[0].Columns[2].Kind != cdc.KindDecimal {
		t.Fatalf("schema change not announced: %+v", s)
	}
	if got := c.batches[1].Changes[0].After["b"]; got != cdc.Decimal("1.50") {
		t.Fatalf("new column value %#v", got)
	}
}

// TestStreamWaitsForASlotStillHeld: a restarted understudy finds the slot still
// held by its predecessor's walsender (a killed process's connection is noticed
// late); Stream waits for it instead of failing.
func TestStreamWaitsForASlotStillHeld(t *testing.T) {
	e := newEnv(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	src, _ := e.open("t")
	sn, err := src.BeginSnapshot(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pos := sn.Position()
	sn.Close()
	e.exec(`INSERT INTO t VALUES (1)`)

	first := startStream(t, src, pos)
	first.waitFor(t, "the insert on the first stream", atLeast(1))
	second := startStream(t, src, pos) // the slot is active for first's walsender
	select {
	case err := <-second.done:
		t.Fatalf("second stream gave up while the slot was held: %v", err)
	case <-time.After(time.Second):
	}
	first.stop(t)
	second.waitFor(t, "the insert on the second stream, once the slot is free", atLeast(1))
}

// TestUnselectedTableNeverStreams: a table removed from the config still has
// changes in WAL written while it was published; they must not be emitted (the
// transformer has no rules for it, so they would reach the target unmasked).
func TestUnselectedTableNeverStreams(t *testing.T) {
	e := newEnv(t, `CREATE TABLE t (id int PRIMARY KEY)`, `CREATE TABLE x (id int PRIMARY KEY, secret text)`)
	first, _ := e.open("t", "x")
	sn, err := first.BeginSnapshot(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pos := sn.Position()
	sn.Close()
	e.exec(`INSERT INTO x VALUES (1, 'CANARY-SSN')`, `INSERT INTO t VALUES (1)`, `TRUNCATE x`, `INSERT INTO t VALUES (2)`)
	first.Close()

	second, _ := e.open("t") // x removed from the config
	c := startStream(t, second, pos)
	got := c.waitFor(t, "the two inserts into t", atLeast(2))
	for _, ch := range got {
		if ch.Table != "public.t" {
			t.Fatalf("a change of unselected table %s was emitted (%s)", ch.Table, ch.Op)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.batches {
		for _, s := range b.Schema {
			if s.Name != "public.t" {
				t.Fatalf("unselected table %s announced as a schema change", s.Name)
			}
		}
	}
}
