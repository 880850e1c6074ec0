package dynamodb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/understudy/understudy/cdc"
	source "github.com/understudy/understudy/cdc/dynamodb"
)

// Load upserts snapshot rows with BatchWriteItem.
func (s *Sink) Load(ctx context.Context, table string, rows []cdc.Row) error {
	t := s.tableOr(table, nil)
	var w writes
	for _, r := range rows {
		if err := w.put(t, r, nil); err != nil {
			return err
		}
	}
	return s.flush(ctx, &w)
}

// Apply applies changes in order. Within a batch only the last write of each
// key matters (puts carry whole items), so writes are collected per key and
// sent with BatchWriteItem; a partial update (Unchanged columns) or a truncate
// first flushes what came before it.
func (s *Sink) Apply(ctx context.Context, changes []cdc.Change) error {
	var w writes
	for _, ch := range changes {
		t := s.tableOr(ch.Table, ch.Key)
		switch {
		case ch.Op == cdc.Truncate:
			if err := s.flush(ctx, &w); err != nil {
				return err
			}
			if err := s.clear(ctx, t.Name, t.Key); err != nil {
				return err
			}
		case ch.Op == cdc.Delete:
			if err := w.del(t, ch.Key); err != nil {
				return err
			}
		case ch.Op == cdc.Update && len(ch.Unchanged) > 0:
			if err := s.flush(ctx, &w); err != nil {
				return err
			}
			if err := s.update(ctx, t, ch); err != nil {
				return err
			}
		default:
			if err := w.put(t, ch.After, ch.Key); err != nil {
				return err
			}
		}
	}
	return s.flush(ctx, &w)
}

// tableOr returns the prepared table, or a bare description whose key is the
// change's key columns.
func (s *Sink) tableOr(name string, key cdc.Row) cdc.Table {
	if t, ok := s.table(name); ok {
		return t
	}
	t := cdc.Table{Name: name, Partial: true}
	for k := range key {
		t.Key = append(t.Key, k)
	}
	slices.Sort(t.Key)
	return t
}

// update applies an update that leaves the Unchanged columns alone: SET of the
// sent columns, only on an existing item (a partial image cannot make one).
func (s *Sink) update(ctx context.Context, t cdc.Table, ch cdc.Change) error {
	key, err := encodeKey(t, ch.Key, ch.After)
	if err != nil {
		return err
	}
	names := map[string]string{}
	values := map[string]ddb.AttributeValue{}
	var sets []string
	var cols []string
	for c := range ch.After {
		if !t.IsKey(c) {
			cols = append(cols, c)
		}
	}
	slices.Sort(cols)
	for i, c := range cols {
		v, err := encode(t, c, ch.After[c])
		if err != nil {
			return err
		}
		n, p := fmt.Sprintf("#c%d", i), fmt.Sprintf(":v%d", i)
		names[n], values[p] = c, v
		sets = append(sets, n+" = "+p)
	}
	var cond []string
	for i, k := range t.Key {
		n := fmt.Sprintf("#k%d", i)
		names[n] = k
		cond = append(cond, "attribute_exists("+n+")")
	}
	in := &dynamodb.UpdateItemInput{TableName: aws.String(t.Name), Key: key,
		ConditionExpression: aws.String(strings.Join(cond, " AND ")), ExpressionAttributeNames: names}
	if len(sets) > 0 {
		in.UpdateExpression = aws.String("SET " + strings.Join(sets, ", "))
		in.ExpressionAttributeValues = values
	}
	_, err = s.db.UpdateItem(ctx, in)
	var cf *ddb.ConditionalCheckFailedException
	if err != nil && !asErr(err, &cf) {
		return fmt.Errorf("dynamodb target: update in %s: %w", t.Name, err)
	}
	return nil
}

// writes collects the last write per key, in first-seen order.
type writes struct {
	order []string
	reqs  map[string]write
}

type write struct {
	table string
	req   ddb.WriteRequest
}

func (w *writes) add(table string, key map[string]ddb.AttributeValue, keyCols []string, req ddb.WriteRequest) {
	var b strings.Builder
	b.WriteString(table)
	for _, k := range keyCols {
		b.WriteByte(0)
		b.WriteString(avText(key[k]))
	}
	id := b.String()
	if w.reqs == nil {
		w.reqs = map[string]write{}
	}
	if _, ok := w.reqs[id]; !ok {
		w.order = append(w.order, id)
	}
	w.reqs[id] = write{table: table, req: req}
}

