// Package sinktest is the contract suite every Sink passes: replica refusal,
// idempotent load and apply, change order, unchanged columns, truncate, clear, and
// (where implemented) checkpoints in the target's transaction. A sink package runs
// it from a test with Run.
package sinktest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/checkpoint"
	"github.com/understudy/understudy/sinks"
)

// Env tells the suite how to reach the backend under test.
type Env struct {
	// NewTarget returns the URL of a fresh, empty target store.
	NewTarget func(t *testing.T) string
	// NewForeignTarget returns the URL of a store that holds data but no replica
	// marker: a database understudy must never write to.
	NewForeignTarget func(t *testing.T) string
	// Types maps each kind the suite uses to the backend's column type name.
	Types map[cdc.Kind]string
	// Table qualifies a bare table name the way the backend names tables
	// ("public.accounts" for Postgres).
	Table func(name string) string
}

func (e Env) table(name string) cdc.Table {
	col := func(n string, k cdc.Kind, nullable bool) cdc.Column {
		return cdc.Column{Name: n, Type: e.Types[k], Kind: k, Nullable: nullable}
	}
	return cdc.Table{
		Name: e.Table(name),
		Key:  []string{"id"},
		Columns: []cdc.Column{
			col("id", cdc.KindInt, false),
			col("name", cdc.KindString, true),
			col("balance", cdc.KindDecimal, true),
			col("blob", cdc.KindBytes, true),
			col("active", cdc.KindBool, true),
			col("seen_at", cdc.KindTimestamp, true),
		},
	}
}

func row(id int64, name any) cdc.Row {
	return cdc.Row{"id": id, "name": name, "balance": cdc.Decimal("12.50"), "blob": []byte{0, 1, 2},
		"active": id%2 == 0, "seen_at": time.Date(2024, 2, 29, 12, 30, 0, 123456000, time.UTC)}
}

func upsert(table string, op cdc.Op, r cdc.Row) cdc.Change {
	return cdc.Change{Table: table, Op: op, Key: cdc.Row{"id": r["id"]}, After: r}
}

func del(table string, id int64) cdc.Change {
	return cdc.Change{Table: table, Op: cdc.Delete, Key: cdc.Row{"id": id}}
}

