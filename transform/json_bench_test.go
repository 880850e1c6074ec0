package transform

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/mapping"
	"github.com/understudy/understudy/mapping/memory"
)

// kafkaTable is the shape cdc/kafka gives a mirrored topic.
var kafkaTable = cdc.Table{
	Name: "events",
	Key:  []string{"key"},
	Columns: []cdc.Column{
		{Name: "key", Kind: cdc.KindString, Nullable: true}, {Name: "value", Kind: cdc.KindJSON, Nullable: true},
		{Name: "headers", Kind: cdc.KindJSON, Nullable: true}, {Name: "partition", Kind: cdc.KindInt},
	},
}

// kafkaEvent is bench/kafkabench's message value (~177 bytes).
func kafkaEvent(i int) cdc.JSON {
	c := i % 5000
	v, _ := json.Marshal(map[string]any{
		"email": fmt.Sprintf("customer%d@prod.example", c), "name": fmt.Sprintf("Real Person %d", c),
		"order_id": i, "amount": fmt.Sprintf("%d.%02d", i%1000, i%100), "currency": "EUR",
		"items":      []map[string]any{{"sku": fmt.Sprintf("SKU-%05d", i%977), "qty": 1 + i%3}},
		"created_at": "2026-05-01T09:30:00Z",
	})
	return v
}

// BenchmarkTransformKafkaJSON: the mirror's transform of bench/kafkabench's
// messages (2 JSON paths replaced through the real Mapper, 5000 customers, so the
// cache is warm after the first pass), in batches of 5000 changes.
func BenchmarkTransformKafkaJSON(b *testing.B) {
	m := mapping.NewMapper(memory.New(), []byte("bench-secret"), mapping.MapperOptions{})
	tr, err := New(Config{Secret: []byte("bench-secret"), Mapper: m,
		Rules: map[string]map[string]Rule{kafkaTable.Name: {"value": {Action: JSONPath, Paths: map[string]Rule{
			"$.email": {Action: Replace, Generator: GenEmail},
			"$.name":  {Action: Replace, Generator: GenFullName},
		}}}}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tr.Plan(kafkaTable); err != nil {
		b.Fatal(err)
	}
	const batch = 5000
	changes := make([]cdc.Change, batch)
	for i := range changes {
		key := fmt.Sprintf("cust-%d", i%5000)
		changes[i] = cdc.Change{Table: kafkaTable.Name, Op: cdc.Insert, Key: cdc.Row{"key": key},
			After: cdc.Row{"key": key, "value": kafkaEvent(i), "headers": nil, "partition": int64(i % 3)}}
	}
	if _, err := tr.Changes(context.Background(), changes); err != nil { // warm the mapper
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for n < b.N {
		if _, err := tr.Changes(context.Background(), changes); err != nil {
			b.Fatal(err)
		}
		n += batch
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/msg")
}

// BenchmarkJSONScan: the fast path's scan of one bench/kafkabench value for two
// paths, without the mapping (the part of the transform that grows with the
// document).
func BenchmarkJSONScan(b *testing.B) {
	doc := kafkaEvent(17)
	rule := &colPlan{action: Hash}
	cur := []cursor{{steps: []step{{kind: stepField, name: "email"}}, rule: rule}, {steps: []step{{kind: stepField, name: "name"}}, rule: rule}}
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	var s jsonScan // reused, as the pool does
	for range b.N {
		s.Data, s.edits, s.stack = doc, s.edits[:0], s.stack[:0]
		s.match(0, cur)
		if len(s.edits) != 2 {
			b.Fatal(s.edits)
		}
	}
}