func (w *writes) put(t cdc.Table, row, key cdc.Row) error {
	item, err := encodeItem(t, row)
	if err != nil {
		return err
	}
	for k, v := range key { // a key column missing from the image comes from the change's key
		if _, ok := item[k]; !ok {
			if item[k], err = encode(t, k, v); err != nil {
				return err
			}
		}
	}
	for _, k := range t.Key {
		if _, ok := item[k]; !ok {
			return fmt.Errorf("dynamodb target: a row of %s lacks key attribute %s", t.Name, k)
		}
	}
	keyAV := map[string]ddb.AttributeValue{}
	for _, k := range t.Key {
		keyAV[k] = item[k]
	}
	w.add(t.Name, keyAV, t.Key, ddb.WriteRequest{PutRequest: &ddb.PutRequest{Item: item}})
	return nil
}

func (w *writes) del(t cdc.Table, key cdc.Row) error {
	k, err := encodeKey(t, key, nil)
	if err != nil {
		return err
	}
	w.add(t.Name, k, t.Key, ddb.WriteRequest{DeleteRequest: &ddb.DeleteRequest{Key: k}})
	return nil
}

// flush sends the collected writes, 25 per BatchWriteItem, Writers calls at
// once (no two writes of one key are in flight: they were merged), retrying
// unprocessed items with backoff. It returns once every write is durable.
func (s *Sink) flush(ctx context.Context, w *writes) error {
	if len(w.order) == 0 {
		return nil
	}
	var batches [][]write
	for i := 0; i < len(w.order); i += 25 {
		end := min(i+25, len(w.order))
		b := make([]write, 0, end-i)
		for _, id := range w.order[i:end] {
			b = append(b, w.reqs[id])
		}
		batches = append(batches, b)
	}
	*w = writes{}
	return s.parallel(ctx, len(batches), func(ctx context.Context, i int) error {
		items := map[string][]ddb.WriteRequest{}
		for _, wr := range batches[i] {
			items[wr.table] = append(items[wr.table], wr.req)
		}
		return s.batchWrite(ctx, items)
	})
}

// parallel runs fn(0..n-1) with at most Writers at once; the first error wins.
func (s *Sink) parallel(ctx context.Context, n int, fn func(context.Context, int) error) error {
	if n == 1 {
		return fn(ctx, 0)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, Writers)
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(ctx, i); err != nil {
				cancel(err)
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// batchWrite sends one BatchWriteItem and retries its unprocessed items with
// exponential backoff (the SDK itself retries throttled calls).
func (s *Sink) batchWrite(ctx context.Context, items map[string][]ddb.WriteRequest) error {
	bo := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		out, err := s.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: items})
		if err != nil {
			return fmt.Errorf("dynamodb target: BatchWriteItem: %w", err)
		}
		if len(out.UnprocessedItems) == 0 {
			return nil
		}
		if attempt >= 30 {
			return fmt.Errorf("dynamodb target: BatchWriteItem left items unprocessed after %d retries (throughput exceeded?)", attempt)
		}
		items = out.UnprocessedItems
		d := bo/2 + time.Duration(rand.Int64N(int64(bo)/2+1))
		bo = min(2*bo, 5*time.Second)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// clear deletes every item of table: a parallel scan of the keys, deleted in
// batches.
func (s *Sink) clear(ctx context.Context, table string, key []string) error {
	names := map[string]string{}
	var proj []string
	for i, k := range key {
		n := fmt.Sprintf("#k%d", i)
		names[n] = k
		proj = append(proj, n)
	}
	const segments = 4
	return s.parallel(ctx, segments, func(ctx context.Context, seg int) error {
		in := &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
			ProjectionExpression: aws.String(strings.Join(proj, ", ")), ExpressionAttributeNames: names,
			Segment: aws.Int32(int32(seg)), TotalSegments: aws.Int32(segments)}
		for {
			out, err := s.db.Scan(ctx, in)
			if err != nil {
				return fmt.Errorf("dynamodb target: clearing %s: %w", table, err)
			}
			for i := 0; i < len(out.Items); i += 25 {
				var reqs []ddb.WriteRequest
				for _, it := range out.Items[i:min(i+25, len(out.Items))] {
					reqs = append(reqs, ddb.WriteRequest{DeleteRequest: &ddb.DeleteRequest{Key: it}})
				}
				if err := s.batchWrite(ctx, map[string][]ddb.WriteRequest{table: reqs}); err != nil {
					return err
				}
			}
			if len(out.LastEvaluatedKey) == 0 {
				return nil
			}
			in.ExclusiveStartKey = out.LastEvaluatedKey
		}
	})
}

// ReadTable reads back every item (for verify and the contract suite), with
// values normalized as the DynamoDB source normalizes them and, for columns the
// table describes, converted back to their kind (an int column written as N
// comes back as int64). A table that is not Partial yields only its columns.
func (s *Sink) ReadTable(ctx context.Context, t cdc.Table, emit func(rows []cdc.Row) error) error {
	var mu sync.Mutex
	return source.ParallelScan(ctx, s.db, t.Name, 4, func(rows []cdc.Row) error {
		for i, r := range rows {
			out, err := decodeRow(t, r)
			if err != nil {
				return err
			}
			rows[i] = out
		}
		mu.Lock()
		defer mu.Unlock()
		return emit(rows)
	})
}