// Run runs the contract suite against the backend described by env.
func Run(t *testing.T, env Env) {
	ctx := context.Background()
	open := func(t *testing.T, url string) sinks.Sink {
		t.Helper()
		s, err := sinks.New(ctx, sinks.Options{URL: url, Pipeline: "sinktest", SourceURL: "postgres://production.invalid/prod"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	prepare := func(t *testing.T) (sinks.Sink, cdc.Table, string) {
		t.Helper()
		url := env.NewTarget(t)
		s := open(t, url)
		tbl := env.table("accounts")
		if err := s.Prepare(ctx, []cdc.Table{tbl}); err != nil {
			t.Fatalf("Prepare on an empty target: %v", err)
		}
		return s, tbl, url
	}
	prepared := func(t *testing.T) (sinks.Sink, cdc.Table) {
		s, tbl, _ := prepare(t)
		return s, tbl
	}

	t.Run("RefusesATargetThatIsNotAReplica", func(t *testing.T) {
		s := open(t, env.NewForeignTarget(t))
		err := s.Prepare(ctx, []cdc.Table{env.table("accounts")})
		if !errors.Is(err, sinks.ErrNotReplica) {
			t.Fatalf("Prepare on a foreign store: %v, want ErrNotReplica", err)
		}
		if err := s.Clear(ctx, []string{env.Table("accounts")}); !errors.Is(err, sinks.ErrNotReplica) {
			t.Fatalf("Clear on a foreign store: %v, want ErrNotReplica", err)
		}
	})

	t.Run("ARestartPreparesTheMarkedTargetAgainKeepingData", func(t *testing.T) {
		s, tbl, url := prepare(t)
		if err := s.Load(ctx, tbl.Name, []cdc.Row{row(1, "a")}); err != nil {
			t.Fatal(err)
		}
		again := open(t, url) // a restarted process
		if err := again.Prepare(ctx, []cdc.Table{tbl}); err != nil {
			t.Fatalf("Prepare of a marked, non-empty target: %v", err)
		}
		expect(t, again, tbl, map[int64]cdc.Row{1: row(1, "a")})
	})

	t.Run("LoadIsAnIdempotentUpsert", func(t *testing.T) {
		s, tbl := prepared(t)
		rows := []cdc.Row{row(1, "a"), row(2, nil), row(3, "")}
		for range 2 {
			if err := s.Load(ctx, tbl.Name, rows); err != nil {
				t.Fatal(err)
			}
		}
		changed := row(2, "b")
		if err := s.Load(ctx, tbl.Name, []cdc.Row{changed}); err != nil {
			t.Fatal(err)
		}
		expect(t, s, tbl, map[int64]cdc.Row{1: rows[0], 2: changed, 3: rows[2]})
	})

	t.Run("ApplyKeepsOrderWithinAKey", func(t *testing.T) {
		s, tbl := prepared(t)
		n := tbl.Name
		batch := []cdc.Change{
			upsert(n, cdc.Insert, row(1, "a")),
			upsert(n, cdc.Insert, row(2, "b")),
			upsert(n, cdc.Update, row(1, "a2")),
			del(n, 2), // delete after insert: gone
			upsert(n, cdc.Insert, row(3, "c")),
			del(n, 3),
			upsert(n, cdc.Insert, row(3, "c2")), // insert after delete: present
		}
		want := map[int64]cdc.Row{1: row(1, "a2"), 3: row(3, "c2")}
		for range 2 { // a replayed batch converges to the same state
			if err := s.Apply(ctx, batch); err != nil {
				t.Fatal(err)
			}
			expect(t, s, tbl, want)
		}
	})

	t.Run("UnchangedColumnsStayAsTheyAre", func(t *testing.T) {
		s, tbl := prepared(t)
		if err := s.Load(ctx, tbl.Name, []cdc.Row{row(1, "kept")}); err != nil {
			t.Fatal(err)
		}
		after := row(1, nil)
		delete(after, "name")
		after["balance"] = cdc.Decimal("99.00")
		ch := cdc.Change{Table: tbl.Name, Op: cdc.Update, Key: cdc.Row{"id": int64(1)}, After: after, Unchanged: []string{"name"}}
		if err := s.Apply(ctx, []cdc.Change{ch}); err != nil {
			t.Fatal(err)
		}
		want := row(1, "kept")
		want["balance"] = cdc.Decimal("99.00")
		expect(t, s, tbl, map[int64]cdc.Row{1: want})
	})

	t.Run("APartialUpdateNeverCreatesARow", func(t *testing.T) {
		// An update without its unchanged (TOAST) columns cannot make a whole row:
		// inserting it would leave those columns NULL. A missing row stays missing.
		s, tbl := prepared(t)
		after := row(9, nil)
		delete(after, "name")
		ch := cdc.Change{Table: tbl.Name, Op: cdc.Update, Key: cdc.Row{"id": int64(9)}, After: after, Unchanged: []string{"name"}}
		if err := s.Apply(ctx, []cdc.Change{ch}); err != nil {
			t.Fatal(err)
		}
		expect(t, s, tbl, map[int64]cdc.Row{})
	})

	t.Run("TruncateAndClear", func(t *testing.T) {
		s, tbl := prepared(t)
		if err := s.Load(ctx, tbl.Name, []cdc.Row{row(1, "a"), row(2, "b")}); err != nil {
			t.Fatal(err)
		}
		err := s.Apply(ctx, []cdc.Change{{Table: tbl.Name, Op: cdc.Truncate}, upsert(tbl.Name, cdc.Insert, row(3, "c"))})
		if err != nil {
			t.Fatal(err)
		}
		expect(t, s, tbl, map[int64]cdc.Row{3: row(3, "c")})
		if err := s.Clear(ctx, []string{tbl.Name}); err != nil {
			t.Fatal(err)
		}
		expect(t, s, tbl, map[int64]cdc.Row{})
	})

	t.Run("CheckpointInTheSameTransaction", func(t *testing.T) {
		s, tbl := prepared(t)
		tc, ok := s.(sinks.TransactionalCheckpointer)
		if !ok {
			t.Log("this sink keeps no checkpoints in the target: nothing to check")
			return
		}
		cp := checkpoint.Checkpoint{Pipeline: "sinktest", Seq: 5, Position: []byte{1, 2, 3}, SavedAt: time.Now().UTC()}
		if err := tc.ApplyAndSave(ctx, []cdc.Change{upsert(tbl.Name, cdc.Insert, row(1, "a"))}, cp); err != nil {
			t.Fatal(err)
		}
		stale := cp
		stale.Seq = 4
		err := tc.ApplyAndSave(ctx, []cdc.Change{upsert(tbl.Name, cdc.Insert, row(2, "b"))}, stale)
		if !errors.Is(err, checkpoint.ErrStale) {
			t.Fatalf("ApplyAndSave with a lower Seq: %v, want ErrStale", err)
		}
		expect(t, s, tbl, map[int64]cdc.Row{1: row(1, "a")}) // the refused batch left no row
		got, err := tc.Checkpoints().Load(ctx, "sinktest")
		if err != nil || got.Seq != 5 || string(got.Position) != string(cp.Position) {
			t.Fatalf("stored checkpoint = %+v, %v", got, err)
		}
	})
}

// expect reads the table back and compares it with want, by key.
func expect(t *testing.T, s sinks.Sink, tbl cdc.Table, want map[int64]cdc.Row) {
	t.Helper()
	r, ok := s.(sinks.TableReader)
	if !ok {
		t.Fatal("sink does not implement sinks.TableReader, which verify and this suite need")
	}
	got := map[int64]cdc.Row{}
	err := r.ReadTable(context.Background(), tbl, func(rows []cdc.Row) error {
		for _, row := range rows {
			id, ok := row["id"].(int64)
			if !ok {
				return fmt.Errorf("id read back as %T, want int64", row["id"])
			}
			got[id] = row
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		var ids []int64
		for id := range got {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		t.Fatalf("target rows (ids %v):\n got  %v\n want %v", ids, got, want)
	}
}
