package mysql

import (
	"context"
	"testing"

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
	s, _ := openSource(t, my.URL(name), "t")
	snap, err := s.BeginSnapshot(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pos := snap.Position()
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
