package pipeline

import (
	"testing"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/transform"
)

// The target schema drops dropped columns and lets nulled ones hold NULL, even
// when production declares them NOT NULL (else the load fails on the first row).
func TestPlannerDerivesTargetSchema(t *testing.T) {
	tr, err := transform.New(transform.Config{
		Secret: []byte("0123456789abcdef"),
		Rules: map[string]map[string]transform.Rule{"public.t": {
			"notes":  {Action: transform.Null},
			"secret": {Action: transform.Drop},
		}},
		Unclassified: transform.PolicyNull,
	})
	if err != nil {
		t.Fatal(err)
	}
	src := cdc.Table{Name: "public.t", Key: []string{"id"}, Columns: []cdc.Column{
		{Name: "id", Kind: cdc.KindInt}, {Name: "notes", Kind: cdc.KindString},
		{Name: "secret", Kind: cdc.KindString}, {Name: "other", Kind: cdc.KindString},
	}}
	got, err := (&planner{t: tr}).Prepare([]cdc.Table{src})
	if err != nil {
		t.Fatal(err)
	}
	cols := map[string]cdc.Column{}
	for _, c := range got[0].Columns {
		cols[c.Name] = c
	}
	if _, ok := cols["secret"]; ok {
		t.Error("dropped column kept in the target schema")
	}
	if !cols["notes"].Nullable || !cols["other"].Nullable {
		t.Errorf("nulled columns not nullable: notes %v, other (null policy) %v", cols["notes"].Nullable, cols["other"].Nullable)
	}
	if cols["id"].Nullable {
		t.Error("the key became nullable")
	}
}
