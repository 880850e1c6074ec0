package transform

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/understudy/understudy/cdc"
)

func TestFilterMatch(t *testing.T) {
	cases := []struct {
		expr string
		row  cdc.Row
		want bool
	}{
		{"tenant_id in [1, 2]", cdc.Row{"tenant_id": int64(1)}, true},
		{"tenant_id in [1, 2]", cdc.Row{"tenant_id": "2"}, true},
		{"tenant_id in [1, 2]", cdc.Row{"tenant_id": uint64(3)}, false},
		{"tenant_id in [1, 2]", cdc.Row{"tenant_id": nil}, false},
		{"tenant_id in [1, 2]", cdc.Row{}, false},
		{"tenant_id = '1'", cdc.Row{"tenant_id": int64(1)}, true},
		{"tenant_id != 1", cdc.Row{"tenant_id": nil}, true},
		{"tenant_id != 1", cdc.Row{"tenant_id": int64(1)}, false},
		{"tenant_id not in (1, 2)", cdc.Row{"tenant_id": int64(3)}, true},
		{"tenant_id = null", cdc.Row{"tenant_id": nil}, true},
		{"tenant_id = null", cdc.Row{"tenant_id": ""}, false},
		{"tenant_id in [1, null]", cdc.Row{"tenant_id": nil}, true},
		{"vip = true and (region = 'eu' or region = \"us\")", cdc.Row{"vip": true, "region": "us"}, true},
		{"vip = true and (region = 'eu' or region = \"us\")", cdc.Row{"vip": false, "region": "us"}, false},
		{"a = 1 or b = 2 and c = 3", cdc.Row{"a": int64(1)}, true}, // and binds tighter
		{"not (a = 1) AND b IN [2]", cdc.Row{"a": int64(2), "b": int64(2)}, true},
		{"amount = -5", cdc.Row{"amount": cdc.Decimal("-5")}, true},
	}
	for _, c := range cases {
		f, err := ParseFilter(c.expr)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		if got := f.Match(c.row); got != c.want {
			t.Errorf("%s on %v = %v, want %v", c.expr, c.row, got, c.want)
		}
	}
}

func TestFilterErrors(t *testing.T) {
	cases := map[string]string{
		"tenant_id in [1, 2": "column 19: expected ',' or the end of the list",
		"tenant_id in 1":     "column 14: expected a list like [1, 2]",
		"tenant_id == ":      "column 14: expected a value",
		"tenant_id > 3":      "column 11: unexpected '>'",
		"(a = 1":             "column 7: expected ')' to close the '(' at column 1",
		"a = 1 b = 2":        "column 7: unexpected \"b\"; combine conditions with and/or",
		"a = 1.5":            "column 5: only integer numbers",
		"a = 'x":             "column 5: unterminated string",
		"in = 1":             "column 1: expected a column name",
		"a not [1]":          "column 7: expected \"in\" after \"not\"",
	}
	for expr, want := range cases {
		_, err := ParseFilter(expr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseFilter(%q) = %v, want %q", expr, err, want)
		}
	}
}

func TestFilterSQL(t *testing.T) {
	q := func(s string) string { return `"` + s + `"` }
	ph := func(i int) string { return fmt.Sprintf("$%d", i) }
	cases := []struct {
		expr string
		sql  string
		args []any
	}{
		{"tenant_id in [1, 2]", `"tenant_id" IN ($1, $2)`, []any{int64(1), int64(2)}},
		{"region = 'eu' and vip = true", `("region" = $1 AND "vip" = $2)`, []any{"eu", true}},
		{"a != 1", `("a" <> $1 OR "a" IS NULL)`, []any{int64(1)}},
		{"a = null or a in [3, null]", `("a" IS NULL OR ("a" = $1 OR "a" IS NULL))`, []any{int64(3)}},
		{"a not in [1, null]", `("a" <> $1 AND "a" IS NOT NULL)`, []any{int64(1)}},
		{"not (a = 1)", `NOT "a" = $1`, []any{int64(1)}},
	}
	for _, c := range cases {
		f, err := ParseFilter(c.expr)
		if err != nil {
			t.Fatal(err)
		}
		sql, args := f.SQL(q, ph)
		if sql != c.sql || !reflect.DeepEqual(args, c.args) {
			t.Errorf("%s: SQL %s %v, want %s %v", c.expr, sql, args, c.sql, c.args)
		}
	}
	f, _ := ParseFilter("b = 1 and a in [2] or b = 3")
	if got := f.Columns(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("Columns() = %v", got)
	}
}

