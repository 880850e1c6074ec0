package mysql_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/sinks"
	"github.com/understudy/understudy/testenv"
)

// TestApplyNetEffectEqualsInOrder: Apply writes a batch as its net effect per key
// (one DELETE and one upsert per table). Random interleavings of inserts, updates
// (some moving the key), deletes and truncates over few keys and two tables must
// leave the target exactly as applying them one by one would.
func TestApplyNetEffectEqualsInOrder(t *testing.T) {
	ctx := context.Background()
	my := testenv.MariaDB(t)
	name := my.NewDatabaseName(t)
	s, err := sinks.New(ctx, sinks.Options{URL: my.URL(name), Pipeline: "net"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tables := []string{"prod.a", "prod.b"}
	var defs []cdc.Table
	for _, n := range tables {
		defs = append(defs, cdc.Table{Name: n, Key: []string{"id"}, Columns: []cdc.Column{
			{Name: "id", Type: "int", Kind: cdc.KindInt}, {Name: "v", Type: "int", Kind: cdc.KindInt, Nullable: true}}})
	}
	if err := s.Prepare(ctx, defs); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[string]map[int64]int64{"prod.a": {}, "prod.b": {}}
	for round := 0; round < 20; round++ {
		var batch []cdc.Change
		for i := 0; i < 60; i++ {
			tbl := tables[rng.IntN(2)]
			id := int64(rng.IntN(6))
			v := int64(rng.IntN(1000))
			switch op := rng.IntN(10); {
			case op < 4:
				batch = append(batch, cdc.Change{Table: tbl, Op: cdc.Insert, Key: cdc.Row{"id": id}, After: cdc.Row{"id": id, "v": v}})
				model[tbl][id] = v
			case op < 7:
				batch = append(batch, cdc.Change{Table: tbl, Op: cdc.Update, Key: cdc.Row{"id": id}, After: cdc.Row{"id": id, "v": v}})
				model[tbl][id] = v // sinks upsert updates
			case op < 8:
				to := int64(rng.IntN(6))
				batch = append(batch, cdc.Change{Table: tbl, Op: cdc.Update, Key: cdc.Row{"id": id}, After: cdc.Row{"id": to, "v": v}})
				delete(model[tbl], id)
				model[tbl][to] = v
			case op < 9 || rng.IntN(8) != 0:
				batch = append(batch, cdc.Change{Table: tbl, Op: cdc.Delete, Key: cdc.Row{"id": id}})
				delete(model[tbl], id)
			default:
				batch = append(batch, cdc.Change{Table: tbl, Op: cdc.Truncate})
				model[tbl] = map[int64]int64{}
			}
		}
		if err := s.Apply(ctx, batch); err != nil {
			t.Fatal(err)
		}
		for _, tbl := range tables {
			var want []string
			for id, v := range model[tbl] {
				want = append(want, fmt.Sprintf("%d:%d", id, v))
			}
			sort.Strings(want)
			_, tn := cdc.SplitName(tbl)
			got := my.Query(t, my.DSN(name), "SELECT COALESCE(GROUP_CONCAT(CONCAT(id, ':', v) ORDER BY CONCAT(id, ':', v)), '') FROM "+tn)
			if got != strings.Join(want, ",") {
				t.Fatalf("round %d, table %s: target %q, applying in order gives %q", round, tbl, got, strings.Join(want, ","))
			}
		}
	}
}