// encodeKey encodes the key columns of t from key (or, for a missing one, row).
func encodeKey(t cdc.Table, key, row cdc.Row) (map[string]ddb.AttributeValue, error) {
	out := make(map[string]ddb.AttributeValue, len(t.Key))
	for _, k := range t.Key {
		v, ok := key[k]
		if !ok {
			v, ok = row[k]
		}
		if !ok || v == nil {
			return nil, fmt.Errorf("dynamodb target: a change of %s lacks key attribute %s", t.Name, k)
		}
		av, err := encode(t, k, v)
		if err != nil {
			return nil, err
		}
		out[k] = av
	}
	return out, nil
}

func encodeItem(t cdc.Table, row cdc.Row) (map[string]ddb.AttributeValue, error) {
	item := make(map[string]ddb.AttributeValue, len(row))
	for c, v := range row {
		av, err := encode(t, c, v)
		if err != nil {
			return nil, err
		}
		item[c] = av
	}
	return item, nil
}

// encode converts a normalized value of column col to an attribute value. A
// column of type S, N or B (the source's key and index attributes, or a
// DynamoDB-typed column) is written as that type; other values by their Go type.
// Errors name the column and the value's type, never the value.
func encode(t cdc.Table, col string, v any) (ddb.AttributeValue, error) {
	c, known := t.Column(col)
	bad := func(why string) (ddb.AttributeValue, error) {
		return nil, fmt.Errorf("dynamodb target: %s.%s: %s %s", t.Name, col, cdc.Describe(v), why)
	}
	if v == nil {
		if t.IsKey(col) {
			return bad("cannot be a key value")
		}
		return &ddb.AttributeValueMemberNULL{Value: true}, nil
	}
	if known {
		switch c.Type {
		case "S":
			if b, ok := v.([]byte); ok {
				return &ddb.AttributeValueMemberS{Value: string(b)}, nil
			}
			if _, ok := v.(cdc.JSON); !ok {
				if _, ok := v.([]any); !ok {
					return &ddb.AttributeValueMemberS{Value: cdc.Canonical(v)}, nil
				}
			}
		case "N":
			switch v.(type) {
			case string, cdc.Decimal, int64, uint64, int, float64, json.Number:
				d, err := source.Decimal(cdc.Canonical(v))
				if err != nil {
					return bad("is not a number")
				}
				return &ddb.AttributeValueMemberN{Value: string(d)}, nil
			}
		case "B":
			switch x := v.(type) {
			case []byte:
				return &ddb.AttributeValueMemberB{Value: x}, nil
			case string:
				return &ddb.AttributeValueMemberB{Value: []byte(x)}, nil
			}
		}
		if c.Kind == cdc.KindArray {
			if a, ok := v.([]any); ok {
				return list(a)
			}
		}
	}
	av, err := value(v, true)
	if err != nil {
		return bad(err.Error())
	}
	return av, nil
}

// value converts a normalized value by its Go type. top is false inside
// documents, where a list is always L.
func value(v any, top bool) (ddb.AttributeValue, error) {
	switch x := v.(type) {
	case nil:
		return &ddb.AttributeValueMemberNULL{Value: true}, nil
	case string:
		return &ddb.AttributeValueMemberS{Value: x}, nil
	case bool:
		return &ddb.AttributeValueMemberBOOL{Value: x}, nil
	case int64, uint64, int, cdc.Decimal, json.Number:
		return &ddb.AttributeValueMemberN{Value: cdc.Canonical(x)}, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("is not a finite number")
		}
		return &ddb.AttributeValueMemberN{Value: cdc.Canonical(x)}, nil
	case []byte:
		return &ddb.AttributeValueMemberB{Value: x}, nil
	case time.Time:
		return &ddb.AttributeValueMemberS{Value: x.UTC().Format(time.RFC3339Nano)}, nil
	case cdc.Date, cdc.TimeOfDay, cdc.Interval:
		return &ddb.AttributeValueMemberS{Value: cdc.Canonical(x)}, nil
	case cdc.JSON:
		doc, err := cdc.ParseJSON(x)
		if err != nil {
			return nil, fmt.Errorf("is not valid JSON")
		}
		return value(doc, false)
	case map[string]any:
		m := make(map[string]ddb.AttributeValue, len(x))
		for k, e := range x {
			av, err := value(e, false)
			if err != nil {
				return nil, err
			}
			m[k] = av
		}
		return &ddb.AttributeValueMemberM{Value: m}, nil
	case []any:
		if top {
			if set := asSet(x); set != nil {
				return set, nil
			}
		}
		return list(x)
	}
	return nil, fmt.Errorf("has no DynamoDB form")
}