// A tenant filter over a stream: rows moving into and out of the subset become
// inserts and deletes; filters see production values, not replacements.
func TestFilterChanges(t *testing.T) {
	tr, _ := newTestTransformer(t, "s1", func(c *Config) {
		c.Where = map[string]string{usersTable.Name: "tenant_id in [1]"}
	})
	row := func(id, tenant int64) cdc.Row { r := userRow(id); r["tenant_id"] = tenant; return r }
	key := func(id int64) cdc.Row { return cdc.Row{"id": id} }
	upd := func(id, from, to int64) cdc.Change {
		return cdc.Change{Table: usersTable.Name, Op: cdc.Update, Key: key(id), Before: row(id, from), After: row(id, to)}
	}
	in := []cdc.Change{
		{Table: usersTable.Name, Op: cdc.Insert, Key: key(1), After: row(1, 1)},                               // kept
		{Table: usersTable.Name, Op: cdc.Insert, Key: key(2), After: row(2, 2), Position: cdc.Position("p2")}, // dropped; position moves back
		upd(3, 1, 1), // stays in: update
		upd(4, 1, 2), // leaves: delete
		upd(5, 2, 1), // enters: insert
		upd(6, 2, 2), // never in: dropped
		{Table: usersTable.Name, Op: cdc.Update, Key: key(7), After: row(7, 2)},  // no Before, After out: delete
		{Table: usersTable.Name, Op: cdc.Update, Key: key(8), After: row(8, 1)},  // no Before, After in: update
		{Table: usersTable.Name, Op: cdc.Delete, Key: key(9), Before: row(9, 2)}, // out: dropped
		{Table: usersTable.Name, Op: cdc.Delete, Key: key(10)},                   // no Before: passes
	}
	out, err := tr.Changes(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		op  cdc.Op
		pos string
	}
	var ops []got
	for _, c := range out {
		ops = append(ops, got{c.Op, string(c.Position)})
	}
	want := []got{{cdc.Insert, "p2"}, {cdc.Update, ""}, {cdc.Delete, ""}, {cdc.Insert, ""}, {cdc.Delete, ""}, {cdc.Update, ""}, {cdc.Delete, ""}}
	if !reflect.DeepEqual(ops, want) {
		t.Fatalf("ops %v, want %v", ops, want)
	}
	if out[2].After != nil || out[2].Key["id"] == int64(4) {
		t.Fatal("delete from update keeps After or an untransformed key")
	}
	// Filters use production values: tenant_id is kept here but ids are replaced.
	if out[3].After["tenant_id"] != int64(1) || out[3].Key["id"] != out[3].After["id"] {
		t.Fatal("inserted row inconsistent")
	}
	// Delete by key only: a key-only filter decides without Before.
	tr2, _ := newTestTransformer(t, "s1", func(c *Config) { c.Where = map[string]string{usersTable.Name: "id in [1]"} })
	out, _ = tr2.Changes(ctx, []cdc.Change{{Table: usersTable.Name, Op: cdc.Delete, Key: key(2)}, {Table: usersTable.Name, Op: cdc.Delete, Key: key(1)}})
	if len(out) != 1 {
		t.Fatalf("key-only filter on deletes: %d changes, want 1", len(out))
	}
	// Snapshot rows are filtered too.
	rows, _ := tr.Rows(ctx, usersTable.Name, []cdc.Row{row(1, 1), row(2, 2)})
	if len(rows) != 1 {
		t.Fatalf("snapshot filter kept %d rows", len(rows))
	}
}

// An update entering the subset recovers TOAST-unchanged columns from Before.
func TestFilterInsertRecoversUnchanged(t *testing.T) {
	tr, _ := newTestTransformer(t, "s1", func(c *Config) { c.Where = map[string]string{usersTable.Name: "tenant_id = 1"} })
	before := userRow(5)
	before["tenant_id"] = int64(2)
	after := userRow(5)
	delete(after, "notes")
	out, err := tr.Changes(ctx, []cdc.Change{{Table: usersTable.Name, Op: cdc.Update, Key: cdc.Row{"id": int64(5)}, Before: before, After: after, Unchanged: []string{"notes"}}})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Op != cdc.Insert || len(out[0].Unchanged) != 0 {
		t.Fatalf("op %v unchanged %v", out[0].Op, out[0].Unchanged)
	}
	if v, ok := out[0].After["notes"]; !ok || v != nil { // notes has a null rule
		t.Fatal("unchanged column not recovered from Before")
	}
	if _, ok := after["notes"]; ok {
		t.Fatal("input After modified")
	}
}
