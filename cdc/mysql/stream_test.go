package mysql

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/testenv"
)

// TestBinlogBeforeAnAlterIsDecodedWithTheSchemaOfItsTime replays, after a restart,
// a binlog written before ALTER TABLE: the live schema already has the new column,
// the position's schema history does not.
func TestBinlogBeforeAnAlterIsDecodedWithTheSchemaOfItsTime(t *testing.T) {
	my := testenv.MariaDB(t)
	name := my.NewDatabaseName(t)
	my.Exec(t, my.DSN(name), "CREATE TABLE t (id int PRIMARY KEY, a varchar(10), b int)")
	_, pos := streamFrom(t, my.URL(name), "t")
	my.Exec(t, my.DSN(name),
		"INSERT INTO t VALUES (1, 'x', 10)",
		"ALTER TABLE t DROP COLUMN a, ADD COLUMN c int FIRST",
		"INSERT INTO t VALUES (5, 2, 20)",
		"TRUNCATE TABLE t")

	restarted, _ := openSource(t, my.URL(name), "t") // sees only the live schema
	changes, batches := collect(t, restarted, pos, 3)
	if got := changes[0].After; got["a"] != "x" || got["b"] != int64(10) || len(got) != 3 {
		t.Errorf("row before the ALTER decoded as %v", got)
	}
	if got := changes[1].After; got["c"] != int64(5) || got["id"] != int64(2) || got["b"] != int64(20) || len(got) != 3 {
		t.Errorf("row after the ALTER decoded as %v", got)
	}
	if changes[2].Op != cdc.Truncate {
		t.Errorf("TRUNCATE became %v", changes[2].Op)
	}
	announced := false
	for _, b := range batches {
		for _, tbl := range b.Schema {
			if _, ok := tbl.Column("c"); ok {
				announced = true
			}
		}
	}
	if !announced {
		t.Error("the ALTER was not announced as Batch.Schema")
	}
}

