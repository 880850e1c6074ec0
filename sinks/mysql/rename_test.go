package mysql_test

import (
	"context"
	"testing"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/sinks"
	"github.com/understudy/understudy/testenv"
)

// TestRenameFollowsTheSource: a table announced with RenamedFrom takes the old
// target table's rows, whether the target already has a table of the new name
// (prepared at start-up, or cleared by a DROP) or not; target-only columns stay.
func TestRenameFollowsTheSource(t *testing.T) {
	ctx := context.Background()
	my := testenv.MariaDB(t)
	name := my.NewDatabaseName(t)
	s, err := sinks.New(ctx, sinks.Options{URL: my.URL(name), Pipeline: "rename"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tbl := func(n string, cols ...string) cdc.Table {
		t := cdc.Table{Name: "prod." + n, Key: []string{"id"}}
		for _, c := range cols {
			t.Columns = append(t.Columns, cdc.Column{Name: c, Type: "int", Kind: cdc.KindInt, Nullable: c != "id"})
		}
		return t
	}
	if err := s.Prepare(ctx, []cdc.Table{tbl("a", "id", "v"), tbl("c", "id", "v"), tbl("d", "id")}); err != nil {
		t.Fatal(err)
	}
	my.Exec(t, my.DSN(name), "ALTER TABLE d ADD COLUMN test_only int DEFAULT 5") // a target-only column
	for _, n := range []string{"a", "c"} {
		if err := s.Load(ctx, "prod."+n, []cdc.Row{{"id": int64(1), "v": int64(10)}, {"id": int64(2), "v": int64(20)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Load(ctx, "prod.d", []cdc.Row{{"id": int64(99)}}); err != nil {
		t.Fatal(err)
	}
	// a → b: no b on the target yet, a plain RENAME TABLE.
	b := tbl("b", "id", "v")
	b.RenamedFrom = "prod.a"
	// c → d: d exists (with a row and a target-only column): c's rows replace d's.
	d := tbl("d", "id", "v")
	d.RenamedFrom = "prod.c"
	if err := s.Prepare(ctx, []cdc.Table{b, d}); err != nil {
		t.Fatal(err)
	}
	if got := my.Query(t, my.DSN(name), "SELECT GROUP_CONCAT(CONCAT(id, ':', v) ORDER BY id) FROM b"); got != "1:10,2:20" {
		t.Errorf("b after the rename from a: %q", got)
	}
	if got := my.Query(t, my.DSN(name), "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '"+name+"' AND TABLE_NAME = 'a'"); got != "0" {
		t.Errorf("a still exists after RENAME TABLE a TO b")
	}
	if got := my.Query(t, my.DSN(name), "SELECT GROUP_CONCAT(CONCAT(id, ':', v, ':', test_only) ORDER BY id) FROM d"); got != "1:10:5,2:20:5" {
		t.Errorf("d after the rename from c: %q", got)
	}
	if got := my.Query(t, my.DSN(name), "SELECT count(*) FROM c"); got != "0" {
		t.Errorf("c keeps %s rows after its rename to an existing d", got)
	}
	// Changes under the new name apply.
	if err := s.Apply(ctx, []cdc.Change{{Table: "prod.b", Op: cdc.Update, Key: cdc.Row{"id": int64(1)}, After: cdc.Row{"id": int64(1), "v": int64(11)}}}); err != nil {
		t.Fatal(err)
	}
	if got := my.Query(t, my.DSN(name), "SELECT v FROM b WHERE id = 1"); got != "11" {
		t.Errorf("update after the rename: v = %s", got)
	}
}