func list(a []any) (ddb.AttributeValue, error) {
	l := make([]ddb.AttributeValue, len(a))
	for i, e := range a {
		av, err := value(e, false)
		if err != nil {
			return nil, err
		}
		l[i] = av
	}
	return &ddb.AttributeValueMemberL{Value: l}, nil
}

// asSet returns a list of distinct strings, numbers or byte strings as a set
// (the DynamoDB source normalizes SS, NS and BS to such lists), else nil.
func asSet(a []any) ddb.AttributeValue {
	if len(a) == 0 {
		return nil
	}
	seen := map[string]bool{}
	var ss, ns []string
	var bs [][]byte
	for _, e := range a {
		var k string
		switch x := e.(type) {
		case string:
			ss, k = append(ss, x), "s"+x
		case cdc.Decimal:
			ns, k = append(ns, string(x)), "n"+string(x)
		case []byte:
			bs, k = append(bs, x), "b"+string(x)
		default:
			return nil
		}
		if seen[k] {
			return nil
		}
		seen[k] = true
	}
	switch {
	case len(ss) == len(a):
		return &ddb.AttributeValueMemberSS{Value: ss}
	case len(ns) == len(a):
		return &ddb.AttributeValueMemberNS{Value: ns}
	case len(bs) == len(a):
		return &ddb.AttributeValueMemberBS{Value: bs}
	}
	return nil
}

// decodeRow converts a normalized item back to t's column kinds.
func decodeRow(t cdc.Table, r cdc.Row) (cdc.Row, error) {
	if !t.Partial {
		for k := range r {
			if _, ok := t.Column(k); !ok {
				delete(r, k)
			}
		}
	}
	for _, c := range t.Columns {
		v, ok := r[c.Name]
		if !ok || v == nil {
			continue
		}
		nv, err := decode(c, v)
		if err != nil {
			return nil, fmt.Errorf("dynamodb target: %s.%s: %s: %w", t.Name, c.Name, cdc.Describe(v), err)
		}
		r[c.Name] = nv
	}
	return r, nil
}

func decode(c cdc.Column, v any) (any, error) {
	text := cdc.Canonical(v)
	switch c.Kind {
	case cdc.KindInt:
		var n int64
		_, err := fmt.Sscan(text, &n)
		return n, err
	case cdc.KindUint:
		var n uint64
		_, err := fmt.Sscan(text, &n)
		return n, err
	case cdc.KindFloat:
		var f float64
		_, err := fmt.Sscan(text, &f)
		return f, err
	case cdc.KindDecimal:
		return cdc.Decimal(withScale(text, scaleOf(c.Type))), nil
	case cdc.KindTimestamp:
		tm, err := time.Parse(time.RFC3339Nano, text)
		return tm.UTC(), err
	case cdc.KindDate:
		return cdc.Date(text), nil
	case cdc.KindTime:
		return cdc.TimeOfDay(text), nil
	case cdc.KindInterval:
		return cdc.Interval(text), nil
	case cdc.KindString:
		if _, ok := v.(string); !ok {
			return text, nil
		}
	case cdc.KindJSON:
		if _, ok := v.(cdc.JSON); !ok {
			return cdc.MarshalJSON(v)
		}
	}
	return v, nil
}

// scaleOf returns the scale of a SQL "numeric(p,s)" type (-1 when none): DynamoDB
// numbers drop trailing zeros, which the source's decimal kept.
func scaleOf(typ string) int {
	i := strings.IndexByte(typ, ',')
	j := strings.IndexByte(typ, ')')
	if i < 0 || j < i {
		return -1
	}
	var s int
	if _, err := fmt.Sscan(strings.TrimSpace(typ[i+1:j]), &s); err != nil {
		return -1
	}
	return s
}

func withScale(d string, scale int) string {
	if scale <= 0 {
		return d
	}
	ip, fp, _ := strings.Cut(d, ".")
	if len(fp) >= scale {
		return d
	}
	return ip + "." + fp + strings.Repeat("0", scale-len(fp))
}

// avText renders a key attribute for grouping writes by key.
func avText(av ddb.AttributeValue) string {
	switch x := av.(type) {
	case *ddb.AttributeValueMemberS:
		return "s" + x.Value
	case *ddb.AttributeValueMemberN:
		return "n" + x.Value
	case *ddb.AttributeValueMemberB:
		return "b" + string(x.Value)
	}
	return fmt.Sprintf("%T", av)
}

func asErr[T error](err error, target *T) bool { return errors.As(err, target) }