// TestSnapshotChunksByCompositeKeyRange splits a composite-key table into several
// chunks that together read every row exactly once.
func TestSnapshotChunksByCompositeKeyRange(t *testing.T) {
	my := testenv.MariaDB(t)
	name := my.NewDatabaseName(t)
	my.Exec(t, my.DSN(name), "CREATE TABLE t (a int, b varchar(5), v int, PRIMARY KEY (a, b))",
		"INSERT INTO t SELECT seq DIV 3, CONCAT('k', seq MOD 3), seq MOD 2 FROM seq_0_to_299",
		"ANALYZE TABLE t")
	s, tables := openSource(t, my.URL(name), "t")
	s.ChunkRows = 40
	snap, err := s.BeginSnapshot(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := snap.Chunks(context.Background(), tables[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) < 5 {
		t.Fatalf("%d chunks for 300 rows at 40 per chunk", len(chunks))
	}
	rows := snapshotRows(t, s, snap, tables[0])
	seen := map[[2]any]bool{}
	for _, r := range rows {
		k := [2]any{r["a"], r["b"]}
		if seen[k] {
			t.Fatalf("row %v read twice", k)
		}
		seen[k] = true
	}
	if len(rows) != 300 {
		t.Fatalf("read %d rows, want 300", len(rows))
	}
}

// streamUntil streams from pos until stop says so (after a batch with a Commit)
// or the stream fails; it returns the batches and the stream's error (nil when
// stop ended it).
// streamFrom opens a source on tables at url and returns it with the position
// a stream started now would begin at: what the tests' later statements write
// comes after it.
func streamFrom(t *testing.T, url string, tables ...string) (*Source, cdc.Position) {
	t.Helper()
	s, _ := openSource(t, url, tables...)
	snap, err := s.BeginSnapshot(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, snap.Position()
}

func streamUntil(t *testing.T, s *Source, pos cdc.Position, stop func([]cdc.Batch) bool) ([]cdc.Batch, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := make(chan cdc.Batch, 100)
	errc := make(chan error, 1)
	go func() { errc <- s.Stream(ctx, pos, out) }()
	var batches []cdc.Batch
	for {
		select {
		case b := <-out:
			batches = append(batches, b)
			if b.Commit != nil && stop(batches) {
				cancel()
				<-errc
				return batches, nil
			}
		case err := <-errc:
			for {
				select {
				case b := <-out:
					batches = append(batches, b)
				default:
					return batches, err
				}
			}
		}
	}
}

// TestDDLRulesOnSelectedTables replays, after all of it happened, DROP, RENAME
// (followed, and the gh-ost/pt-online-schema-change cut-over swap), CREATE of a
// selected name and TRUNCATE, then a RENAME to an unselected name, which stops
// the stream with an error that says what to do.
func TestDDLRulesOnSelectedTables(t *testing.T) {
	my := testenv.MariaDB(t)
	db := my.NewDatabaseName(t)
	dsn := my.DSN(db)
	my.Exec(t, dsn,
		"CREATE TABLE a (id int PRIMARY KEY, v varchar(10))", "CREATE TABLE b (id int PRIMARY KEY, v varchar(10))",
		"CREATE TABLE c (id int PRIMARY KEY, v varchar(10))", "CREATE TABLE x (id int PRIMARY KEY, v varchar(10))",
		"INSERT INTO x VALUES (1, 'x1'), (2, 'x2')")
	s, _ := openSource(t, my.URL(db), "a", "b", "c", "x")
	snap, err := s.BeginSnapshot(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	my.Exec(t, dsn,
		"INSERT INTO a VALUES (1, 'a1')",
		"DROP TABLE b",
		"RENAME TABLE a TO b",
		"INSERT INTO b VALUES (2, 'b2')",
		"DROP TABLE c",
		"CREATE TABLE c (id int PRIMARY KEY, v varchar(10), w int)",
		"INSERT INTO c VALUES (1, 'c1', 3)",
		"TRUNCATE TABLE c",
		// gh-ost's cut-over: the shadow table is not selected, its rows are not streamed.
		"CREATE TABLE _x_gho LIKE x",
		"ALTER TABLE _x_gho ADD COLUMN z int",
		"INSERT INTO _x_gho SELECT id, v, 7 FROM x",
		"RENAME TABLE x TO _x_del, _x_gho TO x",
		"INSERT INTO x VALUES (9, 'x9', 9)")
	batches, err := streamUntil(t, s, snap.Position(), func(bs []cdc.Batch) bool {
		last := bs[len(bs)-1]
		return len(last.Changes) > 0 && last.Changes[len(last.Changes)-1].Table == db+".x"
	})
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	var got []string
	for _, b := range batches {
		for _, tbl := range b.Schema {
			var cols []string
			for _, c := range tbl.Columns {
				cols = append(cols, c.Name)
			}
			e := "schema " + strings.TrimPrefix(tbl.Name, db+".") + "(" + strings.Join(cols, ",") + ")"
			if tbl.RenamedFrom != "" {
				e += " from " + strings.TrimPrefix(tbl.RenamedFrom, db+".")
			}
			got = append(got, e)
		}
		for _, c := range b.Changes {
			e := c.Op.String() + " " + strings.TrimPrefix(c.Table, db+".")
			if c.After != nil {
				e += fmt.Sprintf(" %v", c.After["id"])
			}
			got = append(got, e)
		}
	}
	want := []string{
		"insert a 1",
		"truncate b", // DROP clears the target table
		"schema b(id,v) from a",
		"insert b 2",
		"truncate c",
		"schema c(id,v,w)",
		"insert c 1",
		"truncate c",
		"schema x(id,v,z)", // the swap: same rows, new definition
		"insert x 9",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changes:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}

	// A selected table renamed to a name the pipeline does not select stops the
	// stream with the way out.
	last := batches[len(batches)-1].Commit
	my.Exec(t, dsn, "RENAME TABLE b TO elsewhere")
	_, err = streamUntil(t, s, last, func([]cdc.Batch) bool { return false })
	if err == nil || !strings.Contains(err.Error(), "renamed to "+db+".elsewhere") || !strings.Contains(err.Error(), "restart sync") {
		t.Fatalf("RENAME to an unselected name: %v", err)
	}

	// Restarted with the new name in tables: the rename is followed.
	s2, _ := openSource(t, my.URL(db), "elsewhere", "c", "x")
	batches, err = streamUntil(t, s2, last, func(bs []cdc.Batch) bool {
		for _, b := range bs {
			if len(b.Schema) > 0 {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("restarted stream: %v", err)
	}
	var renamed *cdc.Table
	for _, b := range batches {
		for i := range b.Schema {
			renamed = &b.Schema[i]
		}
	}
	if renamed == nil || renamed.Name != db+".elsewhere" || renamed.RenamedFrom != db+".b" {
		t.Errorf("restarted stream announced %+v, want elsewhere renamed from b", renamed)
	}
}

// TestTwoAltersReplayedAreDecodedWithTheSchemaOfTheirTime replays, after both
// ran, two ALTERs of one table with rows between and after them: each DDL is
// parsed and applied to the table as the history has it, so every row is decoded
// with its own columns although information_schema shows only the last schema.
func TestTwoAltersReplayedAreDecodedWithTheSchemaOfTheirTime(t *testing.T) {
	my := testenv.MariaDB(t)
	name := my.NewDatabaseName(t)
	my.Exec(t, my.DSN(name), "CREATE TABLE t (id int PRIMARY KEY, a varchar(10))")
	s, pos := streamFrom(t, my.URL(name), "t")
	my.Exec(t, my.DSN(name),
		"ALTER TABLE t ADD COLUMN b int",
		"INSERT INTO t VALUES (1, 'x', 10)",
		"ALTER TABLE t ADD COLUMN c datetime FIRST, MODIFY a varchar(20) AFTER b",
		"INSERT INTO t VALUES ('2024-01-02 03:04:05', 2, 20, 'y')")
	changes, batches := collect(t, s, pos, 2)
	if got := changes[0].After; len(got) != 3 || got["id"] != int64(1) || got["a"] != "x" || got["b"] != int64(10) {
		t.Errorf("row between the ALTERs decoded as %v", got)
	}
	if got := changes[1].After; len(got) != 4 || got["id"] != int64(2) || got["a"] != "y" || got["b"] != int64(20) ||
		got["c"] != time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC) {
		t.Errorf("row after the second ALTER decoded as %v", got)
	}
	var announced []string
	for _, b := range batches {
		for _, tbl := range b.Schema {
			var cols []string
			for _, c := range tbl.Columns {
				cols = append(cols, c.Name+" "+c.Type)
			}
			announced = append(announced, strings.Join(cols, ", "))
		}
	}
	want := []string{"id int(11), a varchar(10) CHARACTER SET latin1, b int(11)", "c datetime, id int(11), b int(11), a varchar(20) CHARACTER SET latin1"} // the test server's default charset is latin1
	if !reflect.DeepEqual(announced, want) {
		t.Errorf("announced schemas %q, want %q", announced, want)
	}
}

// TestReplayedColumnRenameIsFollowedWithoutRowMetadata: RENAME COLUMN between
// rows, replayed after it ran, with binlog_row_metadata=MINIMAL (no names in the
// binlog to check against): rows before it carry the old name, rows after it the
// new one.
func TestReplayedColumnRenameIsFollowedWithoutRowMetadata(t *testing.T) {
	my := testenv.MariaDB(t)
	name := my.NewDatabaseName(t)
	my.Exec(t, my.DSN(name), "CREATE TABLE t (id int PRIMARY KEY, a varchar(10))")
	s, pos := streamFrom(t, my.URL(name), "t")
	my.Exec(t, my.DSN(name),
		"ALTER TABLE t ADD COLUMN b int",
		"INSERT INTO t VALUES (1, 'x', 10)",
		"ALTER TABLE t RENAME COLUMN b TO c",
		"INSERT INTO t VALUES (2, 'y', 20)")
	changes, _ := collect(t, s, pos, 2)
	if got := changes[0].After; got["b"] != int64(10) || len(got) != 3 {
		t.Errorf("row before RENAME COLUMN decoded as %v", got)
	}
	if got := changes[1].After; got["c"] != int64(20) || len(got) != 3 {
		t.Errorf("row after RENAME COLUMN decoded as %v", got)
	}
}

// TestUnparsedAltersReplayedStopInsteadOfMisreading pins the limit of the
// information_schema fallback: an ALTER the parser does not accept (MariaDB's
// inet6 type) is described from the live schema, which, when a later ALTER of
// the table already ran, is the later one. The row events in between no longer
// fit, and the stream stops with the way out instead of misreading columns.
func TestUnparsedAltersReplayedStopInsteadOfMisreading(t *testing.T) {
	my := testenv.MariaDB(t)
	name := my.NewDatabaseName(t)
	my.Exec(t, my.DSN(name), "CREATE TABLE t (id int PRIMARY KEY, a varchar(10))")
	s, pos := streamFrom(t, my.URL(name), "t")
	my.Exec(t, my.DSN(name),
		"ALTER TABLE t ADD COLUMN b inet6",
		"INSERT INTO t VALUES (1, 'x', '::1')",
		"ALTER TABLE t ADD COLUMN c datetime")
	_, err := streamUntil(t, s, pos, func([]cdc.Batch) bool { return false })
	if err == nil || !strings.Contains(err.Error(), "understudy reset") || !strings.Contains(err.Error(), "binlog has 3 columns, schema history 4") {
		t.Fatalf("replay of an unparsed ALTER and a later one: %v", err)
	}
}

// TestRowMetadataNamesCatchAReplayedColumnRename: with binlog_row_metadata=FULL
// the table map carries column names, so a replay whose history was read from
// information_schema after a later RENAME COLUMN (same count, same types) stops
// instead of writing the values under the later name. MariaDB's NOWAIT keeps
// the first ALTER from parsing, so it takes the fallback.
func TestRowMetadataNamesCatchAReplayedColumnRename(t *testing.T) {
	my := testenv.MariaDB(t)
	name := my.NewDatabaseName(t)
	my.Exec(t, "", "SET GLOBAL binlog_row_metadata = FULL")
	t.Cleanup(func() { my.Exec(t, "", "SET GLOBAL binlog_row_metadata = MINIMAL") })
	my.Exec(t, my.DSN(name), "CREATE TABLE t (id int PRIMARY KEY, a varchar(10))")
	s, pos := streamFrom(t, my.URL(name), "t")
	my.Exec(t, my.DSN(name),
		"ALTER TABLE t NOWAIT ADD COLUMN b int",
		"INSERT INTO t VALUES (1, 'x', 10)",
		"ALTER TABLE t RENAME COLUMN b TO c")
	_, err := streamUntil(t, s, pos, func([]cdc.Batch) bool { return false })
	if err == nil || !strings.Contains(err.Error(), "binlog column 2 is b, schema history has c") {
		t.Fatalf("replay of ADD COLUMN b (not parsed), RENAME COLUMN b TO c with FULL row metadata: %v", err)
	}
}

// TestANSIQuotesDDLIsReadInItsSessionsMode: under sql_mode ANSI_QUOTES a DDL
// quotes identifiers with " (and may hold " inside strings). The binlog records
// the session's mode with each statement; the history must read the statement
// in that mode, or it misses the table ("t" is not `t`) and the rows after it no
// longer fit. Two ALTERs replayed prove the statements were parsed (the
// information_schema fallback would describe both rows with the later schema).
func TestANSIQuotesDDLIsReadInItsSessionsMode(t *testing.T) {
	my := testenv.MariaDB(t)
	name := my.NewDatabaseName(t)
	my.Exec(t, my.DSN(name), "CREATE TABLE t (id int PRIMARY KEY, a varchar(10))")
	s, pos := streamFrom(t, my.URL(name), "t")
	ansi := "SET SESSION sql_mode = 'ANSI_QUOTES'; "
	my.Exec(t, my.DSN(name),
		ansi+`ALTER TABLE "t" ADD COLUMN "b" varchar(10) DEFAULT 'q"x', ADD COLUMN c int`,
		ansi+`INSERT INTO "t" (id, a, c) VALUES (1, 'x', 7)`,
		ansi+`ALTER TABLE "`+name+`"."t" ADD COLUMN "d" int FIRST`,
		ansi+`INSERT INTO "t" (id, a, b, c, d) VALUES (2, 'y', 'r', 8, 9)`)
	changes, _ := collect(t, s, pos, 2)
	if got := changes[0].After; len(got) != 4 || got["id"] != int64(1) || got["b"] != `q"x` || got["c"] != int64(7) {
		t.Errorf("row between the ALTERs decoded as %v", got)
	}
	if got := changes[1].After; len(got) != 5 || got["id"] != int64(2) || got["b"] != "r" || got["d"] != int64(9) {
		t.Errorf("row after the second ALTER decoded as %v", got)
	}
}

func TestSQLModeOfStatusVars(t *testing.T) {
	// Q_FLAGS2_CODE (0) + 4 bytes, Q_SQL_MODE_CODE (1) + 8 bytes, then a catalog.
	vars := []byte{0, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0, 0, 0, 0, 6, 3, 's', 't', 'd'}
	if mode, ok := sqlModeOf(vars); !ok || mode != 4 {
		t.Errorf("sqlModeOf = %d, %v; want 4 (ANSI_QUOTES), true", mode, ok)
	}
	if _, ok := sqlModeOf([]byte{6, 3, 's', 't', 'd'}); ok {
		t.Error("sqlModeOf found a mode in status vars without one")
	}
	if _, ok := sqlModeOf([]byte{1, 4, 0}); ok {
		t.Error("sqlModeOf read a truncated mode")
	}
	for in, want := range map[string]string{"`a`.`b`": "a.b", `"a"."b"`: "a.b", `"x""y"`: `db.x"y`, "t": "db.t", "`a.b`": "db.a.b"} {
		if got := qualifyIdent(in, "db"); got != want {
			t.Errorf("qualifyIdent(%s) = %q, want %q", in, got, want)
		}
	}
}
